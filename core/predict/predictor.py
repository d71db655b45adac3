"""One prediction, start to end: options checked, bands found, the network run over the tile grid with the next
batch read while the current one computes, rows blended and written as they finish, polygons made from the mask.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ...common.definitions import NORMALIZATIONS
from ...common.errors import InputError
from ...common.progress import Progress, SubProgress, check_canceled, or_null
from ...models.devices import pick_device
from .. import raster
from ..postprocess import MaskRules, PolygonOptions, polygonize_mask
from .blender import RowBlender
from .inputs import (InputHealth, InputReader, assign_bands, check_pixel_size, normalise, refuse_meaningless,
                     scene_statistics, warn_sanitised)
from .runner import predict_tiles, tile_runner
from .tiling import TileGrid
from .writer import ClassMapWriter, MapWriter


@dataclass
class PredictOptions:
    """How to predict; None means the package's own setting (tile size, overlap, threshold)."""

    band_mapping: dict[str, tuple[int, int]] | None = None
    threshold: float | None = None
    extent: Sequence[float] | None = None
    tile_size: int | None = None
    overlap: int | None = None
    batch_size: int = 4
    device: str = "auto"
    engine: str = "auto"
    normalization: str = "package"
    tta: bool = False
    mask_rules: MaskRules | None = None
    polygon_options: PolygonOptions | None = None
    cog: bool = True
    dask_scheduler: str = ""  # address of a Dask scheduler: predict in strips on its workers (core/predict/distributed)
    workers: int = 1  # without a scheduler and > 1: a LocalCluster of that many single-thread worker processes
    strip_rows: int | None = None  # rows per strip on a cluster (None: as many as finish soonest)
    class_min_area: dict[int, float] | None = None  # multi-class polygons: minimum area (m²) per class value
    veto_classes: set[int] | None = None  # multi-class: classes the mask rules veto (None: all but background)


@dataclass
class PredictOutputs:
    """Where the maps go: the probability always; the mask and the polygons (made from the mask) when named."""

    probability: str | os.PathLike
    mask: str | os.PathLike | None = None
    polygons: str | os.PathLike | None = None


@dataclass
class Prediction:
    probability: Path
    mask: Path | None
    polygons: Path | None
    n_polygons: int | None
    threshold: float
    device: str
    tiles: int
    tile_size: tuple[int, int]
    overlap: int
    engine: str
    health: InputHealth | None = field(default=None, repr=False)


