"""Windowed raster I/O: band names, nodata as NaN, grid alignment and temp-file-then-rename outputs.

Every raster we write carries catalogue band names as GDAL band descriptions, so later steps find bands by name
(`post_VV`, `dNDVI`) rather than by position.
"""
from __future__ import annotations

import errno
import math
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio._err import CPLE_BaseError
from rasterio.coords import BoundingBox, disjoint_bounds
from rasterio.crs import CRS
from rasterio.vrt import WarpedVRT
from rasterio.warp import Resampling, calculate_default_transform, transform_bounds
from rasterio.windows import Window

from ..common.errors import InputError
from ..common.outputs import atomic_output, discard, temp_sibling

DEFAULT_BLOCK = 1024  # pixels per side of a processing window: ~4 MB per float32 band
GDAL_CACHE_BYTES = 256 * 2**20  # GDAL's default block cache is 5 % of RAM (1.2 GB here): bound it


def bounded_gdal_cache(**options) -> rasterio.Env:
    """A rasterio environment whose GDAL block cache stays small, so memory does not grow with raster size."""
    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES, **options)


def open_raster(path: str | os.PathLike, **options) -> rasterio.io.DatasetReader:
    """Open a raster for reading, or explain in one sentence why it cannot be.

    `options` are GDAL open options, e.g. num_threads="ALL_CPUS" to decode the tiles of one read in parallel.
    """
    path = str(path)
    if not path.startswith("/vsi") and not os.path.exists(path):
        raise InputError(f"Raster file '{path}' does not exist.")
    try:
        src = rasterio.open(path, **options)
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"'{path}' is not a raster GDAL can read ({exc}).") from None
    if "num_threads" in options:
        try:
            check_blocks_in_file(src)
        except InputError:
            src.close()
            raise
    return src


# Errors GDAL raises while reading pixels: a truncated download, a damaged copy, a vanished network file.
READ_ERRORS = (rasterio.errors.RasterioError, CPLE_BaseError, OSError)
# |value| at or above this is no measurement but a fill value the file does not declare as nodata (±3.4e38, the
# float32 extremes ArcGIS and others write), or ±Inf: readers that compute with values take it as nodata.
ABSURD = 1e30


def source_path(src) -> str:
    """The file behind a dataset, or behind the warped view of one (messages name what the user gave)."""
    inner = getattr(src, "src_dataset", None)
    return str(getattr(inner, "name", None) or getattr(src, "name", src))


def unreadable(path, exc: BaseException | str) -> InputError:
    """The error for a raster whose pixels cannot be read, naming the file and what to do."""
    detail = " ".join(str(exc).replace("Read or write failed. ", "").split())
    return InputError(f"Raster '{path}' could not be read ({detail}): the file is truncated or damaged, e.g. by an "
                      f"interrupted download or copy. Replace it with a good copy (download, copy or export it "
                      f"again), then run again.")


@contextmanager
def reading(src_or_path) -> Iterator[None]:
    """Turn a GDAL/rasterio/OS error raised while reading into an InputError that names the file."""
    try:
        yield
    except READ_ERRORS as exc:
        path = src_or_path if isinstance(src_or_path, (str, os.PathLike)) else source_path(src_or_path)
        raise unreadable(path, exc) from None


def read_raw(src, *args, **kwargs) -> np.ndarray:
    """`src.read(...)`, with read errors (truncated or damaged files) explained as an InputError."""
    with reading(src):
        return src.read(*args, **kwargs)


def check_blocks_in_file(src) -> None:
    """Refuse a GeoTIFF with blocks beyond the end of the file (a truncated download or copy).

    GDAL's multi-threaded decoding (num_threads) fills a block it cannot read with zeros and raises nothing, so a
    file read that way is checked first. Only the block table is read, never the pixels.
    """
    if src.driver != "GTiff" or not os.path.isfile(src.name):
        return
    size = os.path.getsize(src.name)
    missing = missing_block(src, size, sparse_ok=True)  # an input may leave empty blocks out on purpose
    if missing:
        raise unreadable(src.name, f"{missing} lies beyond the end of the file ({size} bytes)")


