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
    IGNORE, LabelReader, class_table, hits, landslide_lut, mark_landslide_classes, open_labels, raster_class_table,
    read_polygons,
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


@dataclass
class Sampling:
    """Where chips are cut: "grid" (every `stride` px), "random" (`n_chips` uniform positions) or "positive"
    (`n_chips`, of which `positive_fraction` hold ≥ `min_positive_pixels` landslide pixels). Chips with less than
    `min_valid_fraction` valid pixels are skipped. Rotations and flips are training augmentations, never copies."""

    mode: str = "grid"
    stride: int = 64
    n_chips: int = 1000
    positive_fraction: float = 0.5
    min_positive_pixels: int = 1
    min_valid_fraction: float = 0.5

    def check(self) -> None:
        if self.stride < 1:
            raise InputError(f"The stride must be ≥ 1 px (got {self.stride}).")
        if self.mode not in SAMPLING_MODES:
            raise InputError(f"Sampling must be one of {', '.join(SAMPLING_MODES)} (got '{self.mode}').")
        if self.mode != "grid" and self.n_chips < 1:
            raise InputError(f"The number of chips to sample must be ≥ 1 (got {self.n_chips}).")
        if not 0.0 <= self.positive_fraction <= 1.0 or self.min_positive_pixels < 1:
            raise InputError(f"Positive fraction must be in [0, 1] and the minimum landslide pixels ≥ 1 (got "
                             f"{self.positive_fraction} and {self.min_positive_pixels}).")
        if not 0.0 <= self.min_valid_fraction <= 1.0:
            raise InputError(f"Minimum valid fraction must be in [0, 1] (got {self.min_valid_fraction}).")


@dataclass
class SplitOptions:
    """Train/validation/test by spatial units: blocks of `block` px or `block_size` map units, or the polygons of
    `regions_path` (a `field` of train/validation/test fixes each region's split; else regions are drawn at
    random). Chips that would straddle two splits are not cut, so no pixel is in two splits."""

    validation_fraction: float = 0.2
    test_fraction: float = 0.0
    block: int | None = None
    block_size: float | None = None
    regions_path: str | os.PathLike | None = None
    regions_layer: str | None = None
    field: str | None = "split"

    def fractions(self) -> dict[str, float]:
        v, t = self.validation_fraction, self.test_fraction
        if not (0.0 <= v < 1.0 and 0.0 <= t < 1.0 and v + t < 1.0):
            raise InputError(f"Validation and test fractions must be ≥ 0 and leave room for training (got {v} and "
                             f"{t}).")
        return {"train": 1.0 - v - t, "validation": v, "test": t}


@dataclass
class LabelOptions:
    """Labels: polygons in any CRS (reprojected to the stack grid) whose `class_field` holds numbers or texts (a
    class table), or a raster of class values. `landslide_classes` (values or names; None = every class) says
    which classes are landslides; `region_path` outlines the digitised area (unlabelled ground outside it is
    'unknown', 255, never background)."""

    class_field: str = "class"
    layer: str | None = None
    landslide_classes: object = None
    region_path: str | os.PathLike | None = None
    region_layer: str | None = None


