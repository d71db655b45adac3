"""Sentinel-2 and Sentinel-1 composites over several acquisitions, computed window by window.

Sentinel-2: clouds, cloud shadows and snow are masked with the scene classification (SCL) and, where given, a cloud
probability raster; 20/60 m bands are resampled onto the 10 m output grid; then per pixel either the greenest clear
observation (maximum NDVI, the "quality mosaic" of the Jølster study), or the median or a percentile of the clear
observations. Reflectance stays in the L2A scale (×10⁴), with the offset of processing baseline ≥ 04.00 removed so old
and new scenes mix.

Sentinel-1: GRD backscatter (VV, VH) in linear power or dB, optionally speckle-filtered (boxcar, Lee, refined Lee),
median over the scenes of an orbit direction in linear power, written in dB.

Acquisitions may be on different grids (tiles, UTM zones): each is warped onto the output grid window by window, so
memory is bounded by the window size times the number of dates, never by the scene size.
"""
from __future__ import annotations

import os
import re
import zipfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from rasterio.warp import Resampling
from rasterio.windows import Window
from scipy import ndimage

from . import raster
from .errors import InputError
from .progress import Progress, check_canceled, or_null
from .stack import S2_BANDS, catalogue_name, source_band_names

COMPOSITE_BLOCK = 512  # window side: 6 dates × 13 bands × 512² float32 ≈ 80 MB, whatever the scene size
# A composite reads each block about once, so the small GDAL cache of raster.bounded_gdal_cache costs no reads.
RASTER_SUFFIXES = {".tif", ".tiff", ".jp2", ".vrt", ".img"}

# --------------------------------------------------------------------------------------------------------------------
# Shared: percentiles over dates that ignore missing (NaN) observations


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