def missing_block(src, size: int, sparse_ok: bool) -> str | None:
    """The first block of `src` whose bytes are not inside its file of `size` bytes, or None.

    `sparse_ok=False` also counts blocks without bytes (never written) as missing.
    """
    per_band = src.interleaving == rasterio.enums.Interleaving.band
    for bidx in (range(1, src.count + 1) if per_band else [1]):
        bh, bw = src.block_shapes[bidx - 1]
        for row in range(math.ceil(src.height / bh)):
            for col in range(math.ceil(src.width / bw)):
                offset = src.get_tag_item(f"BLOCK_OFFSET_{col}_{row}", "TIFF", bidx=bidx)
                nbytes = src.get_tag_item(f"BLOCK_SIZE_{col}_{row}", "TIFF", bidx=bidx)
                if not (offset and nbytes and int(offset)):
                    if not sparse_ok:
                        return f"block {col},{row} of band {bidx}"
                elif int(offset) + int(nbytes) > size:
                    return f"block {col},{row} of band {bidx}"
    return None


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


def read_float(src, indexes: Sequence[int] | int, window: Window | None = None,
               out: np.ndarray | None = None) -> np.ndarray:
    """Read bands as float32 with NaN wherever the source says nodata (value or mask).

    `out`: a float32 array of the result's shape to read into (reused buffers spare fresh memory per window).
    """
    single = isinstance(indexes, int)
    idx = [indexes] if single else list(indexes)
    if all(_nodata_is_a_value(src, i) for i in idx):
        # Fast path (no mask-band read, no masked array): GDAL converts to float32 while reading, then the
        # nodata value becomes NaN. Only for dtypes float32 holds exactly, so the comparison stays exact.
        if out is not None:
            out = read_raw(src, idx, window=window, out=out.reshape((len(idx),) + out.shape[-2:]))
        else:
            out = read_raw(src, idx, window=window, out_dtype="float32")
        for k, i in enumerate(idx):
            nodata = src.nodatavals[i - 1]
            if nodata is not None and not np.isnan(nodata):
                out[k][out[k] == np.float32(nodata)] = np.nan
        return out[0] if single else out
    data = read_raw(src, idx, window=window, masked=True)
    filled = np.ma.filled(data.astype(np.float32), np.nan)
    if out is not None:
        out[...] = filled[0] if single else filled
        return out
    return filled[0] if single else filled


def _nodata_is_a_value(src, index: int) -> bool:
    """True when band `index` marks nodata only by a value (or not at all) and float32 holds its values exactly."""
    flags = src.mask_flag_enums[index - 1]
    if src.dtypes[index - 1] not in ("float32", "uint8", "int8", "uint16", "int16"):
        return False
    if rasterio.enums.MaskFlags.all_valid in flags:
        return True
    nodata = src.nodatavals[index - 1]
    return rasterio.enums.MaskFlags.nodata in flags and nodata is not None and \
        (np.isnan(nodata) or float(np.float32(nodata)) == nodata)


def _differs(data: np.ndarray, value: float) -> np.ndarray:
    """data != value without upcasting the array (a value the dtype cannot hold differs everywhere)."""
    if data.dtype.kind in "iu":
        info = np.iinfo(data.dtype)
        if value != int(value) or not info.min <= value <= info.max:
            return np.ones(data.shape, dtype=bool)
    return data != data.dtype.type(value)


