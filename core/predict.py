"""Sliding-window inference with weighted blending, written strip by strip (memory bounded by raster width).

Tiles sit on a regular grid (the last row/column snapped to the raster edge). Each tile's probabilities are
weighted by a smooth window that is highest in the tile centre, summed, and divided by the summed weights, so
tile seams vanish and a pixel seen by one tile only (raster borders) keeps that tile's value.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from rasterio.windows import Window

from . import raster
from .errors import InputError
from .progress import Progress, check_canceled, or_null
from .training import _autocast, pick_device

MASK_NODATA = 255


def blend_weights(tile: int, overlap: int) -> np.ndarray:
    """Separable weight window: 1 in the centre, a raised-cosine taper over `overlap` px at each edge.

    The taper never reaches 0, so edge pixels covered by a single tile keep that tile's prediction.
    """
    ramp = np.ones(tile, dtype=np.float32)
    if overlap > 0:
        t = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        taper = 0.5 - 0.5 * np.cos(np.pi * t)
        ramp[:overlap] = taper
        ramp[tile - overlap:] = taper[::-1]
    ramp = np.maximum(ramp, 1e-3)
    return np.outer(ramp, ramp)


def tile_positions(length: int, tile: int, stride: int) -> list[int]:
    if length <= tile:
        return [0]
    pos = list(range(0, length - tile, stride))
    pos.append(length - tile)
    return pos


@dataclass
class Prediction:
    probability: Path
    mask: Path | None
    threshold: float
    device: str


def sliding_window_predict(
    package,
    raster_path: str | os.PathLike,
    out_probability: str | os.PathLike,
    out_mask: str | os.PathLike | None = None,
    *,
    threshold: float | None = None,
    extent: Sequence[float] | None = None,
    tile_size: int | None = None,
    overlap: int | None = None,
    batch_size: int = 4,
    device: str = "auto",
    progress: Progress | None = None,
) -> Prediction:
    """Landslide probability (Float32, NaN nodata) and optional 0/1 mask (255 nodata) for a stack raster.

    `package` is a models.package.ModelPackage; input bands are matched by band description.
    """
    from ..models.package import match_bands

    progress = or_null(progress)
    tile = int(tile_size or package.tile_size)
    overlap = int(package.manifest.get("overlap", tile // 4) if overlap is None else overlap)
    if tile % 32 or tile < 32:
        raise InputError(f"Tile size must be a multiple of 32 px (got {tile}).")
    if not 0 <= overlap < tile // 2 + 1:
        raise InputError(f"Overlap must be between 0 and half the tile size ({tile // 2} px); got {overlap}.")
    threshold = package.threshold if threshold is None else float(threshold)
    dev = pick_device(device)
    members = package.members(dev)
    total_weight = sum(w for _, w in members)
    mean, std = package.normalization()
    stride = tile - overlap
    weights = blend_weights(tile, overlap)

    with raster.open_raster(raster_path) as src:
        indexes = match_bands(package, raster.band_names(src), str(raster_path))
        _check_pixel_size(package, src, raster_path)
        win = raster.window_from_extent(src, extent)
        width, height = int(win.width), int(win.height)
        rows = tile_positions(height, tile, stride)
        cols = tile_positions(width, tile, stride)
        transform = src.window_transform(win)
        prob_ctx = raster.create_raster(out_probability, width=width, height=height, crs=src.crs,
                                        transform=transform, dtype="float32", descriptions=["landslide_probability"],
                                        nodata=np.nan, tags={"LANDSLIDE_MAPPER": "probability",
                                                             "MODEL": package.path.name})
        mask_ctx = (raster.create_raster(out_mask, width=width, height=height, crs=src.crs, transform=transform,
                                         dtype="uint8", descriptions=["landslide"], nodata=MASK_NODATA,
                                         tags={"LANDSLIDE_MAPPER": "mask", "THRESHOLD": threshold})
                    if out_mask else None)
        with prob_ctx as prob_dst, (mask_ctx or _Null()) as mask_dst:
            acc_top = 0  # first row (window coords) held in the accumulators
            acc = np.zeros((0, width), dtype=np.float32)
            wsum = np.zeros((0, width), dtype=np.float32)
            valid_rows = np.zeros((0, width), dtype=bool)
            for k, r in enumerate(rows):
                check_canceled(progress)
                th = min(tile, height)
                strip_win = Window(win.col_off, win.row_off + r, width, th)
                data = raster.read_float(src, indexes, strip_win)
                valid = np.all(np.isfinite(data), axis=0)
                x = (data - mean[:, None, None]) / std[:, None, None]
                x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
                # Grow the accumulators down to this strip's last row.
                need = r + th - acc_top - acc.shape[0]
                if need > 0:
                    acc = np.vstack([acc, np.zeros((need, width), np.float32)])
                    wsum = np.vstack([wsum, np.zeros((need, width), np.float32)])
                    valid_rows = np.vstack([valid_rows, np.zeros((need, width), bool)])
                off = r - acc_top
                valid_rows[off:off + th] |= valid
                probs = _predict_strip(members, total_weight, x, cols, tile, batch_size, dev, progress)
                w = weights[:th, :]
                for c, p in zip(cols, probs):
                    tw = min(tile, width)
                    acc[off:off + th, c:c + tw] += p[:th, :tw] * w[:, :tw]
                    wsum[off:off + th, c:c + tw] += w[:, :tw]
                # Rows above the next strip are final: write and drop them.
                done = (rows[k + 1] if k + 1 < len(rows) else height) - acc_top
                if done > 0:
                    out = np.where(valid_rows[:done] & (wsum[:done] > 0), acc[:done] / np.maximum(wsum[:done], 1e-12),
                                   np.nan).astype(np.float32)
                    out_win = Window(0, acc_top, width, done)
                    prob_dst.write(out[None], window=out_win)
                    if mask_dst is not None:
                        mask = np.where(np.isfinite(out), out >= threshold, MASK_NODATA).astype(np.uint8)
                        mask_dst.write(mask[None], window=out_win)
                    acc, wsum, valid_rows = acc[done:], wsum[done:], valid_rows[done:]
                    acc_top += done
                progress.set_progress(100.0 * (k + 1) / len(rows))
    progress.log(f"Prediction written: {out_probability} ({width}×{height} px, {len(rows) * len(cols)} tiles of "
                 f"{tile} px, overlap {overlap} px, device {dev.type}, threshold {threshold:.2f})")
    return Prediction(Path(out_probability), Path(out_mask) if out_mask else None, threshold, dev.type)


class _Null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


@torch.inference_mode()
def _predict_strip(members, total_weight, x: np.ndarray, cols, tile, batch_size, device, progress) -> list:
    """Probabilities (tile×tile, padded where the raster is smaller) of each tile of one strip."""
    c, h, w = x.shape
    if h < tile or w < tile:  # raster smaller than a tile: zero-pad (normalised mean), crop afterwards
        x = np.pad(x, ((0, 0), (0, max(0, tile - h)), (0, max(0, tile - w))))
    tiles = np.stack([x[:, :tile, col:col + tile] for col in cols])
    out = []
    for s in range(0, len(tiles), batch_size):
        check_canceled(progress)
        xb = torch.from_numpy(np.ascontiguousarray(tiles[s:s + batch_size])).to(device)
        prob = None
        for model, weight in members:
            with _autocast(device):
                logits = model(xb)
            p = torch.sigmoid(logits.float())[:, 0] * (weight / total_weight)
            prob = p if prob is None else prob + p
        out.extend(prob.cpu().numpy())
    return out


def _check_pixel_size(package, src, path) -> None:
    trained = package.manifest.get("pixel_size")
    if not trained:
        return
    have = raster.pixel_size(src)
    if src.crs is not None and src.crs.is_geographic:
        return  # degrees vs metres: compared once rasters carry a projected CRS (reproject first)
    ratio = have[0] / float(trained[0])
    if not 0.5 <= ratio <= 2.0:
        raise InputError(f"Raster '{path}' has {have[0]:g} m pixels but the model was trained on "
                         f"{trained[0]:g} m pixels; resample the input to the training resolution.")
