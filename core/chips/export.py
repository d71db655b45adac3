"""Exporting chips from a stack and its labels."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import rasterio

from .. import raster
from ...common.errors import InputError
from ...common.outputs import atomic_output
from ...common.progress import Progress, SubProgress, or_null
from .cutting import Cutter, cut_grid, cut_random, survey_labels
from ..labels import (
    IGNORE, LabelReader, class_table, hits, landslide_lut, mark_landslide_classes, open_labels, read_polygons,
)
from .layouts import CHIP_FOLDER, CHIP_FORMAT, LAYOUTS, LAYOUT_WRITERS, prepare_output_folder, write_index
from .preview import write_preview
from .splits import SplitPlan, split_plan


SAMPLING_MODES = ("grid", "random", "positive")


@dataclass
class ChipExport:
    folder: Path
    bands: list[str]
    tile_size: int
    counts: dict = field(default_factory=dict)  # split -> {"chips", "pixels", "positive_pixels", ...}
    layout: str = "native"
    preview: Path | None = None
    classes: list = field(default_factory=list)


def export_chips(
    stack_path: str | os.PathLike,
    labels_path: str | os.PathLike,
    out_folder: str | os.PathLike,
    *,
    class_field: str = "class",
    label_layer: str | None = None,
    landslide_classes=None,
    region_path: str | os.PathLike | None = None,
    region_layer: str | None = None,
    tile_size: int = 128,
    stride: int = 64,
    sampling: str = "grid",
    n_chips: int = 1000,
    positive_fraction: float = 0.5,
    min_positive_pixels: int = 1,
    extent: Sequence[float] | None = None,
    validation_fraction: float = 0.2,
    test_fraction: float = 0.0,
    split_block: int | None = None,
    split_block_size: float | None = None,
    split_regions_path: str | os.PathLike | None = None,
    split_regions_layer: str | None = None,
    split_field: str | None = "split",
    min_valid_fraction: float = 0.5,
    layout: str = "native",
    preview: bool = True,
    seed: int = 0,
    progress: Progress | None = None,
) -> ChipExport:
    """Cut a stack and its labels into chips, split into train/validation/test by spatial units.

    labels: polygons in any CRS (reprojected to the stack grid) with `class_field` (numeric or text → class
    table), or a label raster of class values. `landslide_classes` (values or names; None = every class) says
    which classes are landslides. `region_path`: polygons of the digitised area; unlabelled ground outside it is
    'unknown' (255), never background.
    sampling: "grid" (every `stride` px), "random" (`n_chips` uniform positions) or "positive" (`n_chips`, of
    which `positive_fraction` hold ≥ `min_positive_pixels` landslide pixels). Rotations and flips are training
    augmentations, never exported copies.
    splits: blocks of `split_block` px or `split_block_size` map units, or polygons of `split_regions_path`
    (a `split_field` of train/validation/test fixes each region's split; else regions are drawn at random). Chips
    that would straddle two splits are not cut, so no pixel is in two splits.
    layout: "native" or "arcgis" (ArcGIS Pro "Classified Tiles", see core/chips/arcgis.py).
    """
    progress = or_null(progress)
    if tile_size < 16 or stride < 1:
        raise InputError(f"Tile size must be ≥ 16 px and stride ≥ 1 px (got {tile_size} and {stride}).")
    if sampling not in SAMPLING_MODES:
        raise InputError(f"Sampling must be one of {', '.join(SAMPLING_MODES)} (got '{sampling}').")
    if layout not in LAYOUTS:
        raise InputError(f"Chip layout must be one of {', '.join(LAYOUTS)} (got '{layout}').")
    if not (0.0 <= validation_fraction < 1.0 and 0.0 <= test_fraction < 1.0
            and validation_fraction + test_fraction < 1.0):
        raise InputError(f"Validation and test fractions must be ≥ 0 and leave room for training (got "
                         f"{validation_fraction} and {test_fraction}).")
    if sampling != "grid" and n_chips < 1:
        raise InputError(f"The number of chips to sample must be ≥ 1 (got {n_chips}).")
    if not 0.0 <= positive_fraction <= 1.0 or min_positive_pixels < 1:
        raise InputError(f"Positive fraction must be in [0, 1] and the minimum landslide pixels ≥ 1 (got "
                         f"{positive_fraction} and {min_positive_pixels}).")
    if not 0.0 <= min_valid_fraction <= 1.0:
        raise InputError(f"Minimum valid fraction must be in [0, 1] (got {min_valid_fraction}).")
    out_folder = Path(out_folder).resolve()
    prepare_output_folder(out_folder)
    fractions = {"train": 1.0 - validation_fraction - test_fraction, "validation": validation_fraction,
                 "test": test_fraction}
    with _open_stack(stack_path) as src:
        names = raster.band_names(src)
        win = raster.window_from_extent(src, extent)
        if win.width < tile_size or win.height < tile_size:
            raise InputError(
                f"Tile size {tile_size} px is larger than the area to cut from '{stack_path}' "
                f"({int(win.width)}×{int(win.height)} px)."
            )
        if abs(src.transform.b) > 0 or abs(src.transform.d) > 0:
            raise InputError(f"Stack '{stack_path}' is on a rotated grid; warp it to a north-up grid first.")
        area = src.window_bounds(win)
        labels = open_labels(str(labels_path), src, class_field, label_layer, what="Label layer (LABELS)")
        if labels.shapes is not None and not labels.shapes:
            raise InputError(f"Label layer '{labels_path}' has no feature with a class above 0 in field "
                             f"'{class_field}': nothing to learn landslides from.")
        if labels.bboxes is not None and not len(hits(labels.bboxes, area)):
            raise InputError(
                f"None of the {len(labels.bboxes)} landslide polygons in '{labels_path}' falls inside the raster "
                f"area being cut; check the label layer (its CRS) and the extent."
            )
        region = None
        if region_path:
            region = read_polygons(str(region_path), src.crs, layer=region_layer, what="Labelled-region layer (REGION)")
            if not len(region.select(area)):
                raise InputError(f"Labelled-region layer '{region_path}' does not overlap the raster area being "
                                 f"cut.")
        plan = split_plan(src, win, tile_size, split_block, split_block_size, split_regions_path,
                           split_regions_layer, split_field)
        read_labels = LabelReader(labels, src, region)
        try:
            survey = survey_labels(read_labels, plan, win, SubProgress(progress, 0, 15), seed,
                                    keep=200_000 if sampling == "positive" else 0)
            if labels.raster_path is not None:
                total = sum(survey.hist.values()) if survey.hist else np.zeros(256)
                labels.classes = class_table(np.flatnonzero(total[1:IGNORE]) + 1)
                if not labels.classes:
                    raise InputError(f"Label raster '{labels_path}' has no pixel above 0 in the area being cut: "
                                     f"nothing to learn landslides from.")
            labels.classes = mark_landslide_classes(labels.classes, landslide_classes, f"Label layer '{labels_path}'")
            lut = landslide_lut(labels.classes)
            is_landslide = lut == 1
            unit_positives = {u: int(h[is_landslide].sum()) for u, h in survey.hist.items()}
            plan.assign(unit_positives, fractions, seed)
            with atomic_output(out_folder, is_dir=True, kind=CHIP_FOLDER) as tmp:
                writer_cls = LAYOUT_WRITERS[layout]
                out = writer_cls(tmp, src, win, names, tile_size, labels.classes)
                cutter = Cutter(out, plan, lut, names, tile_size, min_valid_fraction, min_positive_pixels, seed)
                try:
                    cut_progress = SubProgress(progress, 15, 95)
                    if sampling == "grid":
                        cut_grid(src, win, read_labels, cutter, stride, cut_progress)
                    else:
                        n_pos = int(round(n_chips * positive_fraction)) if sampling == "positive" else 0
                        cut_random(src, win, read_labels, cutter, n_chips, n_pos, survey.positives, lut,
                                    seed, cut_progress)
                    cutter.flush()
                finally:
                    cutter.close()
                cutter.check(stack_path)
                band_stats = cutter.stats.result()
                (tmp / "stats.json").write_text(json.dumps({"computed_on": "train", "nodata": "excluded",
                                                            "bands": band_stats}, indent=2))
                write_index(tmp / "index.csv", cutter.index_rows)
                manifest = _manifest(src, layout, names, tile_size, stride, sampling, n_chips, positive_fraction,
                                     min_positive_pixels, min_valid_fraction, labels.classes, plan, fractions, seed,
                                     cutter.counts, dict(stack=str(stack_path), labels=str(labels_path),
                                                         class_field=class_field,
                                                         region=str(region_path) if region_path else None,
                                                         split_regions=str(split_regions_path)
                                                         if split_regions_path else None))
                (tmp / "chips.json").write_text(json.dumps(manifest, indent=2))
                out.finish(manifest, band_stats, cutter)
                preview_path = None
                if preview and cutter.preview:
                    preview_path = write_preview(tmp / "preview.png", cutter.preview, band_stats, lut,
                                                 labels.classes)
        finally:
            read_labels.close()
    for split, c in cutter.counts.items():
        if c["chips"]:
            progress.log(f"{split}: {c['chips']} chips ({c['positive_chips']} with ≥ {min_positive_pixels} landslide "
                         f"px), {c['pixels']} labelled px, {c['positive_pixels']} landslide px")
    return ChipExport(folder=out_folder, bands=names, tile_size=tile_size, counts=cutter.counts, layout=layout,
                      preview=out_folder / "preview.png" if preview_path else None, classes=labels.classes)


def _open_stack(path):
    """The stack opened for cutting. Each of its pixels is read once, so GDAL's block cache would only cost fresh
    memory (a page fault per 4 KiB): uncompressed GeoTIFFs are read past it (GTIFF_DIRECT_IO, which GDAL takes
    at open time; same pixels, about half the read time)."""
    with rasterio.Env(GTIFF_DIRECT_IO="YES"):
        return raster.open_raster(path)


def _manifest(src, layout, names, tile_size, stride, sampling, n_chips, positive_fraction, min_positive_pixels,
              min_valid_fraction, classes, plan: SplitPlan, fractions, seed, counts, source) -> dict:
    """chips.json: everything about how the chips were made (what training and a later reader need)."""
    px, py = raster.pixel_size(src)
    return dict(
        format=CHIP_FORMAT, version=2, layout=layout, bands=names, tile_size=tile_size,
        stride=stride if sampling == "grid" else None, crs=src.crs.to_wkt(), pixel_size=[px, py],
        classes=[asdict(c) for c in classes], ignore_value=IGNORE,
        sampling=dict(mode=sampling, n_chips=n_chips if sampling != "grid" else None,
                      positive_fraction=positive_fraction if sampling == "positive" else None,
                      min_positive_pixels=min_positive_pixels, min_valid_fraction=min_valid_fraction),
        split=dict(method="regions" if plan.regions is not None else "blocks",
                   block_px=list(plan.block) if plan.block else None,
                   block_size=[plan.block[0] * py, plan.block[1] * px] if plan.block else None,
                   fractions=fractions, seed=seed),
        counts=counts, source=source)