def read_valid(src, index: int, window: Window | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One band in its own dtype plus a boolean valid mask (nodata value/mask and non-finite floats excluded).

    The fast path for streaming checks: no float conversion and no mask-band read when nodata is a plain value.
    """
    data = read_raw(src, index, window=window)
    flags = src.mask_flag_enums[index - 1]
    nodata = src.nodatavals[index - 1]
    if data.dtype.kind == "f" and (nodata is None or np.isnan(nodata)) and \
            rasterio.enums.MaskFlags.per_dataset not in flags and rasterio.enums.MaskFlags.alpha not in flags:
        return data, np.isfinite(data)
    if rasterio.enums.MaskFlags.nodata in flags and nodata is not None:
        valid = _differs(data, nodata)
    elif rasterio.enums.MaskFlags.all_valid in flags:
        valid = np.ones(data.shape, dtype=bool)
    else:  # a mask band or alpha band says which pixels are valid
        with reading(src):
            valid = src.read_masks(index, window=window) > 0
    if data.dtype.kind == "f":
        valid &= np.isfinite(data)
    return data, valid


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
def aligned(src, reference, resampling: Resampling = Resampling.bilinear, src_nodata=None):
    """`src` as seen on the grid of `reference` (a dataset or a `Grid`): itself if grids match, else a warped view.

    Reprojection happens window by window inside GDAL; a CRS is never just relabelled. `src_nodata` is the value
    to treat as nodata when the file declares none (Sentinel-2 JP2s use 0 without saying so), so resampling never
    blends it into valid pixels.
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
        src_nodata=src.nodata if src.nodata is not None else src_nodata,
        nodata=(src.nodata if src.nodata is not None else src_nodata if src_nodata is not None
                else (np.nan if src.dtypes[0].startswith("float") else None)),
    ) as vrt:
        yield vrt


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
    cog: bool = False,
    fast: bool = False,
):
    """Open a new GeoTIFF for windowed writing; it appears at `path` only if the block exits cleanly.

    `cog=True` converts the finished file to a Cloud-Optimised GeoTIFF with overviews (GDAL streams the copy,
    so memory stays bounded), for fast display of large maps in QGIS and on the web.
    `fast=True` compresses at DEFLATE level 1: ~7× faster to write for a few % more bytes (class maps).
    """
    with atomic_output(path) as tmp:
        stage = temp_sibling(Path(tmp), ".tif") if cog else tmp
        profile = gtiff_profile(width=width, height=height, count=len(descriptions), dtype=dtype, crs=crs,
                                transform=transform, nodata=nodata)
        if cog:  # the COG copy compresses; compressing the staging file too would do the work twice
            profile.pop("predictor", None)
            profile["compress"] = "none"
        if fast:
            profile["zlevel"] = 1
        try:
            with rasterio.open(stage, "w", **profile) as dst:
                for i, name in enumerate(descriptions, start=1):
                    dst.set_band_description(i, name)
                if tags:
                    dst.update_tags(**{k: str(v) for k, v in tags.items()})
                yield dst
            check_tiff_complete(stage, path)
            if cog:
                # DEFLATE level 1: half the time of the default level for ~4 % more bytes (measured on a
                # 4096² probability map), readable by every GDAL-based GIS.
                options = dict(COMPRESS="DEFLATE", LEVEL=1, OVERVIEWS="AUTO", BLOCKSIZE=512, BIGTIFF="IF_SAFER",
                               NUM_THREADS="ALL_CPUS",
                               OVERVIEW_RESAMPLING="AVERAGE" if np.dtype(dtype).kind == "f" else "NEAREST")
                if np.dtype(dtype).kind == "f":
                    options["PREDICTOR"] = "FLOATING_POINT"
                try:
                    rasterio.shutil.copy(stage, tmp, driver="COG", **options)
                except rasterio.errors.RasterioError as exc:
                    raise InputError(_write_failure(tmp, path, str(exc))) from None
                check_tiff_complete(tmp, path)
        except rasterio.errors.RasterioError as exc:
            if str(Path(tmp).name) in str(exc) or str(Path(stage).name) in str(exc):  # GDAL failed on our file
                raise InputError(_write_failure(tmp, path, str(exc).split(": ", 1)[-1])) from None
            raise
        finally:
            if cog:
                discard(Path(stage))


def check_tiff_complete(path: str | os.PathLike, output: str | os.PathLike) -> None:
    """Refuse a GeoTIFF whose blocks did not all reach the disk (full disk, file-size limit, I/O error).

    GDAL reports such write errors only to its log and still closes the file "successfully", so the file's own
    block table is checked instead: every block of every band and overview must lie inside the file. This reads
    only the directory, never the pixels.
    """
    size = os.path.getsize(path)
    try:
        with rasterio.open(path) as src:
            levels = len(src.overviews(1))
        for level in [None] + list(range(levels)):  # each overview is a grid of blocks of its own
            with rasterio.open(path, overview_level=level) as src:
                missing = missing_block(src, size, sparse_ok=False)
            if missing:
                raise InputError(_write_failure(path, output, f"{missing} did not reach the disk"))
    except rasterio.errors.RasterioError as exc:
        raise InputError(_write_failure(path, output, str(exc))) from None