def predict_map(package, rasters: str | os.PathLike | Sequence[str | os.PathLike], outputs: PredictOutputs,
                options: PredictOptions | None = None, progress: Progress | None = None) -> Prediction:
    """Landslide probability (Float32 COG, NaN nodata), optional 0/1 mask (255 nodata) and polygons (GeoPackage).

    `package` is a models.package.ModelPackage; its input bands are found by band description in `rasters`
    (the first raster defines the output grid). Tiles shrink to fit the raster with the least recomputation.
    Engine "auto" runs networks with ONNX Runtime on the CPU when it is installed (else PyTorch). Normalisation
    "scene" standardises each band with this raster's own statistics instead of the training chips' (another
    processing level, haze or season). Mask rules veto pixels of the mask and polygons, never the probability.
    Outputs appear only when everything succeeded.
    """
    progress, options = or_null(progress), options or PredictOptions()
    rasters = [rasters] if isinstance(rasters, (str, os.PathLike)) else list(rasters)
    tile, overlap, threshold = _checked(package, rasters, outputs, options)
    sources = assign_bands(package.input_bands, rasters, options.band_mapping)
    multiclass = getattr(package, "is_multiclass", False)
    if multiclass and (options.dask_scheduler or options.workers > 1):
        raise InputError(f"Model '{package.path.name}' is multi-class; a Dask cluster (DASK_SCHEDULER, WORKERS) "
                         f"predicts binary models only so far. Predict it in this process (WORKERS 1, no address).")
    if options.dask_scheduler or options.workers > 1:
        from .distributed import PredictorParts, predict_on_cluster

        return predict_on_cluster(package, rasters, outputs, options, progress, (tile, overlap, threshold), sources,
                                  PredictorParts(_statistics, predict_rows, Prediction))
    device = pick_device(options.device)
    run_tiles, engine = tile_runner(package, device, options.tta, options.engine, progress.log)
    with ExitStack() as stack:
        stack.enter_context(raster.bounded_gdal_cache())
        inputs = InputReader(stack, rasters, sources)
        check_pixel_size(package, inputs.grid, rasters[0])
        grid = TileGrid.fit(raster.window_from_extent(inputs.grid, options.extent), tile, overlap)
        mean, std = _statistics(package, options, inputs, grid, progress)
        if multiclass:  # outputs.mask is the class map, outputs.probability one band per class
            writer = ClassMapWriter(stack, inputs.grid, grid, outputs.probability, outputs.mask,
                                    classes=package.classes, model=package.path.name,
                                    mask_rules=options.mask_rules if outputs.mask else None, cog=options.cog,
                                    veto_classes=options.veto_classes)
        else:
            writer = MapWriter(stack, inputs.grid, grid, outputs.probability, outputs.mask, threshold=threshold,
                               model=package.path.name, mask_rules=options.mask_rules if outputs.mask else None,
                               cog=options.cog)
        health = predict_rows(grid, inputs, run_tiles, mean, std, writer, options.batch_size,
                              SubProgress(progress, 0, 85 if outputs.polygons else 100))
        # Inside the outputs' block: a refusal here leaves no file behind.
        refuse_meaningless(package, rasters, sources, options.extent, health, inputs.absurd, mean, std)
    warn_sanitised(package, rasters, sources, inputs.absurd, health, progress)
    if multiclass:
        n_polygons = _class_outputs(package, outputs, options, SubProgress(progress, 85, 100))
    else:
        n_polygons = polygonize_mask(outputs.mask, outputs.polygons, outputs.probability, options.polygon_options,
                                     progress=SubProgress(progress, 85, 100)) if outputs.polygons else None
    progress.log(f"Prediction written: {outputs.probability} ({grid.width}×{grid.height} px, {grid.n_tiles} tiles "
                 f"of {grid.tile_h}×{grid.tile_w} px, overlap ≥ {overlap} px, {engine} on {device.type}"
                 f"{', TTA' if options.tta else ''}, "
                 + (f"{len(package.classes)} classes)" if multiclass else f"threshold {threshold:.2f})"))
    return Prediction(Path(outputs.probability), Path(outputs.mask) if outputs.mask else None,
                      Path(outputs.polygons) if outputs.polygons else None, n_polygons, threshold, device.type,
                      grid.n_tiles, (grid.tile_h, grid.tile_w), overlap, engine, health)


def _class_outputs(package, outputs: PredictOutputs, options: PredictOptions, progress: Progress) -> int | None:
    """Class names on the class map (GDAL categories, for the legend) and its polygons with a class field."""
    if not outputs.mask:
        return None
    raster.set_category_names(outputs.mask, package.classes)
    if not outputs.polygons:
        return None
    from .class_polygons import polygonize_classes

    floor = options.polygon_options.min_area_m2 if options.polygon_options else 0.0
    areas = {int(c["value"]): floor for c in package.classes}
    areas.update(options.class_min_area or {})
    return polygonize_classes(outputs.mask, outputs.polygons, package.classes, outputs.probability, areas,
                              progress=progress)


