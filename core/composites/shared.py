"""What both composites share: the window size, date percentiles that skip missing observations, NDVI, and reading
acquisitions on the output grid.
"""
from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rasterio.warp import Resampling

from .. import raster
from ...common.errors import InputError


COMPOSITE_BLOCK = 512  # window side: 6 dates × 13 bands × 512² float32 ≈ 80 MB, whatever the scene size


# A composite reads each block about once, so the small GDAL cache of raster.bounded_gdal_cache costs no reads.
RASTER_SUFFIXES = {".tif", ".tiff", ".jp2", ".vrt", ".img"}


def nan_percentile(stack: np.ndarray, q: float, count: np.ndarray | None = None) -> np.ndarray:
    """Per-pixel q-th percentile over axis 0 ignoring NaN, interpolated linearly like `np.nanpercentile`.

    One sort of the (small) date axis, then a gather: much faster than `np.nanpercentile`, which loops per pixel.
    `count` (valid observations per pixel, broadcastable to `stack.shape[1:]`) saves a pass when already known.
    """
    if not 0.0 <= q <= 100.0:
        raise InputError(f"A percentile must lie between 0 and 100, not {q}.")
    if count is None:
        count = np.isfinite(stack).sum(axis=0)
    ordered = np.sort(stack, axis=0)  # NaN sorts last, so the n valid values come first
    count = np.asarray(count)
    rank = (q / 100.0) * np.maximum(count - 1, 0)
    lo = np.floor(rank).astype(np.intp)
    hi = np.minimum(lo + 1, np.maximum(count - 1, 0))
    frac = (rank - lo).astype(np.float32)
    shape = (1,) * (stack.ndim - lo.ndim) + lo.shape
    low = np.take_along_axis(ordered, lo.reshape(shape), axis=0)[0]
    high = np.take_along_axis(ordered, hi.reshape(shape), axis=0)[0]
    out = low + (high - low) * frac
    return np.where(count > 0, out, np.nan).astype(np.float32)


def ndvi_of(nir: np.ndarray, red: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        ndvi = (nir - red) / (nir + red)
    return np.where(np.isfinite(ndvi), ndvi, np.nan).astype(np.float32)


def decimated_sample(src, index: int) -> np.ndarray:
    """Valid values of one band from a decimated read (≤ 256² pixels): enough to tell units, cheap on any size."""
    h, w = min(src.height, 256), min(src.width, 256)
    data = raster.read_raw(src, index, out_shape=(h, w), masked=True).astype(np.float64)
    values = np.ma.compressed(data)
    return values[np.isfinite(values)]


class GridViews:
    """Open datasets, each warped onto the output grid once per resampling kind; closed together."""

    def __init__(self, stack: ExitStack, grid: raster.Grid):
        self.stack, self.grid, self.views, self.datasets = stack, grid, {}, {}
        self.fraction: dict[tuple[str, int], bool] = {}  # cloud probability stored 0–1 rather than 0–100?

    def get(self, path: str, resampling: Resampling, src_nodata=None, what: str = ""):
        key = (path, resampling)
        if key not in self.views:
            if path not in self.datasets:
                self.datasets[path] = self.stack.enter_context(raster.open_raster(path))
            try:
                self.views[key] = self.stack.enter_context(
                    raster.aligned(self.datasets[path], self.grid, resampling, src_nodata=src_nodata))
            except InputError as exc:
                raise InputError(f"{what}: {exc}" if what else str(exc)) from None
        return self.views[key]

    def is_fraction(self, band) -> bool:
        """Cloud probability stored 0–1 (s2cloudless, floating point) rather than 0–100 (Sen2Cor, Earth Engine)?"""
        key = (band.path, band.index)
        if key not in self.fraction:
            self.get(band.path, Resampling.bilinear)
            src = self.datasets[band.path]
            if np.dtype(src.dtypes[band.index - 1]).kind != "f":
                self.fraction[key] = False  # integers are percent, even in a scene without a cloud (all 0 or 1)
            else:
                values = decimated_sample(src, band.index)
                self.fraction[key] = bool(values.size) and float(values.max()) <= 1.0
        return self.fraction[key]


@dataclass
class CompositeResult:
    path: Path
    bands: list[str]
    clear_fraction: dict[str, float]  # per input: share of its output-grid pixels that were clear
    covered_fraction: float           # share of output pixels with at least one clear observation