@contextmanager
def ogr_writing(output) -> Iterator[None]:
    """Turn OGR's write errors (a RuntimeError once GDAL exceptions are on, or an OSError) into one sentence."""
    try:
        yield
    except RuntimeError as exc:
        raise InputError(_write_failure(output, output, str(exc) or "OGR could not write the features")) from None


def _write_failure(path, output, detail: str) -> str:
    import shutil

    folder = Path(output).absolute().parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    if free is not None and free < 64 * 2**20:
        return (f"Not enough space on the disk of '{folder}' to write '{Path(output).name}' ({free / 2**20:.1f} MB "
                f"free); nothing was written. Free some space or choose another folder, then run again.")
    return (f"Writing '{output}' failed ({detail}); nothing was written. Check the disk and the folder's "
            f"file-size limits, then run again.")


def pixel_size(src) -> tuple[float, float]:
    return abs(src.transform.a), abs(src.transform.e)


@dataclass(frozen=True)
class Grid:
    """A raster grid (CRS, transform, size) that outputs are written on and inputs are aligned to.

    It has the attributes `aligned`, `same_grid` and `window_from_extent` read from a dataset, so it can stand in
    for a reference raster.
    """

    crs: CRS
    transform: Affine
    width: int
    height: int
    name: str = "the target grid"

    @classmethod
    def of(cls, src) -> "Grid":
        return cls(src.crs, src.transform, int(src.width), int(src.height), getattr(src, "name", "the target grid"))

    @property
    def bounds(self) -> BoundingBox:
        return BoundingBox(*_bounds(self.transform, self.width, self.height))

    @property
    def res(self) -> tuple[float, float]:
        return abs(self.transform.a), abs(self.transform.e)

    def window_transform(self, window: Window) -> Affine:
        return rasterio.windows.transform(window, self.transform)

    def crop(self, window: Window) -> "Grid":
        """The sub-grid covered by a pixel window of this grid."""
        return Grid(self.crs, self.window_transform(window), int(window.width), int(window.height), self.name)

    def with_resolution(self, resolution: float) -> "Grid":
        """Same CRS and top-left corner, square pixels of `resolution` CRS units, covering the same bounds."""
        if not resolution or resolution <= 0:
            raise InputError(f"The resolution must be a positive number of CRS units, not {resolution}.")
        left, bottom, right, top = self.bounds
        width = max(1, math.ceil((right - left) / resolution - 1e-6))
        height = max(1, math.ceil((top - bottom) / resolution - 1e-6))
        return Grid(self.crs, Affine(resolution, 0, left, 0, -resolution, top), width, height, self.name)

    def reprojected(self, crs, resolution: float | None = None) -> "Grid":
        """A north-up grid in `crs` covering this grid's area (GDAL picks the resolution unless one is given)."""
        crs = CRS.from_user_input(crs)
        if self.crs is None:
            raise InputError(f"{self.name} has no CRS, so it cannot be reprojected to {crs.to_string()}.")
        transform, width, height = calculate_default_transform(
            self.crs, crs, self.width, self.height, *self.bounds, resolution=resolution)
        return Grid(crs, transform, int(width), int(height), self.name)


def _bounds(transform: Affine, width: int, height: int) -> tuple[float, float, float, float]:
    x0, x1 = sorted((transform.c, transform.c + transform.a * width))
    y0, y1 = sorted((transform.f, transform.f + transform.e * height))
    return x0, y0, x1, y1


def target_grid(src, crs=None, resolution: float | None = None, extent: Sequence[float] | None = None,
                extent_crs=None) -> Grid:
    """The output grid: `src`'s grid, optionally reprojected to `crs`, resampled to `resolution` (units of the
    output CRS) and cropped to `extent` (xmin, ymin, xmax, ymax in `extent_crs`, default the output CRS), snapped
    outwards to whole pixels."""
    grid = Grid.of(src)
    reproject = crs is not None and (grid.crs is None or CRS.from_user_input(crs) != grid.crs)
    if resolution is not None:
        check_resolution(resolution, area_bounds(grid.reprojected(crs) if reproject else grid, extent, extent_crs))
    if reproject:
        grid = grid.reprojected(crs, resolution)
    elif resolution:
        grid = grid.with_resolution(resolution)
    if extent is not None:
        if extent_crs is not None and grid.crs is not None and CRS.from_user_input(extent_crs) != grid.crs:
            extent = transform_bounds(extent_crs, grid.crs, *extent, densify_pts=21)
        grid = grid.crop(window_from_extent(grid, extent))
    return grid


