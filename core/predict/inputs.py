"""The inputs of a prediction: which raster band feeds each model band, reading them aligned on one grid,
normalising them, and refusing inputs that cannot give a meaningful map."""
from __future__ import annotations

import math
import os
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from rasterio.windows import Window

from ...common.errors import InputError
from ...common.progress import Progress
from ...models.package import positional_mapping_hint
from .. import raster

CLIP_Z = 1000.0  # normalised inputs are clipped to ±CLIP_Z standard deviations, so the network never overflows


def assign_bands(wanted: Sequence[str], rasters: Sequence[str | os.PathLike],
                 overrides: dict[str, tuple[int, int]] | None = None) -> list[tuple[int, int]]:
    """(raster number, band number) feeding each wanted band, 0-based raster / 1-based band.

    Bands are found by their description (case-insensitive) in the rasters in order; `overrides` maps a band name
    to an explicit (raster, band) choice, e.g. for rasters without band descriptions.
    """
    overrides = dict(overrides or {})
    unknown = [b for b in overrides if b not in wanted]
    if unknown:
        raise InputError(f"The band mapping (BAND_MAPPING) names band(s) {', '.join(unknown)} that the model does not "
                         f"use; it needs {', '.join(wanted)}. Map only those names, e.g. '{wanted[0]}=1:1'.")
    names = []
    for path in rasters:
        with raster.open_raster(path) as src:
            names.append([n.lower() for n in raster.band_names(src)])
    out, missing = [], []
    for band in wanted:
        if band in overrides:
            r, b = overrides[band]
            if not (0 <= r < len(rasters)) or not (1 <= b <= len(names[r])):
                raise InputError(f"Band mapping for '{band}' points to raster {r + 1}, band {b}, which does not exist.")
            out.append((r, b))
            continue
        found = next(((r, n.index(band.lower()) + 1) for r, n in enumerate(names) if band.lower() in n), None)
        if found is None:
            missing.append(band)
        out.append(found)
    if missing:
        have = "; ".join(f"{os.path.basename(str(p))}: {', '.join(n)}" for p, n in zip(rasters, names))
        raise InputError(f"No input raster has band(s) {', '.join(missing)} that the model needs "
                         f"(it expects {', '.join(wanted)}; found {have}). Build a change stack with the model's "
                         f"bands or map the bands by hand." + positional_mapping_hint(wanted, missing, names,
                                                                                      overrides))
    return out


class InputReader:
    """Reads the model's input bands, in order, from one or more rasters aligned on the first one's grid."""

    def __init__(self, stack: ExitStack, rasters: Sequence, sources: list[tuple[int, int]]):
        self.grid = stack.enter_context(raster.open_raster(rasters[0]))
        self.views = [self.grid] + [stack.enter_context(raster.aligned(stack.enter_context(raster.open_raster(p)),
                                                                       self.grid)) for p in rasters[1:]]
        self.sources = sources
        self.absurd = np.zeros(len(sources), np.int64)  # values read as nodata per band: ±Inf, ≥ ABSURD

    def read(self, window: Window) -> np.ndarray:
        out = np.empty((len(self.sources), int(window.height), int(window.width)), dtype=np.float32)
        by_raster: dict[int, list[tuple[int, int]]] = {}
        for i, (r, b) in enumerate(self.sources):
            by_raster.setdefault(r, []).append((i, b))
        for r, items in by_raster.items():
            data = raster.read_float(self.views[r], [b for _, b in items], window)
            for (i, _), band in zip(items, data):
                out[i] = band
        absurd = np.abs(out) >= raster.ABSURD  # ±Inf too; NaN (nodata already) compares False
        if absurd.any():
            out[absurd] = np.nan
            self.absurd += np.count_nonzero(absurd, axis=(1, 2))
        return out


@dataclass
class InputHealth:
    """What the prediction saw of its inputs, per band, for refusing meaningless input and for warnings."""

    n_bands: int
    n_valid: int = 0  # output pixels with a value (every input band valid)
    band_valid: np.ndarray = None  # valid values read per band (overlapping tiles repeat)
    seen: np.ndarray = None  # valid values per band that went into the network ...
    clipped: np.ndarray = None  # ... and those of them beyond ±CLIP_Z standard deviations
    low: np.ndarray = None  # range of the clipped bands' values, for the messages
    high: np.ndarray = None

    def __post_init__(self):
        n = self.n_bands
        self.band_valid, self.seen, self.clipped = (np.zeros(n, np.int64) for _ in range(3))
        self.low, self.high = np.full(n, np.inf, np.float32), np.full(n, -np.inf, np.float32)

    def merge(self, other: "InputHealth") -> None:
        """Add what another block of the same prediction saw."""
        self.n_valid += other.n_valid
        for name in ("band_valid", "seen", "clipped"):
            getattr(self, name)[:] += getattr(other, name)
        np.minimum(self.low, other.low, out=self.low)
        np.maximum(self.high, other.high, out=self.high)


def scene_statistics(inputs: "InputReader", window: Window, samples: int = 64, size: int = 128):
    """Per-band mean and std of a raster from a regular grid of small sample windows (bounded reads)."""
    n = max(1, int(math.sqrt(samples)))
    h, w = int(window.height), int(window.width)
    chunks = []
    for i in range(n):
        for j in range(n):
            r = int(window.row_off + (h - min(size, h)) * i / max(n - 1, 1))
            c = int(window.col_off + (w - min(size, w)) * j / max(n - 1, 1))
            chunks.append(inputs.read(Window(c, r, min(size, w), min(size, h))).reshape(len(inputs.sources), -1))
    data = np.concatenate(chunks, axis=1)
    valid = np.all(np.isfinite(data), axis=0)
    if valid.sum() < 100:
        raise InputError("Too few valid pixels to compute per-scene statistics; use the package's statistics.")
    mean = data[:, valid].mean(axis=1).astype(np.float32)
    std = data[:, valid].std(axis=1).astype(np.float32)
    return mean, np.where(std > 0, std, 1.0).astype(np.float32)


