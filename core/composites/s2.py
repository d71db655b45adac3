"""The Sentinel-2 composite: clouds, shadows and snow masked, then the greenest, median or percentile pixel."""
from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path
from typing import Sequence

import numpy as np
from rasterio.warp import Resampling
from rasterio.windows import Window

from .. import raster
from ...common.errors import InputError
from ...common.progress import Progress, check_canceled, or_null
from ..stack import S2_BANDS, catalogue_name
from .s2_scenes import BandFile, DEFAULT_SCL_MASK, S2Acquisition, S2_METHODS, read_s2_acquisition
from .shared import COMPOSITE_BLOCK, CompositeResult, GridViews, ndvi_of, nan_percentile


def _read_reflectance(views: GridViews, band: BandFile, window: Window, what: str) -> np.ndarray:
    view = views.get(band.path, Resampling.bilinear, src_nodata=0, what=what)
    data = raster.read_float(view, band.index, window)
    data[data == 0] = np.nan  # Sentinel-2 writes 0 where there is no data, whether or not the file says so
    if band.offset or band.scale != 1.0:
        data = (data + band.offset) * band.scale
    return data


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
    acqs = _acquisitions(acquisitions, cloud_probability, input_bands)
    out_bands = _s2_output_bands(acqs, bands, method)
    has_ndvi = all("B04" in a.bands and "B08" in a.bands for a in acqs)
    needed = list(dict.fromkeys(out_bands + (["B04", "B08"] if has_ndvi else [])))
    descriptions = out_bands + (["NDVI"] if has_ndvi else []) + ["clear_count"]
    masks = sorted({int(c) for c in scl_classes})
    _log_acquisitions(acqs, has_ndvi, cloud_threshold, progress)

    first = acqs[0]
    finest = min((first.bands[b] for b in needed), key=lambda b: b.resolution)
    with ExitStack() as stack:
        stack.enter_context(raster.bounded_gdal_cache())
        grid = raster.target_grid(stack.enter_context(raster.open_raster(finest.path)), crs, resolution, extent,
                                  extent_crs)
        views = GridViews(stack, grid)
        # Open (and overlap-check) every file before writing anything.
        for acq in acqs:
            for b in needed:
                views.get(acq.bands[b].path, Resampling.bilinear, 0, f"Acquisition '{acq.label}'")
        n_dates, n_windows = len(acqs), raster.count_windows(grid.width, grid.height, block)
        clear_total = np.zeros(n_dates, np.int64)
        covered = 0
        tags = _tags(method, q, masks, acqs)
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
                _refuse_no_clear_observation(acqs, masks)
    n_px = grid.width * grid.height
    fractions = {a.label: float(c) / n_px for a, c in zip(acqs, clear_total)}
    for label, f in fractions.items():
        progress.log(f"{label}: {100 * f:.1f} % of the output clear")
    progress.log(f"S2 composite ({method}) written: {out_path} ({grid.width}×{grid.height} px, "
                 f"{100.0 * covered / n_px:.1f} % with a clear observation)")
    return CompositeResult(Path(out_path), descriptions, fractions, covered / n_px)


def _refuse_no_clear_observation(acqs, masks) -> None:
    raise InputError(f"No clear observation anywhere: every pixel of the {len(acqs)} acquisition(s) "
                     f"({', '.join(a.label for a in acqs)}) is nodata or masked as cloud, shadow or snow "
                     f"(SCL classes {', '.join(map(str, masks))}). Add clearer dates or change the masked classes.")


def _tags(method: str, q: float, masks, acqs) -> dict:
    """What the composite's GeoTIFF says about how it was made."""
    return {"LANDSLIDE_MAPPER": "s2_composite", "METHOD": method if method != "percentile" else f"p{q:g}",
            "SCL_MASK": ",".join(map(str, masks)), "ACQUISITIONS": ";".join(a.label for a in acqs),
            "DATES": ",".join(a.date or "?" for a in acqs)}


def _acquisitions(acquisitions, cloud_probability, input_bands) -> list[S2Acquisition]:
    """The acquisitions read, each with its cloud probability raster when one is given."""
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
    return acqs


def _log_acquisitions(acqs, has_ndvi: bool, cloud_threshold, progress: Progress) -> None:
    for acq in acqs:
        extra = ", ".join(acq.notes)
        progress.log(f"{acq.label}: {len(acq.bands)} bands{', SCL' if acq.scl else ', no SCL (only nodata masked)'}"
                     f"{', cloud probability' if acq.cloud_probability and cloud_threshold is not None else ''}"
                     f"{', ' + extra if extra else ''}")
    if not has_ndvi:
        progress.log("No NDVI: B04 and B08 are not in every acquisition.")


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


def _read_dates(views: GridViews, acqs, needed, win: Window, masks, cloud_threshold):
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
        ndvi = ndvi_of(data[:, needed.index("B08")], data[:, needed.index("B04")])
        best = np.argmax(np.where(np.isnan(ndvi), -np.inf, ndvi), axis=0)
        picked = np.take_along_axis(data, best[None, None], axis=0)[0]
        out = [picked[idx], np.take_along_axis(ndvi, best[None], axis=0)]
    else:
        composite = nan_percentile(data, q, count[None])
        out = [composite[idx]]
        if has_ndvi:
            out.append(ndvi_of(composite[needed.index("B08")], composite[needed.index("B04")])[None])
    out = np.concatenate(out).astype(np.float32)
    out[:, count == 0] = np.nan
    return out
