"""Per-band statistics of the training chips (nodata excluded), exact to ArcGIS's own figures."""
from __future__ import annotations

import math
import threading
from typing import Sequence

import numpy as np

from ...common.errors import InputError


class BandStatistics:
    """Per-band mean/std/min/max and 2/98 percentiles over many chips, nodata excluded.

    Each chip adds its own count, mean and sum of squared deviations (thread-safe, keyed by chip number); the
    result combines them exactly (Chan et al.) in key order, and the percentiles come from a bounded sample whose
    members are chosen by per-chip seeded keys, so the result does not depend on the order chips arrive in.
    """

    SAMPLE = 200_000

    def __init__(self, names: Sequence[str], seed: int = 0):
        self.names = list(names)
        self.seed = seed
        self.parts: dict[int, tuple] = {}
        self.sample_keys: list[np.ndarray] = []
        self.sample_values: list[np.ndarray] = []
        self.sampled = 0
        self.lock = threading.Lock()
        self._local = threading.local()
        self._next = 0

    def update(self, data: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Add (bands, rows, cols) pixels; `valid` (rows, cols) excludes nodata (default: all bands finite)."""
        with self.lock:
            key, self._next = self._next, self._next + 1
        self.add(key, data, valid)

    def add(self, key: int, data: np.ndarray, valid: np.ndarray | None = None) -> None:
        c = data.shape[0]
        flat = data.reshape(c, -1)
        ok = np.isfinite(flat).all(axis=0) if valid is None else valid.reshape(-1)
        n = int(np.count_nonzero(ok))
        if n == 0:
            return
        x = flat if n == flat.shape[1] else flat[:, ok]
        mean, m2, lo, hi = self._moments(x[None])
        self._record(key, x, (n, mean[0], m2[0], lo[0], hi[0]))

    def add_many(self, keys: Sequence[int], images: np.ndarray, valid: np.ndarray, which: Sequence[int]) -> None:
        """`add` for the chips images[which] (keys[i] for images[which[i]]); chips without nodata in one go.

        Each chip's part comes from the same reductions over the same contiguous pixels as in `add`, so results
        never depend on how chips were batched.
        """
        whole = [i for i in which if valid[i].all()]
        for key, i in zip(keys, which):
            if not valid[i].all():
                self.add(key, images[i], valid[i])
        if not whole:
            return
        b, c = len(whole), images.shape[1]
        x = images[:b] if whole == list(range(b)) else images[np.asarray(whole)]  # a view in the usual case
        x = x.reshape(b, c, -1)
        mean, m2, lo, hi = self._moments(x)
        key_of = dict(zip(which, keys))
        for j, i in enumerate(whole):
            self._record(key_of[i], x[j], (x.shape[2], mean[j], m2[j], lo[j], hi[j]))

    def _moments(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        """Mean, sum of squared deviations, min and max of (chips, bands, pixels) over the pixels.

        Centred on a float32 estimate of the mean, then corrected with the centred sum: float32 speed, a
        float64-grade mean, and no cancellation in the squares.
        """
        n = x.shape[2]
        guess = (x.sum(axis=2) / n).astype(x.dtype)
        centred = np.subtract(x, guess[:, :, None], out=self._scratch(x.shape, x.dtype))
        shift = centred.sum(axis=2, dtype=np.float64) / n
        m2 = np.square(centred, out=centred).sum(axis=2, dtype=np.float64) - n * shift**2
        return (guess.astype(np.float64) + shift, m2, x.min(axis=2).astype(np.float64),
                x.max(axis=2).astype(np.float64))

    def _record(self, key: int, x: np.ndarray, part: tuple) -> None:
        keys, values = self._sample(key, x, part[0])
        with self.lock:
            self.parts[key] = part
            self.sample_keys.append(keys)
            self.sample_values.append(values)
            self.sampled += len(keys)
            if self.sampled > 4 * self.SAMPLE:
                self._thin()

    @staticmethod
    def _sample(key: int, x: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """A few of the chip's (bands, n) valid pixels for the percentiles, at spacing `step` from a per-chip
        offset; their keys are a fixed hash of (chip, position), so which ones survive the bounded sample never
        depends on thread timing."""
        k = min(n, max(16, min(1024, n // 256)))
        step = n // k
        picks = (key * 7919) % step + step * np.arange(k)
        keys = ((picks.astype(np.uint64) + np.uint64(key) * np.uint64(2654435761)) * np.uint64(0x9E3779B97F4A7C15)
                >> np.uint64(11)).astype(np.float64) / float(1 << 53)
        return keys, x[:, picks].astype(np.float32)

    def _scratch(self, shape, dtype) -> np.ndarray:
        """A per-thread work array, reused chip after chip (fresh memory costs page faults)."""
        size = int(np.prod(shape))
        buf = getattr(self._local, "buf", None)
        if buf is None or buf.size < size or buf.dtype != dtype:
            buf = self._local.buf = np.empty(size, dtype)
        return buf[:size].reshape(shape)

    def _thin(self) -> None:
        """Keep the SAMPLE pixels with the smallest keys (independent of the order chips arrived in)."""
        keys, values = np.concatenate(self.sample_keys), np.concatenate(self.sample_values, axis=1)
        best = np.argsort(keys, kind="stable")[:self.SAMPLE]
        self.sample_keys, self.sample_values, self.sampled = [keys[best]], [values[:, best]], len(best)

    def result(self) -> list[dict]:
        nb = len(self.names)
        keys = sorted(self.parts)
        counts = np.array([self.parts[k][0] for k in keys], dtype=np.float64)
        if not len(keys):
            raise InputError(f"The training chips have no pixel with valid (non-nodata) values in every band "
                             f"({', '.join(self.names)}).")
        means = np.array([self.parts[k][1] for k in keys]).reshape(-1, nb)
        m2s = np.array([self.parts[k][2] for k in keys]).reshape(-1, nb)
        total = counts.sum()
        mean = (counts[:, None] * means).sum(axis=0) / total
        m2 = m2s.sum(axis=0) + (counts[:, None] * (means - mean) ** 2).sum(axis=0)
        lo = np.min([self.parts[k][3] for k in keys], axis=0)
        hi = np.max([self.parts[k][4] for k in keys], axis=0)
        self._thin()
        sample = self.sample_values[0]
        out = []
        for i, name in enumerate(self.names):
            p2, p98 = np.percentile(sample[i], [2, 98])
            out.append(dict(name=name, mean=float(mean[i]), std=float(math.sqrt(max(m2[i] / total, 0.0))) or 1.0,
                            min=float(lo[i]), max=float(hi[i]), p2=float(p2), p98=float(p98), count=int(total)))
        return out