def normalise(data, finite, mean, std, health: InputHealth) -> np.ndarray:
    """Standardised network input: nodata 0 (the mean), values beyond ±CLIP_Z standard deviations clipped.

    `health` counts the values seen and clipped per band, for the messages about clipped bands.
    """
    x = np.empty_like(data)
    with np.errstate(over="ignore", invalid="ignore"):  # huge values over tiny deviations: clipped just below
        np.subtract(data, mean[:, None, None], out=x)
        np.divide(x, std[:, None, None], out=x)
    counts = np.count_nonzero(finite, axis=(1, 2))
    health.seen += counts
    if counts.sum() < finite.size:
        x[~finite] = 0.0  # nodata becomes the mean
    if float(np.max(np.abs(x), initial=0.0)) > CLIP_Z:  # one pass over the data when nothing is out of range
        beyond = np.abs(x) > CLIP_Z
        health.clipped += np.count_nonzero(beyond, axis=(1, 2))
        np.minimum(health.low, np.min(data, axis=(1, 2), where=beyond, initial=np.inf), out=health.low)
        np.maximum(health.high, np.max(data, axis=(1, 2), where=beyond, initial=-np.inf), out=health.high)
        np.clip(x, -CLIP_Z, CLIP_Z, out=x)
    return x


def _band_source(band: str, rasters, source: tuple[int, int]) -> str:
    r, b = source
    return f"{band} (band {b} of '{rasters[r]}', {'INPUT' if r == 0 else 'OTHER_INPUTS'})"


def refuse_meaningless(package, rasters, sources, extent, health: InputHealth, absurd, mean, std) -> None:
    """Refuse an input that made no valid output pixel, or a band wholly out of the range the model knows."""
    bands = package.input_bands
    where = " inside the extent (EXTENT)" if extent is not None else ""
    if health.n_valid == 0:
        empty = [i for i, n in enumerate(health.band_valid) if n == 0]
        if empty:
            listed = "; ".join(_band_source(bands[i], rasters, sources[i]) for i in empty)
            fills = (" or hold" if len(empty) > 1 else " or holds") + " only ±Inf or values of 1e30 and more " \
                "(undeclared fill values)" if absurd[empty].any() else ""
            raise InputError(f"The input has no valid pixel{where} in {listed}: "
                             f"{'these bands are' if len(empty) > 1 else 'the band is'} all nodata{fills}, so the "
                             f"landslide map would be empty. Check that the raster covers the area, that its nodata "
                             f"value is right and that the band holds data, then run again.")
        raise InputError(f"No pixel{where} has a valid value in every band the model needs ({', '.join(bands)}): "
                         f"the bands' valid areas do not overlap, so the landslide map would be empty. Check that "
                         f"the input rasters ({', '.join(map(str, rasters))}) cover the same area.")
    for i, band in enumerate(bands):
        if health.seen[i] and health.clipped[i] == health.seen[i]:
            raise InputError(f"Every value of {_band_source(band, rasters, sources[i])} lies more than "
                             f"{CLIP_Z:g} standard deviations from what the model was trained on (values "
                             f"{health.low[i]:.4g} … {health.high[i]:.4g}; training mean {mean[i]:.4g}, "
                             f"deviation {std[i]:.4g}): "
                             f"the band is in other units or scaled differently (e.g. reflectance 0–10000 instead "
                             f"of 0–1, linear instead of dB). Convert it to the units of the training data, or "
                             f"normalise with this raster's own statistics (NORMALIZATION), then run again.")


def warn_sanitised(package, rasters, sources, absurd, health: InputHealth, progress: Progress) -> None:
    """Say in the log which input values were taken as nodata or clipped (the map is still meaningful)."""
    for i, band in enumerate(package.input_bands):
        if absurd[i]:
            progress.log(f"Warning: {_band_source(band, rasters, sources[i])} holds ±Inf or values of 1e30 and more "
                         f"(fill values the file does not declare as nodata?); those pixels were taken as nodata.")
        if health.clipped[i]:
            progress.log(f"Warning: {_band_source(band, rasters, sources[i])} holds values ({health.low[i]:.4g} … "
                         f"{health.high[i]:.4g}) more than {CLIP_Z:g} standard deviations from the training data; they "
                         f"were clipped. Check the band's units.")


def check_pixel_size(package, src, path) -> None:
    trained = package.manifest.get("pixel_size")
    if not trained:
        return
    have = raster.pixel_size(src)
    if src.crs is not None and src.crs.is_geographic:
        have = (have[0] * 111_320 * math.cos(math.radians((src.bounds.top + src.bounds.bottom) / 2)), have[1])
    if trained_crs_geographic(package):
        return  # training pixel size in degrees: nothing reliable to compare
    ratio = have[0] / float(trained[0])
    if not 0.5 <= ratio <= 2.0:
        raise InputError(f"Raster '{path}' has {have[0]:.3g} m pixels but the model was trained on "
                         f"{trained[0]:g} m pixels; resample the input to the training resolution.")


def trained_crs_geographic(package) -> bool:
    wkt = package.manifest.get("crs")
    if not wkt:
        return False
    from rasterio.crs import CRS

    try:
        return CRS.from_wkt(wkt).is_geographic
    except Exception:  # noqa: BLE001 - an unreadable CRS is treated as unknown
        return False
