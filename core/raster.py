"""Windowed raster I/O: band names, nodata as NaN, grid alignment and temp-file-then-rename outputs.

Every raster we write carries catalogue band names as GDAL band descriptions, so later steps find bands by name
(`post_VV`, `dNDVI`) rather than by position.
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import rasterio
from rasterio.coords import disjoint_bounds
from rasterio.vrt import WarpedVRT
from rasterio.warp import Resampling, transform_bounds
from rasterio.windows import Window

from .errors import InputError

DEFAULT_BLOCK = 1024  # pixels per side of a processing window: ~4 MB per float32 band


def open_raster(path: str | os.PathLike) -> rasterio.io.DatasetReader:
    """Open a raster for reading, or explain in one sentence why it cannot be."""
    path = str(path)
    if not os.path.exists(path):
        raise InputError(f"Raster file '{path}' does not exist.")
    try:
        return rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"'{path}' is not a raster GDAL can read ({exc}).") from None


def band_names(src) -> list[str]:
    """Band descriptions, with `band<N>` for bands that have none."""
    return [d if d else f"band{i}" for i, d in enumerate(src.descriptions, start=1)]


def band_index(src, name: str) -> int:
    """1-based index of the band described as `name` (case-insensitive), or a clear error."""
    names = band_names(src)
    for i, n in enumerate(names, start=1):
        if n.lower() == name.lower():
            return i
    raise InputError(f"Raster '{src.name}' has no band named '{name}'; its bands are: {', '.join(names)}.")


def read_float(src, indexes: Sequence[int] | int, window: Window | None = None) -> np.ndarray:
    """Read bands as float32 with NaN wherever the source says nodata (value or mask)."""
    single = isinstance(indexes, int)
    idx = [indexes] if single else list(indexes)
    data = src.read(idx, window=window, masked=True)
    out = np.ma.filled(data.astype(np.float32), np.nan)
    return out[0] if single else out


def block_windows(width: int, height: int, block: int = DEFAULT_BLOCK) -> Iterator[Window]:
    """Row-major windows of at most block×block pixels that tile a width×height grid."""
    for row in range(0, height, block):
        for col in range(0, width, block):
            yield Window(col, row, min(block, width - col), min(block, height - row))


def count_windows(width: int, height: int, block: int = DEFAULT_BLOCK) -> int:
    return math.ceil(width / block) * math.ceil(height / block)


def window_from_extent(src, extent: Sequence[float] | None, what: str = "extent") -> Window:
    """Pixel window of `src` covering a map extent (xmin, ymin, xmax, ymax) in the raster's CRS.

    None means the whole raster. The window is snapped outwards to whole pixels and clipped to the raster.
    """
    full = Window(0, 0, src.width, src.height)
    if extent is None:
        return full
    xmin, ymin, xmax, ymax = extent
    if disjoint_bounds((xmin, ymin, xmax, ymax), src.bounds):
        raise InputError(
            f"The {what} ({xmin:.2f}, {ymin:.2f}, {xmax:.2f}, {ymax:.2f}) does not overlap raster "
            f"'{src.name}' (bounds {tuple(round(b, 2) for b in src.bounds)})."
        )
    win = rasterio.windows.from_bounds(xmin, ymin, xmax, ymax, transform=src.transform)
    col0, row0 = math.floor(win.col_off + 1e-9), math.floor(win.row_off + 1e-9)
    col1, row1 = math.ceil(win.col_off + win.width - 1e-9), math.ceil(win.row_off + win.height - 1e-9)
    win = Window(col0, row0, col1 - col0, row1 - row0).intersection(full)
    if win.width < 1 or win.height < 1:
        raise InputError(f"The {what} covers less than one pixel of raster '{src.name}'.")
    return Window(int(win.col_off), int(win.row_off), int(win.width), int(win.height))


def same_grid(a, b, tolerance: float = 1e-6) -> bool:
    """True when two datasets share CRS, transform and size (pixels line up exactly)."""
    return (
        a.crs == b.crs
        and a.width == b.width
        and a.height == b.height
        and a.transform.almost_equals(b.transform, precision=tolerance)
    )


@contextmanager
def aligned(src, reference, resampling: Resampling = Resampling.bilinear):
    """`src` as seen on the grid of `reference`: itself if grids match, else a warped (reprojected) view.

    Reprojection happens window by window inside GDAL; a CRS is never just relabelled.
    """
    if same_grid(src, reference):
        yield src
        return
    if src.crs is None or reference.crs is None:
        raise InputError(f"Raster '{src.name}' or '{reference.name}' has no CRS, so they cannot be aligned.")
    bounds = transform_bounds(src.crs, reference.crs, *src.bounds, densify_pts=21)
    if disjoint_bounds(bounds, reference.bounds):
        raise InputError(
            f"Raster '{src.name}' does not overlap the reference grid of '{reference.name}': "
            f"their extents are disjoint."
        )
    with WarpedVRT(
        src,
        crs=reference.crs,
        transform=reference.transform,
        width=reference.width,
        height=reference.height,
        resampling=resampling,
        src_nodata=src.nodata,
        nodata=src.nodata if src.nodata is not None else (np.nan if src.dtypes[0].startswith("float") else None),
    ) as vrt:
        yield vrt


def _temp_sibling(path: Path, suffix: str = "") -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    os.unlink(tmp)
    return Path(tmp)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        for p in (path, Path(str(path) + ".aux.xml"), Path(str(path) + ".ovr")):
            if p.exists():
                p.unlink()


@contextmanager
def atomic_output(path: str | os.PathLike, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; rename it over `path` on success, delete it on any error.

    This is how every output is written, so a failed or canceled run never leaves a half-written file.
    """
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(path, suffix=path.suffix)
    if is_dir:
        tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if path.exists():
        _remove(path)
    os.replace(tmp, path)
    aux = Path(str(tmp) + ".aux.xml")
    if aux.exists():
        os.replace(aux, str(path) + ".aux.xml")


def gtiff_profile(*, width, height, count, dtype, crs, transform, nodata, block: int = 256) -> dict:
    """A tiled, compressed GeoTIFF profile (tiling keeps windowed reads and writes cheap)."""
    profile = dict(driver="GTiff", width=width, height=height, count=count, dtype=dtype, crs=crs,
                   transform=transform, nodata=nodata, compress="deflate", BIGTIFF="IF_SAFER")
    if width >= block and height >= block:
        profile.update(tiled=True, blockxsize=block, blockysize=block)
    if np.dtype(dtype).kind == "f":
        profile["predictor"] = 3
    return profile


@contextmanager
def create_raster(
    path: str | os.PathLike,
    *,
    width: int,
    height: int,
    crs,
    transform,
    dtype,
    descriptions: Sequence[str],
    nodata=None,
    tags: dict | None = None,
):
    """Open a new GeoTIFF for windowed writing; it appears at `path` only if the block exits cleanly."""
    with atomic_output(path) as tmp:
        profile = gtiff_profile(width=width, height=height, count=len(descriptions), dtype=dtype, crs=crs,
                                transform=transform, nodata=nodata)
        with rasterio.open(tmp, "w", **profile) as dst:
            for i, name in enumerate(descriptions, start=1):
                dst.set_band_description(i, name)
            if tags:
                dst.update_tags(**{k: str(v) for k, v in tags.items()})
            yield dst


def pixel_size(src) -> tuple[float, float]:
    return abs(src.transform.a), abs(src.transform.e)