def export_chips(stack_path: str | os.PathLike, labels_path: str | os.PathLike, out_folder: str | os.PathLike, *,
                 tile_size: int = 128, sampling: Sampling | None = None, splits: SplitOptions | None = None,
                 labels: LabelOptions | None = None, extent: Sequence[float] | None = None, layout: str = "native",
                 preview: bool = True, seed: int = 0, progress: Progress | None = None) -> ChipExport:
    """Cut a stack and its labels into chips of `tile_size` px, split into train/validation/test by spatial
    units, in the "native" layout or as ArcGIS Pro "Classified Tiles" ("arcgis", see core/chips/arcgis.py)."""
    progress = or_null(progress)
    sampling, splits, options = sampling or Sampling(), splits or SplitOptions(), labels or LabelOptions()
    if tile_size < 16:
        raise InputError(f"Tile size must be ≥ 16 px (got {tile_size}).")
    if layout not in LAYOUTS:
        raise InputError(f"Chip layout must be one of {', '.join(LAYOUTS)} (got '{layout}').")
    sampling.check()
    fractions = splits.fractions()
    out_folder = Path(out_folder).resolve()
    prepare_output_folder(out_folder)
    with _open_stack(stack_path) as src:
        win, names = _area_to_cut(src, stack_path, extent, tile_size), raster.band_names(src)
        labels_, region = _open_labels(src, labels_path, options, src.window_bounds(win))
        plan = split_plan(src, win, tile_size, splits.block, splits.block_size, splits.regions_path,
                          splits.regions_layer, splits.field)
        read_labels = LabelReader(labels_, src, region)
        try:
            survey = survey_labels(read_labels, plan, win, SubProgress(progress, 0, 15), seed,
                                   keep=200_000 if sampling.mode == "positive" else 0)
            lut = _class_lut(labels_, survey, labels_path, options)
            plan.assign({u: int(h[lut == 1].sum()) for u, h in survey.hist.items()}, fractions, seed)
            source = dict(stack=str(stack_path), labels=str(labels_path), class_field=options.class_field,
                          region=str(options.region_path) if options.region_path else None,
                          split_regions=str(splits.regions_path) if splits.regions_path else None)
            with atomic_output(out_folder, is_dir=True, kind=CHIP_FOLDER) as tmp:
                cutter, preview_path = _write_export(tmp, src, win, read_labels, labels_.classes, lut, plan, survey,
                                                     tile_size, sampling, fractions, layout, preview, seed, source,
                                                     stack_path, progress)
        finally:
            read_labels.close()
    for split, c in cutter.counts.items():
        if c["chips"]:
            progress.log(f"{split}: {c['chips']} chips ({c['positive_chips']} with ≥ {sampling.min_positive_pixels} "
                         f"landslide px), {c['pixels']} labelled px, {c['positive_pixels']} landslide px")
    return ChipExport(folder=out_folder, bands=names, tile_size=tile_size, counts=cutter.counts,
                      layout=layout, preview=out_folder / "preview.png" if preview_path else None,
                      classes=labels_.classes)


def _area_to_cut(src, stack_path, extent, tile_size: int):
    win = raster.window_from_extent(src, extent)
    if win.width < tile_size or win.height < tile_size:
        raise InputError(f"Tile size {tile_size} px is larger than the area to cut from '{stack_path}' "
                         f"({int(win.width)}×{int(win.height)} px).")
    if abs(src.transform.b) > 0 or abs(src.transform.d) > 0:
        raise InputError(f"Stack '{stack_path}' is on a rotated grid; warp it to a north-up grid first.")
    return win


def _open_labels(src, labels_path, options: LabelOptions, area):
    """The labels and the digitised region on the stack's grid, or a refusal naming the layer."""
    labels = open_labels(str(labels_path), src, options.class_field, options.layer, what="Label layer (LABELS)")
    if labels.shapes is not None and not labels.shapes:
        raise InputError(f"Label layer '{labels_path}' has no feature with a class above 0 in field "
                         f"'{options.class_field}': nothing to learn landslides from.")
    if labels.bboxes is not None and not len(hits(labels.bboxes, area)):
        raise InputError(f"None of the {len(labels.bboxes)} landslide polygons in '{labels_path}' falls inside the "
                         f"raster area being cut; check the label layer (its CRS) and the extent.")
    region = None
    if options.region_path:
        region = read_polygons(str(options.region_path), src.crs, layer=options.region_layer,
                               what="Labelled-region layer (REGION)")
        if not len(region.select(area)):
            raise InputError(f"Labelled-region layer '{options.region_path}' does not overlap the raster area "
                             f"being cut.")
    return labels, region