MAX_OUTPUT_PIXELS = 2**31  # 2.1 billion pixels (8.6 GB per Float32 band): beyond this a pixel size is a mistake


def area_bounds(grid, extent: Sequence[float] | None = None, extent_crs=None) -> tuple[float, float, float, float]:
    """The part of `grid` an output covers: its bounds, cut to `extent` (in `extent_crs`, default the grid's CRS)
    where they overlap."""
    left, bottom, right, top = grid.bounds
    if extent is None:
        return left, bottom, right, top
    if extent_crs is not None and grid.crs is not None and CRS.from_user_input(extent_crs) != grid.crs:
        extent = transform_bounds(extent_crs, grid.crs, *extent, densify_pts=21)
    box = (max(left, extent[0]), max(bottom, extent[1]), min(right, extent[2]), min(top, extent[3]))
    return box if box[0] < box[2] and box[1] < box[3] else (left, bottom, right, top)


def check_resolution(resolution: float, bounds: Sequence[float], parameter: str = "RESOLUTION") -> None:
    """Refuse an output pixel size that is not positive, that is larger than the area `bounds` (xmin, ymin, xmax,
    ymax in the output CRS) itself, or that would make more than MAX_OUTPUT_PIXELS pixels over it."""
    width, height = bounds[2] - bounds[0], bounds[3] - bounds[1]
    if not (math.isfinite(resolution) and resolution > 0):
        raise InputError(f"The output resolution {parameter} must be a positive pixel size in CRS units, not "
                         f"{resolution:g}; leave {parameter} empty to keep the input's pixel size.")
    if resolution > max(width, height):
        raise InputError(f"The output resolution {parameter} = {resolution:g} is larger than the whole area "
                         f"({width:.6g} × {height:.6g} CRS units), so the output would be a single pixel; give a "
                         f"pixel size below {max(width, height):.6g}, or leave {parameter} empty to keep the "
                         f"input's.")
    cols, rows = max(1.0, width / resolution), max(1.0, height / resolution)
    if cols * rows > MAX_OUTPUT_PIXELS:
        finest = math.sqrt(width * height / MAX_OUTPUT_PIXELS)
        raise InputError(f"The output resolution {parameter} = {resolution:g} would make a raster of {cols:.3g} × "
                         f"{rows:.3g} pixels, more than the {MAX_OUTPUT_PIXELS:,} (2^31) pixels an output may have; "
                         f"give a pixel size of at least {finest:.3g} CRS units, or a smaller EXTENT.")


def colour_table(classes: Sequence[dict]) -> dict:
    """A GDAL colour table {value: (r, g, b, a)} from a class table ({value, color '#rrggbb'}); others transparent."""
    table = {v: (0, 0, 0, 0) for v in range(256)}
    for c in classes:
        col = str(c.get("color") or c.get("colour") or "#808080")
        alpha = int(col[7:9], 16) if len(col) == 9 else 255
        table[int(c["value"])] = tuple(int(col[k:k + 2], 16) for k in (1, 3, 5)) + (alpha,)
    return table


def set_category_names(path: str | os.PathLike, classes: Sequence[dict]) -> None:
    """Class names as GDAL category names of band 1 (kept in the GeoTIFF's .aux.xml), so QGIS and GDAL list them."""
    from osgeo import gdal

    names = [""] * (max(int(c["value"]) for c in classes) + 1)
    for c in classes:
        names[int(c["value"])] = str(c["name"])
    ds = gdal.Open(str(path), gdal.GA_Update)
    if ds is None:
        raise OSError(errno.EIO, "cannot open the class map to write its class names", str(path))
    ds.GetRasterBand(1).SetCategoryNames(names)
    ds.FlushCache()
    ds = None
