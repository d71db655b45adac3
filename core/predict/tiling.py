"""The tile grid of one prediction: tiles spread evenly between the raster edges, their blend weights, and the
batches of neighbouring tiles the network sees.

Every pixel's value depends only on this grid, never on how the work is split, so a prediction computed in blocks
(one process or many machines) equals the one computed whole.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window


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


@dataclass(frozen=True)
class TileBatch:
    """Neighbouring tiles of one tile row, read as one window: `cols` are offsets in the grid's window."""

    row_index: int
    row: int
    cols: tuple[int, ...]


@dataclass(frozen=True)
class TileGrid:
    """Tiles of `tile_h`×`tile_w` px at offsets `rows`×`cols` of `window` (the area predicted, raster pixels)."""

    window: Window
    tile_h: int
    tile_w: int
    overlap: int
    rows: tuple[int, ...]
    cols: tuple[int, ...]

    @classmethod
    def fit(cls, window: Window, max_tile: int, overlap: int) -> "TileGrid":
        height, width = int(window.height), int(window.width)
        tile_h, tile_w = fit_tile(height, max_tile, overlap), fit_tile(width, max_tile, overlap)
        return cls(window, tile_h, tile_w, overlap, tuple(tile_positions(height, tile_h, overlap)),
                   tuple(tile_positions(width, tile_w, overlap)))

    @property
    def height(self) -> int:
        return int(self.window.height)

    @property
    def width(self) -> int:
        return int(self.window.width)

    @property
    def data_shape(self) -> tuple[int, int]:
        """Pixels of the raster inside one tile (a tile is padded where the raster is smaller than it)."""
        return min(self.tile_h, self.height), min(self.tile_w, self.width)

    @property
    def n_tiles(self) -> int:
        return len(self.rows) * len(self.cols)

    def weights(self) -> np.ndarray:
        th, tw = self.data_shape
        return blend_weights(self.tile_h, self.overlap, self.tile_w)[:th, :tw]

    def batches(self, batch_size: int) -> list[TileBatch]:
        """All tiles, row by row, in batches of `batch_size` neighbours: the order pixels are summed in."""
        return [TileBatch(k, r, self.cols[s:s + batch_size]) for k, r in enumerate(self.rows)
                for s in range(0, len(self.cols), batch_size)]

    def row_end(self, row_index: int) -> int:
        """First output row still open once tile row `row_index` is added (rows above it are final)."""
        return self.rows[row_index + 1] if row_index + 1 < len(self.rows) else self.height

    def batch_window(self, batch: TileBatch) -> Window:
        """The raster window one batch reads."""
        th, tw = self.data_shape
        c0 = batch.cols[0]
        return Window(self.window.col_off + c0, self.window.row_off + batch.row, batch.cols[-1] + tw - c0, th)