def _class_lut(labels, survey, labels_path, options: LabelOptions) -> np.ndarray:
    """The class table completed from a label raster's values, the landslide classes marked; its 0/1 lookup."""
    if labels.raster_path is not None:
        total = sum(survey.hist.values()) if survey.hist else np.zeros(256)
        declared = raster_class_table(labels.raster_path)  # names and colours the label raster carries
        labels.classes = class_table(np.flatnonzero(total[1:IGNORE]) + 1, {v: n for v, (n, _) in declared.items()})
        for c in labels.classes:
            if c.value in declared:
                c.color = declared[c.value][1]
        if not labels.classes:
            raise InputError(f"Label raster '{labels_path}' has no pixel above 0 in the area being cut: "
                             f"nothing to learn landslides from.")
    labels.classes = mark_landslide_classes(labels.classes, options.landslide_classes, f"Label layer '{labels_path}'")
    return landslide_lut(labels.classes)


def _write_export(tmp: Path, src, win, read_labels, classes, lut, plan, survey, tile_size, sampling: Sampling,
                  fractions, layout, preview, seed, source, stack_path, progress):
    """Cut every chip into the folder `tmp`, then its statistics, index, manifest and preview."""
    names = raster.band_names(src)
    out = LAYOUT_WRITERS[layout](tmp, src, win, names, tile_size, classes)
    cutter = Cutter(out, plan, lut, names, tile_size, sampling.min_valid_fraction, sampling.min_positive_pixels,
                    seed)
    try:
        cut_progress = SubProgress(progress, 15, 95)
        if sampling.mode == "grid":
            cut_grid(src, win, read_labels, cutter, sampling.stride, cut_progress)
        else:
            n_pos = int(round(sampling.n_chips * sampling.positive_fraction)) if sampling.mode == "positive" else 0
            cut_random(src, win, read_labels, cutter, sampling.n_chips, n_pos, survey.positives, lut, seed,
                       cut_progress)
        cutter.flush()
    finally:
        cutter.close()
    cutter.check(stack_path)
    band_stats = cutter.stats.result()
    (tmp / "stats.json").write_text(json.dumps({"computed_on": "train", "nodata": "excluded", "bands": band_stats},
                                               indent=2))
    write_index(tmp / "index.csv", cutter.index_rows)
    manifest = _manifest(src, layout, names, tile_size, sampling, classes, plan, fractions, seed, cutter.counts,
                         source)
    (tmp / "chips.json").write_text(json.dumps(manifest, indent=2))
    out.finish(manifest, band_stats, cutter)
    preview_path = None
    if preview and cutter.preview:
        preview_path = write_preview(tmp / "preview.png", cutter.preview, band_stats, lut, classes)
    return cutter, preview_path


def _open_stack(path):
    """The stack opened for cutting. Each of its pixels is read once, so GDAL's block cache would only cost fresh
    memory (a page fault per 4 KiB): uncompressed GeoTIFFs are read past it (GTIFF_DIRECT_IO, which GDAL takes
    at open time; same pixels, about half the read time)."""
    with rasterio.Env(GTIFF_DIRECT_IO="YES"):
        return raster.open_raster(path)


def _manifest(src, layout, names, tile_size, sampling: Sampling, classes, plan: SplitPlan, fractions, seed, counts,
              source) -> dict:
    """chips.json: everything about how the chips were made (what training and a later reader need)."""
    px, py = raster.pixel_size(src)
    return dict(
        format=CHIP_FORMAT, version=2, layout=layout, bands=names, tile_size=tile_size,
        stride=sampling.stride if sampling.mode == "grid" else None, crs=src.crs.to_wkt(), pixel_size=[px, py],
        classes=[asdict(c) for c in classes], ignore_value=IGNORE,
        sampling=dict(mode=sampling.mode, n_chips=sampling.n_chips if sampling.mode != "grid" else None,
                      positive_fraction=sampling.positive_fraction if sampling.mode == "positive" else None,
                      min_positive_pixels=sampling.min_positive_pixels,
                      min_valid_fraction=sampling.min_valid_fraction),
        split=dict(method="regions" if plan.regions is not None else "blocks",
                   block_px=list(plan.block) if plan.block else None,
                   block_size=[plan.block[0] * py, plan.block[1] * px] if plan.block else None,
                   fractions=fractions, seed=seed),
        counts=counts, source=source)
