"""Sliding-window inference with weighted blending, written as it goes (memory bounded by the tile size).

Tiles sit on a regular grid spread evenly between the raster edges. Each tile's probabilities are weighted by a
smooth window that is highest in the tile centre, summed, and divided by the summed weights, so tile seams vanish
and a pixel seen by one tile only (raster borders) keeps that tile's value. Tiles are read in batches, the next
batch on a background thread while the network computes; only one tile row of accumulators is kept.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from rasterio.windows import Window

from . import raster
from ..common.errors import InputError
from .postprocess import MaskRules, PolygonOptions, open_mask_rules, polygonize_mask
from ..common.progress import Progress, SubProgress, check_canceled, or_null
from .training import _autocast, pick_device

MASK_NODATA = 255
WRITE_CHUNK = 2048  # columns written at once: keeps write buffers small on very wide rasters
RUN_PIXELS = 1 << 20  # pixels per network call: 1024² tiles one by one, 256² tiles 16 at a time
CLIP_Z = 1000.0  # normalised inputs are clipped to ±CLIP_Z standard deviations, so the network never overflows


def _ramp(length: int, overlap: int) -> np.ndarray:
    ramp = np.ones(length, dtype=np.float32)
    overlap = min(overlap, length // 2)
    if overlap > 0:
        t = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        taper = 0.5 - 0.5 * np.cos(np.pi * t)
        ramp[:overlap] = taper
        ramp[length - overlap:] = taper[::-1]
    return np.maximum(ramp, 1e-3)


def blend_weights(tile_h: int, overlap: int, tile_w: int | None = None) -> np.ndarray:
    """Separable weight window: 1 in the centre, a raised-cosine taper over `overlap` px at each edge.

    The taper never reaches 0, so edge pixels covered by a single tile keep that tile's prediction.
    """
    return np.outer(_ramp(tile_h, overlap), _ramp(tile_w or tile_h, overlap))


def tile_positions(length: int, tile: int, min_overlap: int) -> list[int]:
    """Fewest tile offsets covering [0, length) with at least `min_overlap` px shared by neighbours."""
    if length <= tile:
        return [0]
    n = math.ceil((length - tile) / (tile - min_overlap)) + 1
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def fit_tile(length: int, max_tile: int, min_overlap: int) -> int:
    """The smallest tile side (multiple of 32, ≤ max_tile) that covers `length` with the fewest tiles.

    Shrinking the tile to fit the raster avoids computing pixels twice beyond the overlap the blending needs.
    """
    if length <= max_tile:
        return max(32, math.ceil(length / 32) * 32)
    n = math.ceil((length - min_overlap) / (max_tile - min_overlap))
    return min(max_tile, math.ceil((length + (n - 1) * min_overlap) / n / 32) * 32)


# ------------------------------------------------------------------------------------------- input bands
def assign_bands(wanted: Sequence[str], rasters: Sequence[str | os.PathLike],
                 overrides: dict[str, tuple[int, int]] | None = None) -> list[tuple[int, int]]:
    """(raster number, band number) feeding each wanted band, 0-based raster / 1-based band.

    Bands are found by their description (case-insensitive) in the rasters in order; `overrides` maps a band name
    to an explicit (raster, band) choice, e.g. for rasters without band descriptions.
    """
    overrides = dict(overrides or {})
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
        from ..models.package import positional_mapping_hint

        have = "; ".join(f"{os.path.basename(str(p))}: {', '.join(n)}" for p, n in zip(rasters, names))
        raise InputError(f"No input raster has band(s) {', '.join(missing)} that the model needs "
                         f"(it expects {', '.join(wanted)}; found {have}). Build a change stack with the model's "
                         f"bands or map the bands by hand." + positional_mapping_hint(wanted, missing, names,
                                                                                      overrides))
    return out


class _Inputs:
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


# ------------------------------------------------------------------------------------------------ prediction
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


def sliding_window_predict(
    package,
    rasters: str | os.PathLike | Sequence[str | os.PathLike],
    out_probability: str | os.PathLike,
    out_mask: str | os.PathLike | None = None,
    out_polygons: str | os.PathLike | None = None,
    *,
    band_mapping: dict[str, tuple[int, int]] | None = None,
    threshold: float | None = None,
    extent: Sequence[float] | None = None,
    tile_size: int | None = None,
    overlap: int | None = None,
    batch_size: int = 4,
    device: str = "auto",
    engine: str = "auto",
    normalization: str = "package",
    tta: bool = False,
    mask_rules: MaskRules | None = None,
    polygon_options: PolygonOptions | None = None,
    cog: bool = True,
    progress: Progress | None = None,
) -> Prediction:
    """Landslide probability (Float32 COG, NaN nodata), optional 0/1 mask (255 nodata) and polygons (GeoPackage).

    `package` is a models.package.ModelPackage; its input bands are found by band description in `rasters`
    (the first raster defines the output grid). `tile_size` is the largest tile side; tiles shrink to fit the
    raster with the least recomputation. `engine` "auto" runs networks with ONNX Runtime on the CPU when it is
    installed (else PyTorch), "torch" or "onnx" force one. `normalization` "scene" standardises each band with
    this raster's own statistics instead of the training chips' (for scenes with another processing level,
    haze or season than the training data). Mask rules veto pixels of the mask and polygons, never
    the probability. Outputs appear only when everything succeeded.
    """
    progress = or_null(progress)
    rasters = [rasters] if isinstance(rasters, (str, os.PathLike)) else list(rasters)
    if not rasters:
        raise InputError("No input raster was given.")
    tile = int(tile_size or package.tile_size)
    overlap = int(package.manifest.get("overlap", tile // 8) if overlap is None else overlap)
    if tile % 32 or tile < 32:
        raise InputError(f"Tile size must be a multiple of 32 px (got {tile}).")
    if not 0 <= overlap <= tile // 2:
        raise InputError(f"Overlap must be between 0 and half the tile size ({tile // 2} px); got {overlap}.")
    threshold = package.threshold if threshold is None else float(threshold)
    if out_polygons and not out_mask:
        raise InputError("Polygons are made from the mask: ask for a mask output too.")
    sources = assign_bands(package.input_bands, rasters, band_mapping)
    dev = pick_device(device)
    run_tiles, engine_used = _tile_runner(package, dev, tta, engine, progress.log)
    if normalization not in ("package", "scene"):
        raise InputError(f"Normalisation must be 'package' or 'scene', not '{normalization}'.")
    mean, std = package.normalization()
    predict_progress = SubProgress(progress, 0, 85 if out_polygons else 100)

    with ExitStack() as stack:
        stack.enter_context(raster.bounded_gdal_cache())
        inputs = _Inputs(stack, rasters, sources)
        src = inputs.grid
        _check_pixel_size(package, src, rasters[0])
        win = raster.window_from_extent(src, extent)
        width, height = int(win.width), int(win.height)
        if normalization == "scene":
            mean, std = scene_statistics(inputs, win)
            progress.log("Per-scene normalisation: " + ", ".join(
                f"{b} {m:.3g}±{s:.3g}" for b, m, s in zip(package.input_bands, mean, std)))
        tile_h, tile_w = fit_tile(height, tile, overlap), fit_tile(width, tile, overlap)
        rows = tile_positions(height, tile_h, overlap)
        cols = tile_positions(width, tile_w, overlap)
        transform = src.window_transform(win)
        prob_dst = stack.enter_context(raster.create_raster(
            out_probability, width=width, height=height, crs=src.crs, transform=transform, dtype="float32",
            descriptions=["landslide_probability"], nodata=np.nan, cog=cog,
            tags={"LANDSLIDE_MAPPER": "probability", "MODEL": package.path.name}))
        mask_dst = stack.enter_context(raster.create_raster(
            out_mask, width=width, height=height, crs=src.crs, transform=transform, dtype="uint8",
            descriptions=["landslide"], nodata=MASK_NODATA,
            tags={"LANDSLIDE_MAPPER": "mask", "THRESHOLD": threshold})) if out_mask else None
        allowed = stack.enter_context(open_mask_rules(mask_rules, src)) if out_mask else None
        reader = stack.enter_context(ThreadPoolExecutor(max_workers=1))
        th, tw = min(tile_h, height), min(tile_w, width)  # data size of a tile (tiles may be padded)
        w = blend_weights(tile_h, overlap, tile_w)[:th, :tw]
        # One job = a batch of neighbouring tiles in one tile row, read as one window; the next job's window is
        # read on the background thread while the network computes the current one.
        jobs = [(k, r, cols[s:s + batch_size]) for k, r in enumerate(rows) for s in range(0, len(cols), batch_size)]

        def read_job(job):
            _, r, batch_cols = job
            c0 = batch_cols[0]
            return inputs.read(Window(win.col_off + c0, win.row_off + r, batch_cols[-1] + tw - c0, th))

        writer = stack.enter_context(ThreadPoolExecutor(max_workers=1))
        writes = []

        def write_rows(acc_rows, wsum_rows, valid, top):
            """Finished rows → probability and mask, in column chunks (runs on the writer thread, in order)."""
            for c in range(0, width, WRITE_CHUNK):
                cw = min(WRITE_CHUNK, width - c)
                with np.errstate(invalid="ignore", divide="ignore"):
                    out = np.where(valid[:, c:c + cw], acc_rows[:, c:c + cw] / wsum_rows[:, c:c + cw], np.nan)
                out = out.astype(np.float32)
                out_win = Window(c, top, cw, out.shape[0])
                prob_dst.write(out[None], window=out_win)
                if mask_dst is not None:
                    mask = np.where(np.isfinite(out), out >= threshold, MASK_NODATA).astype(np.uint8)
                    if allowed is not None:
                        mask[(mask == 1) & ~allowed(Window(win.col_off + c, win.row_off + top, cw, out.shape[0]))] = 0
                    mask_dst.write(mask[None], window=out_win)

        acc_top = 0  # first output row held in the accumulators (the rows not yet written)
        n_valid = 0  # output pixels with a value (every input band valid)
        band_valid = np.zeros(len(sources), np.int64)  # valid values read per band (overlapping tiles repeat)
        seen = np.zeros(len(sources), np.int64)  # valid values per band that went into the network ...
        clipped = np.zeros(len(sources), np.int64)  # ... and those of them beyond ±CLIP_Z standard deviations
        low = np.full(len(sources), np.inf, np.float32)  # range of the clipped bands' values, for the messages
        high = np.full(len(sources), -np.inf, np.float32)
        acc = np.zeros((0, width), dtype=np.float32)
        wsum = np.zeros((0, width), dtype=np.float32)
        valid_rows = np.zeros((0, width), dtype=bool)
        pending = reader.submit(read_job, jobs[0])
        for j, job in enumerate(jobs):
            check_canceled(progress)
            k, r, batch_cols = job
            data = pending.result()
            if j + 1 < len(jobs):
                pending = reader.submit(read_job, jobs[j + 1])
            need = r + th - acc_top - acc.shape[0]
            if need > 0:
                acc = np.vstack([acc, np.zeros((need, width), np.float32)])
                wsum = np.vstack([wsum, np.zeros((need, width), np.float32)])
                valid_rows = np.vstack([valid_rows, np.zeros((need, width), bool)])
            off, c0 = r - acc_top, batch_cols[0]
            finite = np.isfinite(data)
            valid = np.all(finite, axis=0)
            valid_rows[off:off + th, c0:c0 + data.shape[2]] |= valid
            band_valid += np.count_nonzero(finite, axis=(1, 2))
            if valid.any():  # a batch without one valid pixel has only nodata to write: no network needed
                x = _normalise(data, finite, mean, std, seen, clipped, low, high)
                probs = _predict_tiles(run_tiles, x, [c - c0 for c in batch_cols], tile_h, tile_w)
                for c, p in zip(batch_cols, probs):
                    acc[off:off + th, c:c + tw] += p[:th, :tw] * w
                    wsum[off:off + th, c:c + tw] += w
            last_of_row = j + 1 == len(jobs) or jobs[j + 1][0] != k
            if last_of_row:
                # Rows above the next tile row are final: hand them to the writer thread and drop them here.
                done = (rows[k + 1] if k + 1 < len(rows) else height) - acc_top
                writes.append(writer.submit(write_rows, acc[:done], wsum[:done], valid_rows[:done], acc_top))
                n_valid += int(np.count_nonzero(valid_rows[:done]))
                acc, wsum, valid_rows = acc[done:], wsum[done:], valid_rows[done:]
                acc_top += done
                while writes and writes[0].done():
                    writes.pop(0).result()  # surfaces a write error early
            predict_progress.set_progress(100.0 * (j + 1) / len(jobs))
        for w in writes:
            w.result()
        # Inside the outputs' block: a refusal here leaves no file behind.
        _refuse_meaningless(package, rasters, sources, extent, n_valid, band_valid, inputs.absurd, seen, clipped,
                            low, high, mean, std)
    _warn_sanitised(package, rasters, sources, inputs.absurd, clipped, low, high, progress)
    n_polygons = None
    if out_polygons:
        n_polygons = polygonize_mask(out_mask, out_polygons, out_probability, polygon_options,
                                     progress=SubProgress(progress, 85, 100))
    n_tiles = len(rows) * len(cols)
    progress.log(f"Prediction written: {out_probability} ({width}×{height} px, {n_tiles} tiles of {tile_h}×{tile_w} "
                 f"px, overlap ≥ {overlap} px, {engine_used} on {dev.type}{', TTA' if tta else ''}, "
                 f"threshold {threshold:.2f})")
    return Prediction(Path(out_probability), Path(out_mask) if out_mask else None,
                      Path(out_polygons) if out_polygons else None, n_polygons, threshold, dev.type, n_tiles,
                      (tile_h, tile_w), overlap, engine_used)


def _normalise(data, finite, mean, std, seen, clipped, low, high) -> np.ndarray:
    """Standardised network input: nodata 0 (the mean), values beyond ±CLIP_Z standard deviations clipped.

    `seen`, `clipped`, `low` and `high` (per band) are updated for the messages about clipped bands.
    """
    x = np.empty_like(data)
    with np.errstate(over="ignore", invalid="ignore"):  # huge values over tiny deviations: clipped just below
        np.subtract(data, mean[:, None, None], out=x)
        np.divide(x, std[:, None, None], out=x)
    counts = np.count_nonzero(finite, axis=(1, 2))
    seen += counts
    if counts.sum() < finite.size:
        x[~finite] = 0.0  # nodata becomes the mean
    if float(np.max(np.abs(x), initial=0.0)) > CLIP_Z:  # one pass over the data when nothing is out of range
        beyond = np.abs(x) > CLIP_Z
        clipped += np.count_nonzero(beyond, axis=(1, 2))
        np.minimum(low, np.min(data, axis=(1, 2), where=beyond, initial=np.inf), out=low)
        np.maximum(high, np.max(data, axis=(1, 2), where=beyond, initial=-np.inf), out=high)
        np.clip(x, -CLIP_Z, CLIP_Z, out=x)
    return x


def _band_source(band: str, rasters, source: tuple[int, int]) -> str:
    r, b = source
    return f"{band} (band {b} of '{rasters[r]}', {'INPUT' if r == 0 else 'OTHER_INPUTS'})"


def _refuse_meaningless(package, rasters, sources, extent, n_valid, band_valid, absurd, seen, clipped, low, high,
                        mean, std) -> None:
    """Refuse an input that made no valid output pixel, or a band wholly out of the range the model knows."""
    bands = package.input_bands
    where = " inside the extent (EXTENT)" if extent is not None else ""
    if n_valid == 0:
        empty = [i for i, n in enumerate(band_valid) if n == 0]
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
        if seen[i] and clipped[i] == seen[i]:
            raise InputError(f"Every value of {_band_source(band, rasters, sources[i])} lies more than "
                             f"{CLIP_Z:g} standard deviations from what the model was trained on (values "
                             f"{low[i]:.4g} … {high[i]:.4g}; training mean {mean[i]:.4g}, deviation {std[i]:.4g}): "
                             f"the band is in other units or scaled differently (e.g. reflectance 0–10000 instead "
                             f"of 0–1, linear instead of dB). Convert it to the units of the training data, or "
                             f"normalise with this raster's own statistics (NORMALIZATION), then run again.")


def _warn_sanitised(package, rasters, sources, absurd, clipped, low, high, progress: Progress) -> None:
    """Say in the log which input values were taken as nodata or clipped (the map is still meaningful)."""
    for i, band in enumerate(package.input_bands):
        if absurd[i]:
            progress.log(f"Warning: {_band_source(band, rasters, sources[i])} holds ±Inf or values of 1e30 and more "
                         f"(fill values the file does not declare as nodata?); those pixels were taken as nodata.")
        if clipped[i]:
            progress.log(f"Warning: {_band_source(band, rasters, sources[i])} holds values ({low[i]:.4g} … "
                         f"{high[i]:.4g}) more than {CLIP_Z:g} standard deviations from the training data; they "
                         f"were clipped. Check the band's units.")


ENGINES = ["auto", "torch", "onnx"]


def scene_statistics(inputs: _Inputs, window: Window, samples: int = 64, size: int = 128):
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


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (0.5 * (1.0 + np.tanh(0.5 * x))).astype(np.float32)  # no overflow for large |x|


def _tile_runner(package, device: torch.device, tta: bool, engine: str, log):
    """(run, engine name): run maps normalised tiles (N, C, H, W) to landslide probability (N, H, W).

    Members of an ensemble are averaged with their weights (the global study's pixel-wise mean); with TTA each
    member also sees the tiles flipped, and the flips are undone before averaging.
    """
    from ..models import onnx_runtime

    if engine not in ENGINES:
        raise InputError(f"Unknown inference engine '{engine}'; choose one of {', '.join(ENGINES)}.")
    use_onnx = device.type == "cpu" and engine in ("auto", "onnx")
    if use_onnx and not onnx_runtime.available():
        if engine == "onnx":
            raise InputError("ONNX Runtime is not installed in this Python; install it (pip install onnxruntime) "
                             "or choose the torch engine.")
        log("ONNX Runtime is not installed: running the network with PyTorch, which is slower on the CPU "
            "(pip install onnxruntime to speed it up).")
        use_onnx = False
    weights = [float(m.get("weight", 1.0)) for m in package.manifest["members"]]
    precision = ""
    if use_onnx:
        chosen = _int8_sessions(package, log)
        precision = ", int8" if chosen else ""
        chosen = chosen or onnx_runtime.sessions(package, log=log)
        forwards = [lambda x, s=s: onnx_runtime.run(s, x) for s in chosen]
    else:
        def torch_forward(model):
            def forward(x):
                with torch.inference_mode(), _autocast(device):
                    return model(torch.from_numpy(x).to(device, non_blocking=True)).float().cpu().numpy()
            return forward

        forwards = [torch_forward(model) for model, _ in package.members(device)]
    flips = [()] + ([(-1,), (-2,), (-1, -2)] if tta else [])  # a flip is its own inverse
    scale = 1.0 / (sum(weights) * len(flips))

    # A network call sees at most RUN_PIXELS pixels: large tiles go one at a time (the network's activations, not
    # the batch size, then bound the memory), small tiles stay batched.
    def run(x: np.ndarray) -> np.ndarray:
        prob = np.zeros((x.shape[0], x.shape[2], x.shape[3]), dtype=np.float32)
        step = max(1, RUN_PIXELS // (x.shape[2] * x.shape[3]))
        for forward, weight in zip(forwards, weights):
            for axes in flips:
                for s in range(0, x.shape[0], step):
                    xs = x[s:s + step]
                    xi = np.ascontiguousarray(np.flip(xs, axes)) if axes else xs
                    p = _sigmoid(forward(xi)[:, 0])
                    prob[s:s + step] += (np.flip(p, axes) if axes else p) * (weight * scale)
        return prob

    return run, "ONNX Runtime" + precision if use_onnx else "PyTorch"


def _int8_sessions(package, log):
    """int8 ONNX sessions when the package's validation chips showed they keep F1 within INT8_F1_TOLERANCE.

    The decision is measured once, when the package's chip folder (its provenance) is at hand, and stored in the
    ONNX cache; without chips, or when int8 costs F1, prediction runs in float32.
    """
    from ..models import onnx_runtime

    decision = onnx_runtime.int8_decision(package)
    if decision is None:
        try:
            decision = onnx_runtime.quantize(package, log=log)
        except Exception as exc:  # noqa: BLE001 - a failed quantisation only means float32
            log(f"int8 ONNX graph not built ({type(exc).__name__}: {str(exc)[:200]}); running in float32.")
            return None
    return onnx_runtime.int8_sessions(package) if decision and decision.get("int8") else None


def _predict_tiles(run_tiles, x: np.ndarray, offsets, tile_h: int, tile_w: int) -> np.ndarray:
    """Probabilities (N, tile_h, tile_w) of the tiles starting at column `offsets` of a (C, ≤tile_h, W) window."""
    c, h, w = x.shape
    need_w = offsets[-1] + tile_w
    if h < tile_h or w < need_w:  # raster smaller than a tile: zero-pad (the normalised mean), crop afterwards
        x = np.pad(x, ((0, 0), (0, max(0, tile_h - h)), (0, max(0, need_w - w))))
    return run_tiles(np.stack([x[:, :tile_h, o:o + tile_w] for o in offsets]))


def _check_pixel_size(package, src, path) -> None:
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