def _checked(package, rasters, outputs: PredictOutputs, options: PredictOptions) -> tuple[int, int, float]:
    """(tile size, overlap, threshold) after checking the options, or a clear refusal."""
    if not rasters:
        raise InputError("No input raster was given.")
    tile = int(options.tile_size or package.tile_size)
    overlap = int(package.manifest.get("overlap", tile // 8) if options.overlap is None else options.overlap)
    if tile % 32 or tile < 32:
        raise InputError(f"Tile size must be a multiple of 32 px (got {tile}).")
    if not 0 <= overlap <= tile // 2:
        raise InputError(f"Overlap must be between 0 and half the tile size ({tile // 2} px); got {overlap}.")
    if outputs.polygons and not outputs.mask:
        raise InputError("Polygons are made from the mask: ask for a mask output too.")
    if options.normalization not in NORMALIZATIONS:
        raise InputError(f"Normalisation must be one of {', '.join(NORMALIZATIONS)}, not '{options.normalization}'.")
    return tile, overlap, package.threshold if options.threshold is None else float(options.threshold)


def _statistics(package, options: PredictOptions, inputs: InputReader, grid: TileGrid, progress: Progress):
    """The per-band mean and deviation the network's inputs are standardised with."""
    if options.normalization != "scene":
        return package.normalization()
    mean, std = scene_statistics(inputs, grid.window)
    progress.log("Per-scene normalisation: " + ", ".join(
        f"{b} {m:.3g}±{s:.3g}" for b, m, s in zip(package.input_bands, mean, std)))
    return mean, std


def predict_rows(grid: TileGrid, inputs: InputReader, run_tiles, mean, std, writer: MapWriter, batch_size: int,
                 progress: Progress, rows: tuple[int, int] | None = None) -> InputHealth:
    """Predict output rows [first, end) of the grid's window (default: all) and hand them to `writer`.

    Only the tile batches that reach those rows are computed, in the grid's own order, so the rows come out
    exactly as in a prediction of the whole window. One background thread reads the next batch while the network
    runs, another writes finished rows.
    """
    first, end = rows or (0, grid.height)
    th, _ = grid.data_shape
    batches = [b for b in grid.batches(batch_size) if b.row < end and b.row + th > first]
    health = InputHealth(len(inputs.sources))
    blender = RowBlender(grid.width, grid.weights(), top=batches[0].row, channels=getattr(writer, "channels", 0))
    with ThreadPoolExecutor(max_workers=1) as reader, ThreadPoolExecutor(max_workers=1) as write_thread:
        writes = []
        pending = reader.submit(inputs.read, grid.batch_window(batches[0]))
        for j, batch in enumerate(batches):
            check_canceled(progress)
            data = pending.result()
            if j + 1 < len(batches):
                pending = reader.submit(inputs.read, grid.batch_window(batches[j + 1]))
            _add_batch(blender, batch, data, run_tiles, mean, std, grid, health)
            if j + 1 == len(batches) or batches[j + 1].row_index != batch.row_index:
                # Rows above the next tile row are final: hand them to the writer thread and drop them here.
                acc, wsum, valid, top = blender.pop(grid.row_end(batch.row_index))
                keep = slice(max(first - top, 0), max(min(end - top, acc.shape[0]), 0))
                if keep.stop > keep.start:
                    writes.append(write_thread.submit(writer.write_rows, acc[keep], wsum[keep], valid[keep],
                                                      top + keep.start))
                    health.n_valid += int(np.count_nonzero(valid[keep]))
                while writes and writes[0].done():
                    writes.pop(0).result()  # surfaces a write error early
            progress.set_progress(100.0 * (j + 1) / len(batches))
        for w in writes:
            w.result()
    return health


def _add_batch(blender: RowBlender, batch, data: np.ndarray, run_tiles, mean, std, grid: TileGrid,
               health: InputHealth) -> None:
    """Run the network on one batch of tiles (unless it holds no valid pixel) and add it to the blend."""
    th, _ = grid.data_shape
    c0 = batch.cols[0]
    blender.reach(batch.row + th)
    finite = np.isfinite(data)
    valid = np.all(finite, axis=0)
    blender.mark_valid(batch.row, c0, valid)
    health.band_valid += np.count_nonzero(finite, axis=(1, 2))
    if valid.any():  # a batch without one valid pixel has only nodata to write: no network needed
        x = normalise(data, finite, mean, std, health)
        probs = predict_tiles(run_tiles, x, [c - c0 for c in batch.cols], grid.tile_h, grid.tile_w)
        for c, p in zip(batch.cols, probs):
            blender.add(batch.row, c, p)
