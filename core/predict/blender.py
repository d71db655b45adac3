"""Blending: weighted tile probabilities summed over the rows still open, finished rows handed out in order.

Only the rows that a later tile row can still reach are held, so memory is one tile row of the raster's width.
"""
from __future__ import annotations

import numpy as np


class RowBlender:
    """Sums of weight × probability and of weights, plus a valid flag, for output rows [top, top + held).

    With `channels` (class probabilities of a multi-class model) the sums are (rows, channels, width)."""

    def __init__(self, width: int, weights: np.ndarray, top: int = 0, channels: int = 0):
        self.width = width
        self.weights = weights
        self.top = top
        self.channels = channels
        self.acc = np.zeros((0, channels, width) if channels else (0, width), dtype=np.float32)
        self.wsum = np.zeros((0, width), dtype=np.float32)
        self.valid = np.zeros((0, width), dtype=bool)

    def reach(self, bottom: int) -> None:
        """Hold rows down to `bottom` (exclusive)."""
        need = bottom - self.top - self.acc.shape[0]
        if need > 0:
            shape = (need, self.channels, self.width) if self.channels else (need, self.width)
            self.acc = np.vstack([self.acc, np.zeros(shape, np.float32)])
            self.wsum = np.vstack([self.wsum, np.zeros((need, self.width), np.float32)])
            self.valid = np.vstack([self.valid, np.zeros((need, self.width), bool)])

    def mark_valid(self, row: int, col: int, valid: np.ndarray) -> None:
        off = row - self.top
        self.valid[off:off + valid.shape[0], col:col + valid.shape[1]] |= valid

    def add(self, row: int, col: int, prob: np.ndarray) -> None:
        """Add one tile's probabilities (already cropped to the raster) at output row/column `row`/`col`."""
        h, w = self.weights.shape
        off = row - self.top
        if self.channels:  # prob (channels, H, W)
            self.acc[off:off + h, :, col:col + w] += prob[:, :h, :w].transpose(1, 0, 2) * self.weights[:, None, :]
        else:
            self.acc[off:off + h, col:col + w] += prob[:h, :w] * self.weights
        self.wsum[off:off + h, col:col + w] += self.weights

    def pop(self, until: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Hand out rows [top, until): (weighted sums, weight sums, valid, their first row) and forget them."""
        done = until - self.top
        out = self.acc[:done], self.wsum[:done], self.valid[:done], self.top
        self.acc, self.wsum, self.valid = self.acc[done:], self.wsum[done:], self.valid[done:]
        self.top = until
        return out


def blended(acc: np.ndarray, wsum: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Probability = weighted sum / weight sum where valid, NaN elsewhere (float32)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(valid, acc / wsum, np.nan).astype(np.float32)