def _ndvi(nir: np.ndarray, red: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        ndvi = (nir - red) / (nir + red)
    return np.where(np.isfinite(ndvi), ndvi, np.nan).astype(np.float32)


def _sample(src, index: int) -> np.ndarray:
    """Valid values of one band from a decimated read (≤ 256² pixels): enough to tell units, cheap on any size."""
    h, w = min(src.height, 256), min(src.width, 256)
    data = raster.read_raw(src, index, out_shape=(h, w), masked=True).astype(np.float64)
    values = np.ma.compressed(data)
    return values[np.isfinite(values)]


# --------------------------------------------------------------------------------------------------------------------
# Sentinel-2 acquisitions: where each band is, in which scale

DEFAULT_SCL_MASK = (3, 8, 9, 10, 11)  # cloud shadow, cloud medium / high probability, thin cirrus, snow
SCL_CLASSES = {0: "no data", 1: "saturated or defective", 2: "dark area", 3: "cloud shadow", 4: "vegetation",
               5: "not vegetated", 6: "water", 7: "unclassified", 8: "cloud, medium probability",
               9: "cloud, high probability", 10: "thin cirrus", 11: "snow or ice"}
S2_METHODS = ("greenest", "median", "percentile")
_CLOUD_PROBABILITY = re.compile(r"CLDPRB|cloud.?prob|probability|s2cloudless", re.I)
_DATE = re.compile(r"(?<!\d)(20\d{6})(?:T\d{6})?(?!\d)")


@dataclass
class BandFile:
    """One band of one acquisition: a GDAL path (maybe /vsizip/...), a 1-based band index and its scale."""

    path: str
    index: int = 1
    offset: float = 0.0  # added to the digital number (processing baseline ≥ 04.00: −1000)
    scale: float = 1.0   # multiplies (DN + offset) into reflectance ×10⁴
    resolution: float = 0.0


@dataclass
class S2Acquisition:
    """One Sentinel-2 acquisition as found on disk: catalogue band name → file, plus SCL and cloud probability."""

    source: str
    bands: dict[str, BandFile]
    scl: BandFile | None = None
    cloud_probability: BandFile | None = None
    date: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return os.path.basename(os.path.normpath(self.source))


def read_s2_acquisition(path: str | os.PathLike, band_names: Sequence[str] | None = None) -> S2Acquisition:
    """Find the bands of one acquisition: a .SAFE folder (or its MTD_MSI*.xml), a zipped SAFE, a folder of
    single-band rasters named by band (B02.tif, T33UUP_..._B04_10m.jp2), or a multi-band raster whose band
    descriptions (or `band_names`) name the bands."""
    p = Path(path)
    if p.is_file() and p.suffix.lower() == ".xml" and p.name.upper().startswith("MTD_MSI"):
        p = p.parent
    if not p.exists():
        raise InputError(f"Sentinel-2 input '{path}' does not exist.")
    if p.is_dir():
        if (p / "GRANULE").is_dir() or p.suffix.upper() == ".SAFE":
            members = [str(f.relative_to(p)).replace(os.sep, "/") for f in p.rglob("*") if f.is_file()]
            return _safe(str(p), members, lambda m: str(p / m), lambda m: (p / m).read_text(errors="replace"))
        return _band_folder(p)
    if p.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(p) as z:
                members = [n for n in z.namelist() if not n.endswith("/")]
        except zipfile.BadZipFile:
            raise InputError(f"'{p}' is not a readable zip file.") from None

        def read_text(member):
            with zipfile.ZipFile(p) as z:
                return z.read(member).decode("utf-8", errors="replace")

        return _safe(str(p), members, lambda m: f"/vsizip/{p.resolve()}/{m}", read_text)
    return _raster_file(p, band_names)


_SAFE_BAND = re.compile(r"^(.*?)GRANULE/([^/]+)/IMG_DATA/(?:R(\d+)m/)?([^/]+)\.jp2$", re.I)
_SAFE_CLDPRB = re.compile(r"^(.*?)GRANULE/([^/]+)/QI_DATA/MSK_CLDPRB_(\d+)m\.(jp2|tif)$", re.I)
_RESOLUTION_SUFFIX = re.compile(r"_(\d{2})m$", re.I)
_NATIVE_RES = {"B02": 10, "B03": 10, "B04": 10, "B08": 10, "B05": 20, "B06": 20, "B07": 20, "B8A": 20, "B11": 20,
               "B12": 20, "SCL": 20, "B01": 60, "B09": 60, "B10": 60}


def _safe(source: str, members: list[str], gdal_path, read_text) -> S2Acquisition:
    """A SAFE product (folder or zip): the finest file of each band in GRANULE/<tile>/IMG_DATA[/R<res>m]."""
    found: dict[str, tuple[float, str]] = {}
    granules, prefix = set(), ""
    for m in members:
        hit = _SAFE_BAND.match(m)
        if not hit:
            continue
        stem = hit.group(4)
        name = catalogue_name(stem, loose=True)
        if name not in S2_BANDS and name != "SCL":
            continue  # TCI, AOT, WVP: not used
        prefix = hit.group(1)
        granules.add(hit.group(2))
        res_m = hit.group(3) or (_RESOLUTION_SUFFIX.search(stem).group(1) if _RESOLUTION_SUFFIX.search(stem) else None)
        res = float(res_m) if res_m else float(_NATIVE_RES.get(name, 10))
        if name not in found or res < found[name][0]:
            found[name] = (res, m)
    if not found:
        raise InputError(
            f"'{source}' is not a Sentinel-2 SAFE layout this plugin knows: no band files "
            f"GRANULE/<tile>/IMG_DATA/R10m/*_B04_10m.jp2 (L2A) or GRANULE/<tile>/IMG_DATA/*_B04.jp2 (L1C) inside.")
    if len(granules) > 1:
        raise InputError(f"'{source}' holds {len(granules)} granules ({', '.join(sorted(granules))}); give one tile "
                         f"per input (old multi-tile products: split them into one SAFE per tile).")
    offsets, quantification, notes = _safe_radiometry(members, prefix, read_text)
    bands = {}
    for name, (res, m) in found.items():
        if name == "SCL":
            continue
        offset = offsets.get(S2_BANDS.index(name), 0.0)
        bands[name] = BandFile(gdal_path(m), 1, offset, 10000.0 / quantification, res)
    scl = BandFile(gdal_path(found["SCL"][1]), 1, resolution=found["SCL"][0]) if "SCL" in found else None
    clouds = sorted((float(h.group(3)), m) for m in members if (h := _SAFE_CLDPRB.match(m)))
    cloud = BandFile(gdal_path(clouds[0][1]), 1, resolution=clouds[0][0]) if clouds else None
    date = _DATE.search(os.path.basename(os.path.normpath(source))) or _DATE.search(found[next(iter(found))][1])
    return S2Acquisition(source, bands, scl, cloud, date.group(1) if date else None, notes)


def _safe_radiometry(members: list[str], prefix: str, read_text) -> tuple[dict[int, float], float, list[str]]:
    """Per-band add-offsets (baseline ≥ 04.00 writes DN = 10⁴·reflectance + 1000) and the quantification value."""
    mtd = next((m for m in members if re.fullmatch(re.escape(prefix) + r"MTD_MSIL(1C|2A)\.xml", m)), None)
    if mtd is None:
        return {}, 10000.0, ["no MTD_MSIL*.xml: assuming reflectance ×10⁴ without offset"]
    text = read_text(mtd)
    offsets = {int(b): float(v) for b, v in
               re.findall(r'<(?:BOA|RADIO)_ADD_OFFSET band_id="(\d+)">\s*(-?[\d.]+)\s*<', text)}
    q = re.search(r"<(?:BOA_)?QUANTIFICATION_VALUE[^>]*>\s*([\d.]+)\s*<", text)
    quantification = float(q.group(1)) if q else 10000.0
    notes = [f"offset {offsets[1]:+g} removed (processing baseline ≥ 04.00)"] if offsets.get(1) else []
    return offsets, quantification, notes


def _band_folder(folder: Path) -> S2Acquisition:
    """A folder of single-band rasters, each named by its band (B02.tif, s2_B8A.jp2, T33UUP_..._SCL_20m.jp2)."""
    found: dict[str, BandFile] = {}
    cloud = None
    for f in sorted(folder.iterdir()):
        if not f.is_file() or f.suffix.lower() not in RASTER_SUFFIXES:
            continue
        if _CLOUD_PROBABILITY.search(f.stem):
            cloud = BandFile(str(f))
            continue
        name = catalogue_name(f.stem, loose=True)
        if name not in S2_BANDS and name != "SCL":
            continue
        with raster.open_raster(f) as src:
            res = raster.pixel_size(src)[0]
        if name not in found or res < found[name].resolution:
            found[name] = BandFile(str(f), 1, resolution=res)
    if not found:
        raise InputError(f"Folder '{folder}' holds no raster named like a Sentinel-2 band (e.g. B02.tif, "
                         f"T33UUP_20190715T102031_B04_10m.jp2) and is not a .SAFE product.")
    bands = {n: b for n, b in found.items() if n != "SCL"}
    acq = S2Acquisition(str(folder), bands, found.get("SCL"), cloud, _date_of(folder.name))
    _check_float_units(acq)
    return acq


def _raster_file(path: Path, band_names: Sequence[str] | None) -> S2Acquisition:
    """A multi-band raster whose band descriptions (or `band_names`) name Sentinel-2 bands, SCL, cloud probability."""
    with raster.open_raster(path) as src:
        names = source_band_names(src, path, band_names)
        res = raster.pixel_size(src)[0]
    bands, scl, cloud = {}, None, None
    for i, name in enumerate(names, start=1):
        if name in S2_BANDS:
            bands.setdefault(name, BandFile(str(path), i, resolution=res))
        elif name == "SCL":
            scl = BandFile(str(path), i, resolution=res)
        elif _CLOUD_PROBABILITY.search(name):
            cloud = BandFile(str(path), i, resolution=res)
    if not bands:
        raise InputError(f"'{path}' has no band named like a Sentinel-2 band (its bands: {', '.join(names)}); set "
                         f"band descriptions (B02, B03, B04, B08 …) or name the bands in file order (INPUT_BANDS).")
    acq = S2Acquisition(str(path), bands, scl, cloud, _date_of(path.name))
    _check_float_units(acq)
    return acq


def _date_of(name: str) -> str | None:
    m = _DATE.search(name)
    return m.group(1) if m else None


def _check_float_units(acq: S2Acquisition) -> None:
    """Floating-point reflectance may be 0–1 (rescaled to ×10⁴) or ×10⁴; anything else is refused."""
    probe_name = "B04" if "B04" in acq.bands else next(iter(acq.bands))
    probe = acq.bands[probe_name]
    with raster.open_raster(probe.path) as src:
        if np.dtype(src.dtypes[probe.index - 1]).kind != "f":
            return
        values = _sample(src, probe.index)
    values = values[values != 0]
    if values.size == 0:
        return
    p99, median = float(np.percentile(values, 99)), float(np.median(values))
    if median < 0:
        raise InputError(f"Band {probe_name} of '{acq.source}' has negative values (median {median:.3g}): not "
                         f"reflectance (0–1 or ×10⁴). Is it a Sentinel-1 (dB) raster?")
    if p99 <= 1.5:
        for b in acq.bands.values():
            b.scale = 10000.0
        acq.notes.append("reflectance 0–1 rescaled to ×10⁴")
    elif median > 20000:
        raise InputError(f"Band {probe_name} of '{acq.source}' has values around {median:.0f}: not reflectance "
                         f"(expected 0–1 or 0–10000 ×10⁴).")


# --------------------------------------------------------------------------------------------------------------------
# Reading acquisitions window by window on the output grid


class _Views:
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

    def is_fraction(self, band: BandFile) -> bool:
        """Cloud probability stored 0–1 (s2cloudless, floating point) rather than 0–100 (Sen2Cor, Earth Engine)?"""
        key = (band.path, band.index)
        if key not in self.fraction:
            self.get(band.path, Resampling.bilinear)
            src = self.datasets[band.path]
            if np.dtype(src.dtypes[band.index - 1]).kind != "f":
                self.fraction[key] = False  # integers are percent, even in a scene without a cloud (all 0 or 1)
            else:
                values = _sample(src, band.index)
                self.fraction[key] = bool(values.size) and float(values.max()) <= 1.0
        return self.fraction[key]


def _read_reflectance(views: _Views, band: BandFile, window: Window, what: str) -> np.ndarray:
    view = views.get(band.path, Resampling.bilinear, src_nodata=0, what=what)
    data = raster.read_float(view, band.index, window)
    data[data == 0] = np.nan  # Sentinel-2 writes 0 where there is no data, whether or not the file says so
    if band.offset or band.scale != 1.0:
        data = (data + band.offset) * band.scale
    return data


@dataclass
class CompositeResult:
    path: Path
    bands: list[str]
    clear_fraction: dict[str, float]  # per input: share of its output-grid pixels that were clear
    covered_fraction: float           # share of output pixels with at least one clear observation


def s2_composite(
    acquisitions: Sequence[str | os.PathLike | S2Acquisition],
    out_path: str | os.PathLike,
    method: str = "greenest",
    percentile: float = 50.0,
    bands: Sequence[str] | str | None = None,
    scl_classes: Sequence[int] = DEFAULT_SCL_MASK,
    cloud_probability: Sequence[str | os.PathLike | None] | None = None,
    cloud_threshold: float | None = 50.0,
    input_bands: Sequence[str] | None = None,
    crs=None,
    resolution: float | None = None,
    extent: Sequence[float] | None = None,
    extent_crs=None,
    block: int = COMPOSITE_BLOCK,
    progress: Progress | None = None,
) -> CompositeResult:
    """Cloud/shadow/snow-masked composite of several Sentinel-2 acquisitions, written as Float32 (nodata NaN).

    Bands: the requested reflectances (×10⁴; default all bands every acquisition has), NDVI (when B04 and B08 are
    there) and `clear_count`, the number of clear observations per pixel (0 where the output is nodata).
    `method`: "greenest" (per pixel the clear acquisition with the highest NDVI, all bands from it), "median" or
    "percentile" (per band over the clear acquisitions; NDVI from the composite B08 and B04).
    `cloud_probability`: one raster (or None) per acquisition, 0–100 or 0–1; pixels at or above `cloud_threshold`
    percent are masked (a SAFE's own MSK_CLDPRB is used where none is given). The output grid is the first
    acquisition's finest band, optionally reprojected (`crs`), resampled (`resolution`) and cropped (`extent`).
    """
    progress = or_null(progress)
    method = {"greenest pixel": "greenest", "greenest_pixel": "greenest"}.get(method.lower(), method.lower())
    if method not in S2_METHODS:
        raise InputError(f"Unknown composite method '{method}'; use one of {', '.join(S2_METHODS)}.")
    q = 50.0 if method == "median" else float(percentile)
    if method == "percentile" and not 0 <= q <= 100:
        raise InputError(f"The percentile must lie between 0 and 100, not {q}.")
    if not acquisitions:
        raise InputError("Give at least one Sentinel-2 acquisition.")
    acqs = [a if isinstance(a, S2Acquisition) else read_s2_acquisition(a, input_bands) for a in acquisitions]
    if cloud_probability:
        if len(cloud_probability) != len(acqs):
            raise InputError(f"{len(cloud_probability)} cloud probability raster(s) for {len(acqs)} acquisitions: "
                             f"give one per acquisition, in the same order.")
        for acq, prob in zip(acqs, cloud_probability):
            if prob:
                acq.cloud_probability = BandFile(str(prob))
    out_bands = _s2_output_bands(acqs, bands, method)
    has_ndvi = all("B04" in a.bands and "B08" in a.bands for a in acqs)
    needed = list(dict.fromkeys(out_bands + (["B04", "B08"] if has_ndvi else [])))
    descriptions = out_bands + (["NDVI"] if has_ndvi else []) + ["clear_count"]
    masks = sorted({int(c) for c in scl_classes})
    for acq in acqs:
        extra = ", ".join(acq.notes)
        progress.log(f"{acq.label}: {len(acq.bands)} bands{', SCL' if acq.scl else ', no SCL (only nodata masked)'}"
                     f"{', cloud probability' if acq.cloud_probability and cloud_threshold is not None else ''}"
                     f"{', ' + extra if extra else ''}")
    if not has_ndvi:
        progress.log("No NDVI: B04 and B08 are not in every acquisition.")

    first = acqs[0]
    finest = min((first.bands[b] for b in needed), key=lambda b: b.resolution)
    with ExitStack() as stack:
        stack.enter_context(raster.bounded_gdal_cache())
        grid = raster.target_grid(stack.enter_context(raster.open_raster(finest.path)), crs, resolution, extent,
                                  extent_crs)
        views = _Views(stack, grid)
        # Open (and overlap-check) every file before writing anything.
        for acq in acqs:
            for b in needed:
                views.get(acq.bands[b].path, Resampling.bilinear, 0, f"Acquisition '{acq.label}'")
        n_dates, n_windows = len(acqs), raster.count_windows(grid.width, grid.height, block)
        clear_total = np.zeros(n_dates, np.int64)
        covered = 0
        tags = {"LANDSLIDE_MAPPER": "s2_composite", "METHOD": method if method != "percentile" else f"p{q:g}",
                "SCL_MASK": ",".join(map(str, masks)), "ACQUISITIONS": ";".join(a.label for a in acqs),
                "DATES": ",".join(a.date or "?" for a in acqs)}
        with raster.create_raster(out_path, width=grid.width, height=grid.height, crs=grid.crs,
                                  transform=grid.transform, dtype="float32", descriptions=descriptions,
                                  nodata=np.nan, tags=tags) as dst:
            for k, win in enumerate(raster.block_windows(grid.width, grid.height, block)):
                check_canceled(progress)
                data, clear = _read_dates(views, acqs, needed, win, masks, cloud_threshold)
                count = clear.sum(axis=0)
                clear_total += clear.reshape(n_dates, -1).sum(axis=1)
                covered += int((count > 0).sum())
                out = _composite_window(data, count, needed, out_bands, method, q, has_ndvi)
                dst.write(np.concatenate([out, count[None].astype(np.float32)]), window=win)
                progress.set_progress(100.0 * (k + 1) / n_windows)
            if covered == 0:
                raise InputError(
                    f"No clear observation anywhere: every pixel of the {n_dates} acquisition(s) "
                    f"({', '.join(a.label for a in acqs)}) is nodata or masked as cloud, shadow or snow "
                    f"(SCL classes {', '.join(map(str, masks))}). Add clearer dates or change the masked classes.")
    n_px = grid.width * grid.height
    fractions = {a.label: float(c) / n_px for a, c in zip(acqs, clear_total)}
    for label, f in fractions.items():
        progress.log(f"{label}: {100 * f:.1f} % of the output clear")
    progress.log(f"S2 composite ({method}) written: {out_path} ({grid.width}×{grid.height} px, "
                 f"{100.0 * covered / n_px:.1f} % with a clear observation)")
    return CompositeResult(Path(out_path), descriptions, fractions, covered / n_px)


def _s2_output_bands(acqs: list[S2Acquisition], bands, method: str) -> list[str]:
    if bands:
        names = [b.strip() for b in bands.split(",")] if isinstance(bands, str) else [b.strip() for b in bands]
        wanted = []
        for n in filter(None, names):
            name = catalogue_name(n)
            if name not in S2_BANDS:
                raise InputError(f"'{n}' is not a Sentinel-2 band; use B01 … B12, B8A (NDVI is added by itself).")
            wanted.append(name)
        for acq in acqs:
            missing = [b for b in wanted if b not in acq.bands]
            if missing:
                raise InputError(f"Acquisition '{acq.source}' lacks band(s) {', '.join(missing)}; "
                                 f"its bands: {', '.join(sorted(acq.bands, key=S2_BANDS.index))}.")
    else:
        wanted = [b for b in S2_BANDS if all(b in a.bands for a in acqs)]
        if not wanted:
            raise InputError("The acquisitions share no Sentinel-2 band: " + "; ".join(
                f"{a.label}: {', '.join(a.bands)}" for a in acqs))
    if method == "greenest":
        for acq in acqs:
            missing = [b for b in ("B04", "B08") if b not in acq.bands]
            if missing:
                raise InputError(f"The greenest-pixel composite ranks dates by NDVI, which needs B04 and B08, but "
                                 f"acquisition '{acq.source}' lacks {', '.join(missing)}. Use the median instead.")
    return list(dict.fromkeys(wanted))


def _read_dates(views: _Views, acqs, needed, win: Window, masks, cloud_threshold):
    """(dates, bands, rows, cols) reflectance with NaN where not clear, and the (dates, rows, cols) clear mask."""
    h, w = int(win.height), int(win.width)
    data = np.empty((len(acqs), len(needed), h, w), np.float32)
    clear = np.empty((len(acqs), h, w), bool)
    for t, acq in enumerate(acqs):
        what = f"Acquisition '{acq.label}'"
        for b, name in enumerate(needed):
            data[t, b] = _read_reflectance(views, acq.bands[name], win, what)
        ok = np.isfinite(data[t]).all(axis=0)
        if acq.scl is not None and masks:
            scl = raster.read_float(views.get(acq.scl.path, Resampling.nearest, what=what), acq.scl.index, win)
            ok &= ~np.isin(scl, masks)
        if acq.cloud_probability is not None and cloud_threshold is not None:
            prob = raster.read_float(views.get(acq.cloud_probability.path, Resampling.bilinear, what=what),
                                     acq.cloud_probability.index, win)
            limit = cloud_threshold / 100.0 if views.is_fraction(acq.cloud_probability) else cloud_threshold
            ok &= ~(prob >= limit)  # NaN (no probability there) is no evidence of cloud
        data[t][:, ~ok] = np.nan
        clear[t] = ok
    return data, clear


def _composite_window(data, count, needed, out_bands, method, q, has_ndvi) -> np.ndarray:
    idx = [needed.index(b) for b in out_bands]
    if method == "greenest":
        ndvi = _ndvi(data[:, needed.index("B08")], data[:, needed.index("B04")])
        best = np.argmax(np.where(np.isnan(ndvi), -np.inf, ndvi), axis=0)
        picked = np.take_along_axis(data, best[None, None], axis=0)[0]
        out = [picked[idx], np.take_along_axis(ndvi, best[None], axis=0)]
    else:
        composite = nan_percentile(data, q, count[None])
        out = [composite[idx]]
        if has_ndvi:
            out.append(_ndvi(composite[needed.index("B08")], composite[needed.index("B04")])[None])
    out = np.concatenate(out).astype(np.float32)
    out[:, count == 0] = np.nan
    return out


# --------------------------------------------------------------------------------------------------------------------
# Sentinel-1: scenes, units, orbit direction

S1_UNITS = ("auto", "linear", "dB")
ORBITS = ("both", "ascending", "descending")
SPECKLE_FILTERS = ("none", "boxcar", "lee", "refined_lee")
DEFAULT_ENL = 4.4  # equivalent number of looks of IW GRDH (ESA product specification)
_ORBIT_TAGS = ("ORBIT_DIRECTION", "ORBITPROPERTIES_PASS", "ORBIT_PASS", "PASS", "PASS_DIRECTION", "FLIGHT_DIRECTION")
_ORBIT_WORDS = {"asc": "ascending", "ascending": "ascending", "desc": "descending", "dsc": "descending",
                "descending": "descending"}


@dataclass(eq=False)
class S1Scene:
    path: str
    bands: dict[str, int]  # "VV"/"VH" → 1-based band index
    orbit: str | None      # "ascending", "descending" or None (unknown)
    units: str             # "linear" or "dB"

    @property
    def label(self) -> str:
        return os.path.basename(self.path)


def read_s1_scene(path: str | os.PathLike, units: str = "auto", band_names: Sequence[str] | None = None,
                  orbit: str | None = None) -> S1Scene:
    """A Sentinel-1 backscatter raster: its VV/VH bands, orbit direction (metadata, else file name) and units."""
    units = _units_name(units)
    with raster.open_raster(path) as src:
        names = source_band_names(src, path, band_names)
        bands: dict[str, int] = {}
        for i, n in enumerate(names, start=1):
            if n in ("VV", "VH"):
                bands.setdefault(n, i)
        if not bands:
            raise InputError(f"'{path}' has no VV or VH band (its bands: {', '.join(names)}); set band descriptions "
                             f"or name the bands in file order (INPUT_BANDS, e.g. VV,VH).")
        tags = {k.upper(): str(v) for k, v in src.tags().items()}
        found_orbit = orbit or _orbit_from(tags, Path(path).name)
        detected = {pol: _detect_units(src, i, names[i - 1], path, pol, units) for pol, i in bands.items()}
    if len(set(detected.values())) > 1:
        raise InputError(f"'{path}' mixes units: " + ", ".join(f"{p} looks {u}" for p, u in detected.items()) +
                         "; give one unit for all bands.")
    return S1Scene(str(path), bands, found_orbit, next(iter(detected.values())))


def _units_name(units: str) -> str:
    for u in S1_UNITS:
        if units.lower() == u.lower():
            return u
    raise InputError(f"Unknown backscatter units '{units}'; use one of {', '.join(S1_UNITS)}.")


def _orbit_from(tags: dict[str, str], filename: str) -> str | None:
    for key in _ORBIT_TAGS:
        value = tags.get(key, "").strip().lower()
        if value in _ORBIT_WORDS or value in ("a", "d"):
            return _ORBIT_WORDS.get(value, "ascending" if value == "a" else "descending")
    for token in re.split(r"[^A-Za-z]+", Path(filename).stem):
        if token.lower() in _ORBIT_WORDS:
            return _ORBIT_WORDS[token.lower()]
    return None


def _detect_units(src, index: int, name_hint: str, path, pol: str, units: str) -> str:
    """'linear' or 'dB' from band units/description, else from the values; refuse values that are neither."""
    declared = (src.units[index - 1] or "").lower() if src.units else ""
    description = (src.descriptions[index - 1] or "").lower()
    values = _sample(src, index)
    if values.size == 0:
        raise InputError(f"Band {pol} of '{path}' has no valid pixel.")
    negative = float(np.mean(values < 0))
    median = float(np.median(values))
    looks = "dB" if negative > 0.5 else "linear" if median < 2.0 else None
    if units == "linear" and negative > 0.01:
        raise InputError(f"Band {pol} of '{path}' has negative values (median {median:.3g}): that is dB, not linear "
                         f"power. Set the units to dB (or auto).")
    if units == "dB" and looks == "linear" and negative == 0.0 and median < 1.0:
        raise InputError(f"Band {pol} of '{path}' has only values between 0 and {values.max():.3g} (median "
                         f"{median:.3g}): that is linear power, not dB. Set the units to linear (or auto).")
    if units != "auto":
        return units
    if "db" in declared or "decibel" in declared or description.endswith("db"):
        return "dB"
    if looks is None:
        raise InputError(f"Band {pol} of '{path}' has values around {median:.3g} with none negative: neither "
                         f"calibrated backscatter in dB (about −30…+5) nor linear power (about 0…1). Is it "
                         f"uncalibrated amplitude (DN)? Calibrate to σ⁰ (e.g. SNAP, or Earth Engine's "
                         f"S1_GRD) first.")
    return looks


# --------------------------------------------------------------------------------------------------------------------
# Speckle filters (linear power in, linear power out; NaN = nodata, ignored in the statistics)


def _local_stats(x: np.ndarray, weights: np.ndarray):
    """Weighted local mean and variance of x over the kernel `weights`, ignoring NaN."""
    valid = np.isfinite(x)
    x0 = np.where(valid, x, 0.0).astype(np.float64)
    n = ndimage.correlate(valid.astype(np.float64), weights, mode="constant")
    s1 = ndimage.correlate(x0, weights, mode="constant")
    s2 = ndimage.correlate(x0 * x0, weights, mode="constant")
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s1 / n
        var = np.maximum(s2 / n - mean * mean, 0.0)
    return mean, var


def boxcar_filter(x: np.ndarray, size: int = 7) -> np.ndarray:
    """Mean over a size×size window (valid pixels only)."""
    mean, _ = _local_stats(x, np.ones((size, size)))
    return np.where(np.isfinite(x), mean, np.nan).astype(np.float32)


def _lee(x, mean, var, enl: float):
    cu2 = 1.0 / enl  # squared coefficient of variation of fully developed speckle
    var_x = np.maximum((var - mean * mean * cu2) / (1.0 + cu2), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        b = np.where(var > 0, var_x / var, 0.0)
    return np.where(np.isfinite(x), mean + b * (x - mean), np.nan).astype(np.float32)


def lee_filter(x: np.ndarray, size: int = 7, enl: float = DEFAULT_ENL) -> np.ndarray:
    """Lee (1980) filter: local mean plus the part of the deviation the speckle model cannot explain."""
    mean, var = _local_stats(x, np.ones((size, size)))
    return _lee(x, mean, var, enl)


def _refined_lee_masks() -> list[tuple[np.ndarray, tuple[int, int]]]:
    """The 8 edge-aligned half windows of 7×7 (with the offset of the 3×3 sub-mean on their side)."""
    i, j = np.mgrid[0:7, 0:7]
    return [
        ((i <= 3), (-2, 0)), ((i >= 3), (2, 0)),           # above / below a horizontal edge
        ((j <= 3), (0, -2)), ((j >= 3), (0, 2)),           # left / right of a vertical edge
        ((j >= i), (-2, 2)), ((j <= i), (2, -2)),          # upper-right / lower-left of a "\" edge
        ((i + j <= 6), (-2, -2)), ((i + j >= 6), (2, 2)),  # upper-left / lower-right of a "/" edge
    ]


def refined_lee_filter(x: np.ndarray, enl: float = DEFAULT_ENL) -> np.ndarray:
    """Refined Lee (Lee 1981) on 7×7: the Lee filter over the half window on the centre's side of the strongest
    edge, found from the 3×3 means of the 7×7 window, so edges and scarps stay sharp."""
    mean3, _ = _local_stats(x, np.ones((3, 3)))
    pad = np.pad(mean3, 2, mode="edge")
    h, w = x.shape

    def sub(di, dj):  # the 3×3 mean centred (di, dj) pixels away
        return pad[2 + di:2 + di + h, 2 + dj:2 + dj + w]

    centre = mean3
    pairs = [((-2, 0), (2, 0)), ((0, -2), (0, 2)), ((-2, 2), (2, -2)), ((-2, -2), (2, 2))]
    gradients = np.stack([np.abs(sub(*a) - sub(*b)) for a, b in pairs])
    edge = np.argmax(np.nan_to_num(gradients, nan=-1.0), axis=0)  # which of the 4 edge orientations
    masks = _refined_lee_masks()
    mean_sel, var_sel = np.full((h, w), np.nan), np.full((h, w), np.nan)
    for e, (a, b) in enumerate(pairs):
        # the half whose 3×3 sub-mean is closer to the centre's is the homogeneous side
        first = np.abs(sub(*a) - centre) <= np.abs(sub(*b) - centre)
        for side, chosen in ((2 * e, first), (2 * e + 1, ~first)):
            sel = (edge == e) & chosen
            if sel.any():
                m, v = _local_stats(x, masks[side][0].astype(np.float64))
                mean_sel[sel], var_sel[sel] = m[sel], v[sel]
    return _lee(x, mean_sel, var_sel, enl)


def speckle_filter(x: np.ndarray, method: str, size: int = 7, enl: float = DEFAULT_ENL) -> np.ndarray:
    if method in (None, "", "none"):
        return x
    if method == "boxcar":
        return boxcar_filter(x, size)
    if method == "lee":
        return lee_filter(x, size, enl)
    if method == "refined_lee":
        return refined_lee_filter(x, enl)
    raise InputError(f"Unknown speckle filter '{method}'; use one of {', '.join(SPECKLE_FILTERS)}.")


def _filter_halo(method: str, size: int) -> int:
    return 0 if method in (None, "", "none") else 3 if method == "refined_lee" else size // 2


# --------------------------------------------------------------------------------------------------------------------
# Sentinel-1 composite


def s1_composite(
    inputs: Sequence[str | os.PathLike | S1Scene],
    out_path: str | os.PathLike | None,
    orbit: str = "both",
    per_direction: dict[str, str | os.PathLike] | None = None,
    units: str = "auto",
    speckle: str = "none",
    window: int = 7,
    enl: float = DEFAULT_ENL,
    input_bands: Sequence[str] | None = None,
    crs=None,
    resolution: float | None = None,
    extent: Sequence[float] | None = None,
    extent_crs=None,
    block: int = COMPOSITE_BLOCK,
    progress: Progress | None = None,
) -> dict[str, Path]:
    """Median backscatter of Sentinel-1 GRD scenes, VV and VH in dB (Float32, nodata NaN).

    `orbit` picks the scenes of `out_path` ("both", "ascending", "descending"); `per_direction` maps "ascending"/
    "descending" to extra outputs made in the same pass. The median is taken in linear power (never averaging dB),
    after an optional speckle filter ("boxcar", "lee", "refined_lee"; `window` odd, refined Lee is always 7×7).
    Returns {selection: path}.
    """
    progress = or_null(progress)
    orbit = orbit.lower()
    if orbit not in ORBITS:
        raise InputError(f"Unknown orbit direction '{orbit}'; use one of {', '.join(ORBITS)}.")
    speckle = (speckle or "none").lower().replace(" ", "_")
    if speckle not in SPECKLE_FILTERS:
        raise InputError(f"Unknown speckle filter '{speckle}'; use one of {', '.join(SPECKLE_FILTERS)}.")
    if speckle in ("boxcar", "lee") and (window < 3 or window % 2 == 0):
        raise InputError(f"The speckle filter window must be an odd number of pixels ≥ 3, not {window}.")
    if not inputs:
        raise InputError("Give at least one Sentinel-1 raster.")
    scenes = [s if isinstance(s, S1Scene) else read_s1_scene(s, units, input_bands) for s in inputs]
    outputs: dict[str, Path] = {}
    if out_path:
        outputs[orbit] = Path(out_path)
    for direction, path in (per_direction or {}).items():
        if direction not in ("ascending", "descending"):
            raise InputError(f"Per-direction outputs are 'ascending' or 'descending', not '{direction}'.")
        if path:
            outputs[direction] = Path(path)
    if not outputs:
        raise InputError("No output was asked for.")
    selections = {}
    for sel in outputs:
        chosen = [s for s in scenes if sel == "both" or s.orbit == sel]
        unknown = [s.label for s in scenes if s.orbit is None]
        if sel != "both" and unknown:
            raise InputError(f"The orbit direction of {', '.join(unknown)} is unknown (no ORBIT_DIRECTION metadata, "
                             f"no ASC/DESC in the file name), so the {sel} scenes cannot be picked. Rename the files "
                             f"(e.g. ..._ASC.tif) or use orbit 'both'.")
        if not chosen:
            found = ", ".join(f"{s.label}: {s.orbit}" for s in scenes)
            raise InputError(f"None of the Sentinel-1 rasters is {sel} ({found}).")
        for pol in ("VV", "VH"):
            if not any(pol in s.bands for s in chosen):
                raise InputError(f"None of the {sel} Sentinel-1 rasters ({', '.join(s.label for s in chosen)}) has a "
                                 f"{pol} band; both polarisations are needed.")
        selections[sel] = chosen
    used = list(dict.fromkeys(s for sel in selections.values() for s in sel)) if len(selections) > 1 else \
        next(iter(selections.values()))
    for s in used:
        progress.log(f"{s.label}: {', '.join(s.bands)} in {s.units}, {s.orbit or 'orbit unknown'}")
    halo = _filter_halo(speckle, window)
    with ExitStack() as stack:
        stack.enter_context(raster.bounded_gdal_cache())
        grid = raster.target_grid(stack.enter_context(raster.open_raster(used[0].path)), crs, resolution, extent,
                                  extent_crs)
        views = _Views(stack, grid)
        for s in used:
            views.get(s.path, Resampling.bilinear, what=f"Sentinel-1 raster '{s.label}'")
        writers = {}
        for sel, path in outputs.items():
            tags = {"LANDSLIDE_MAPPER": "s1_composite", "ORBIT": sel, "SPECKLE_FILTER": speckle,
                    "SCENES": ";".join(s.label for s in selections[sel]), "UNITS": "dB"}
            writers[sel] = stack.enter_context(raster.create_raster(
                path, width=grid.width, height=grid.height, crs=grid.crs, transform=grid.transform,
                dtype="float32", descriptions=["VV", "VH"], nodata=np.nan, tags=tags))
        n_windows = raster.count_windows(grid.width, grid.height, block)
        for k, win in enumerate(raster.block_windows(grid.width, grid.height, block)):
            check_canceled(progress)
            linear = {(s.path, pol): _read_linear(views, s, pol, win, halo, grid, speckle, window, enl)
                      for s in used for pol in s.bands}
            for sel, dst in writers.items():
                out = []
                for pol in ("VV", "VH"):
                    obs = np.stack([linear[(s.path, pol)] for s in selections[sel] if pol in s.bands])
                    median = nan_percentile(obs, 50.0)
                    with np.errstate(divide="ignore", invalid="ignore"):
                        out.append(np.where(median > 0, 10.0 * np.log10(median), np.nan))
                dst.write(np.stack(out).astype(np.float32), window=win)
            progress.set_progress(100.0 * (k + 1) / n_windows)
    for sel, path in outputs.items():
        progress.log(f"S1 median ({sel}, {len(selections[sel])} scene(s), filter {speckle}) written: {path}")
    return outputs


def _read_linear(views: _Views, scene: S1Scene, pol: str, win: Window, halo: int, grid, speckle, size, enl):
    """One polarisation of one scene on a window, in linear power, speckle-filtered with a halo of context."""
    view = views.get(scene.path, Resampling.bilinear)
    if halo:
        col0, row0 = max(0, int(win.col_off) - halo), max(0, int(win.row_off) - halo)
        col1 = min(grid.width, int(win.col_off + win.width) + halo)
        row1 = min(grid.height, int(win.row_off + win.height) + halo)
        data = raster.read_float(view, scene.bands[pol], Window(col0, row0, col1 - col0, row1 - row0))
    else:
        col0, row0 = int(win.col_off), int(win.row_off)
        data = raster.read_float(view, scene.bands[pol], win)
    if scene.units == "dB":
        data = np.power(10.0, data / 10.0, dtype=np.float32)
    data = speckle_filter(data, speckle, size, enl)
    r, c = int(win.row_off) - row0, int(win.col_off) - col0
    return data[r:r + int(win.height), c:c + int(win.width)]


def parse_classes(text: str | Sequence[int]) -> list[int]:
    """SCL classes from '3, 8, 9' (or a list), each checked against the SCL legend."""
    values = text if not isinstance(text, str) else [v for v in re.split(r"[,;\s]+", text) if v]
    out = []
    for v in values:
        try:
            c = int(v)
        except ValueError:
            raise InputError(f"SCL classes are whole numbers 0–11 (e.g. 3, 8, 9, 10, 11), not '{v}'.") from None
        if c not in SCL_CLASSES:
            raise InputError(f"SCL class {c} does not exist; classes are 0–11 "
                             f"({'; '.join(f'{k} {n}' for k, n in SCL_CLASSES.items())}).")
        out.append(c)
    return out

