"""Cutting chips: the label survey, grid and random positions, and the cutter that keeps, splits and hands chips to a
layout.
"""
from __future__ import annotations

import math
import queue
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from rasterio.windows import Window

from .. import raster
from ...common.errors import InputError
from ...common.progress import check_canceled
from .chipset import READ_BYTES
from ..labels import IGNORE, LabelReader
from .layouts import WRITERS
from .splits import SPLITS, SplitPlan
from .statistics import BandStatistics


def _grid_positions(length: int, tile: int, stride: int) -> list[int]:
    if length < tile:
        return []
    pos = list(range(0, length - tile + 1, stride))
    if pos[-1] != length - tile:
        pos.append(length - tile)  # cover the far edge too
    return pos


@dataclass
class _Survey:
    """What one pass over the labels tells: pixels per class per split unit, and a sample of landslide pixels."""

    hist: dict  # unit -> (256,) int64 pixel counts per class value
    positives: np.ndarray  # (n, 3) row, col, class value of a uniform sample of labelled non-background pixels


def survey_labels(read_labels: LabelReader, plan: SplitPlan, win: Window, progress, seed: int,
                   keep: int = 200_000) -> _Survey:
    """Pass 1 over the labels only (no stack pixels): class histogram per split unit, and (keep > 0) a uniform
    sample of `keep` labelled non-background pixels for positive-biased sampling."""
    rng = np.random.default_rng(seed + 1)
    hist: dict = {}
    pos = np.zeros((0, 3), dtype=np.int64)
    keys = np.zeros(0)
    if plan.regions is None:
        bh, bw = plan.block
        # Windows aligned to the blocks: several small blocks per window, or a big block in several windows.
        step_h = bh * max(1, 1024 // bh) if bh <= 1024 else bh // math.ceil(bh / 1024)
        step_w = bw * max(1, 1024 // bw) if bw <= 1024 else bw // math.ceil(bw / 1024)
    else:
        step_h = step_w = raster.DEFAULT_BLOCK
    windows = [(r, c) for r in range(0, int(win.height), step_h) for c in range(0, int(win.width), step_w)]
    for k, (r, c) in enumerate(windows):
        check_canceled(progress)
        h, w = min(step_h, int(win.height) - r), min(step_w, int(win.width) - c)
        window = Window(win.col_off + c, win.row_off + r, w, h)
        codes = read_labels(window)
        if plan.regions is None:
            for br in range(0, h, bh):
                for bc in range(0, w, bw):
                    counts = _class_counts(codes[br:br + bh, bc:bc + bw])
                    unit = plan.block_of(r + br, c + bc)
                    hist[unit] = hist.get(unit, 0) + counts
        else:
            units = plan.units(window)
            combined = np.bincount((units.astype(np.int64) * 256 + codes).ravel())
            combined = np.pad(combined, (0, (-len(combined)) % 256)).reshape(-1, 256)
            for unit in np.flatnonzero(combined[1:].sum(axis=1)) + 1:
                hist[int(unit)] = hist.get(int(unit), 0) + combined[unit]
        rr, cc = np.nonzero((codes > 0) & (codes != IGNORE)) if keep else ((), ())
        if len(rr):
            new = np.stack([rr + r, cc + c, codes[rr, cc]], axis=1).astype(np.int64)
            pos, keys = np.concatenate([pos, new]), np.concatenate([keys, rng.random(len(rr))])
            if len(pos) > keep:  # uniform sample without replacement: keep the smallest random keys
                best = np.argpartition(keys, keep)[:keep]
                pos, keys = pos[best], keys[best]
        progress.set_progress(100.0 * (k + 1) / len(windows))
    return _Survey(hist, pos)


def _class_counts(codes: np.ndarray) -> np.ndarray:
    """Pixels per value 0…255 of a uint8 array. Background (0) is most of a scene: counting the rest only is
    several times faster than np.bincount, which first widens every pixel to 64 bits."""
    other = codes[codes != 0]
    counts = np.bincount(other, minlength=256)
    counts[0] = codes.size - other.size
    return counts


class _ChipBatch:
    """Chips queued together for one writer task, their pixels side by side: a writer thread is woken once per
    batch rather than per chip, and the training statistics take many chips per numpy call (each hand-over
    between threads costs more than a small chip's arithmetic)."""

    def __init__(self, size: int, bands: int, tile: int):
        self.images = np.empty((size, bands, tile, tile), np.float32)
        self.codes = np.empty((size, tile, tile), np.uint8)
        self.valid = np.empty((size, tile, tile), bool)
        self.keys: list[int] = []
        self.origins: list[tuple] = []
        self.train: list[int] = []  # positions in the batch of training chips

    @property
    def full(self) -> bool:
        return len(self.keys) == len(self.images)

    def add(self, key: int, image, codes, valid, origin, train: bool) -> None:
        i = len(self.keys)
        np.copyto(self.images[i], image)  # views into a read window that gets reused: copy the chip out
        np.copyto(self.codes[i], codes)
        np.copyto(self.valid[i], valid)
        self.keys.append(key)
        self.origins.append(origin)
        if train:
            self.train.append(i)

    def clear(self) -> None:
        self.keys, self.origins, self.train = [], [], []


class Cutter:
    """Decides for each candidate chip (split, validity, positives), queues its writing, keeps the bookkeeping.

    Writing (files and training statistics) runs in a few threads: creating a file costs more than its pixels.
    """

    PREVIEW = 4  # chips of each kind (with / without landslides) kept for the preview
    BATCH_BYTES = 16 << 20  # pixels of the chips handed to a writer at once

    def __init__(self, out, plan: SplitPlan, lut, names, tile, min_valid, min_positive, seed):
        self.out, self.plan, self.lut, self.tile = out, plan, lut, tile
        self.min_valid, self.min_positive = min_valid, min_positive
        self.stats = BandStatistics(names, seed)
        self.counts = {s: {"chips": 0, "pixels": 0, "positive_pixels": 0, "positive_chips": 0} for s in SPLITS}
        self.rejected = {"straddle": 0, "nodata": 0, "unlabelled": 0}
        self.index_rows: list[dict] = []
        self._picks: dict[int, list] = {0: [], 1: []}
        self._seen = [0, 0]
        self.rng = np.random.default_rng(seed + 2)
        self.pool = ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="chip-writer")
        self.pending: list = []
        # Batches go round between cutting and writing (bounded memory; fresh memory would cost a page fault per
        # 4 KiB): one being filled, one per writer, one spare.
        chip_bytes = (len(names) * 4 + 2) * tile * tile
        size = max(1, min(64, self.BATCH_BYTES // chip_bytes))
        self.free: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(WRITERS + 1):
            self.free.put(_ChipBatch(size, len(names), tile))
        self.batch = _ChipBatch(size, len(names), tile)

    def consider(self, row: int, col: int, image: np.ndarray, codes: np.ndarray, valid: np.ndarray,
                 n_valid: int, n_known: int, positives: int, units: np.ndarray | None = None,
                 need_positive: bool = False) -> tuple[str | None, bool]:
        """Cut the chip at window-relative (row, col) if it qualifies: (split or None, written).

        `image`, `codes`, `valid` are the chip's pixels (views into a window: copied here if the chip is cut);
        n_valid / n_known / positives count its valid, labelled and landslide pixels.
        """
        t = self.tile
        split = self.plan.chip_split(row, col, t, units)
        if split is None:
            self.rejected["straddle"] += 1
            return None, False
        need = max(1.0, self.min_valid * t * t)
        if n_known < need:
            self.rejected["nodata" if n_valid < need else "unlabelled"] += 1
            return split, False
        if not self.out.accepts(n_valid, n_known):
            self.rejected["unlabelled"] += 1
            return split, False
        if need_positive and positives < self.min_positive:
            return split, False
        k = len(self.index_rows)
        self.batch.add(k, image, codes, valid, self.out.origin(row, col), split == "train")
        if self.batch.full:
            self._submit()
        c = self.counts[split]
        c["chips"] += 1
        c["pixels"] += n_known
        c["positive_pixels"] += positives
        c["positive_chips"] += positives >= self.min_positive
        bounds = self.out.bounds(row, col)
        self.index_rows.append(dict(id=self.out.chip_id(k), split=split, row=int(self.out.win.row_off + row),
                                    col=int(self.out.win.col_off + col), xmin=bounds[0], ymin=bounds[1],
                                    xmax=bounds[2], ymax=bounds[3], valid_fraction=round(n_known / (t * t), 4),
                                    positive_fraction=round(positives / max(n_known, 1), 6)))
        self._keep_for_preview(image, codes, split, positives)
        return split, True

    def _submit(self) -> None:
        """Hand the filled batch to a writer and take a free one (waiting while every batch is queued)."""
        self.pending.append(self.pool.submit(self._write, self.batch))
        self.batch = self.free.get()
        finished = [f for f in self.pending if f.done()]
        for f in finished:
            f.result()  # re-raises a failed write here, in the cutting thread
        self.pending = [f for f in self.pending if not f.done()]

    def _write(self, batch: _ChipBatch) -> None:
        try:
            for i, (k, origin) in enumerate(zip(batch.keys, batch.origins)):
                self.out.write_chip(k, batch.images[i], batch.codes[i], batch.valid[i], origin)
            if batch.train:
                self.stats.add_many([batch.keys[i] for i in batch.train], batch.images, batch.valid, batch.train)
        finally:
            batch.clear()
            self.free.put(batch)

    def _keep_for_preview(self, image, codes, split, positives) -> None:
        kind = int(positives > 0)
        self._seen[kind] += 1
        mine = self._picks[kind]
        if len(mine) < self.PREVIEW:
            mine.append((np.array(image), np.array(codes), split, kind))
        else:  # reservoir sampling: every chip of a kind equally likely to be shown
            j = int(self.rng.integers(0, self._seen[kind]))
            if j < self.PREVIEW:
                mine[j] = (np.array(image), np.array(codes), split, kind)

    @property
    def preview(self) -> list[tuple]:
        return self._picks[1] + self._picks[0]

    def flush(self) -> None:
        if self.batch.keys:
            self._submit()
        for f in self.pending:
            f.result()
        self.pending = []

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def check(self, stack_path) -> None:
        if self.counts["train"]["chips"] > 0:
            return
        r = self.rejected
        if r["nodata"] and not r["unlabelled"] and not any(c["chips"] for c in self.counts.values()):
            raise InputError(f"No chip could be cut from '{stack_path}': every candidate tile had less than "
                             f"{self.min_valid:.0%} valid (non-nodata) pixels; the area is (nearly) all nodata.")
        raise InputError(
            f"No training chip could be cut from '{stack_path}': of the candidate tiles {r['straddle']} straddled "
            f"a split boundary, {r['nodata']} had less than {self.min_valid:.0%} valid (non-nodata) pixels and "
            f"{r['unlabelled']} lay (partly) outside the labelled region. Use larger split blocks, a lower minimum "
            f"valid fraction, or check the labelled-region layer.")


def _grid_windows(rows: list[int], tile: int, max_rows: int) -> list[tuple[int, int, int]]:
    """Read windows of whole chip rows: (first chip-row index, last index, top row of the window)."""
    out, i = [], 0
    while i < len(rows):
        j = i
        while j + 1 < len(rows) and rows[j + 1] + tile - rows[i] <= max_rows:
            j += 1
        out.append((i, j, rows[i]))
        i = j + 1
    return out


def _column_counts(mask: np.ndarray, top: int, tile: int, cols: Sequence[int]) -> np.ndarray:
    """Pixels set in mask[top:top+tile, c:c+tile] for every c in cols, from one column sum of the band."""
    band = np.count_nonzero(mask[top:top + tile], axis=0)
    cum = np.concatenate([[0], np.cumsum(band)])
    c = np.asarray(cols)
    return cum[c + tile] - cum[c]


def _is_landslide(codes: np.ndarray, lut: np.ndarray, out: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """lut[codes] == 1 by comparisons, one per landslide class (cheaper than a table look-up per pixel)."""
    out[...] = False
    for value in np.flatnonzero(lut == 1):
        out |= np.equal(codes, value, out=scratch)
    return out


def cut_grid(src, win, read_labels, cutter: Cutter, stride: int, progress) -> None:
    """Grid sampling: read the stack in windows of whole chip rows (the next one read ahead into a second set of
    buffers), cut every tile. Buffers are reused window after window: fresh memory costs a page fault per page."""
    t = cutter.tile
    rows = _grid_positions(int(win.height), t, stride)
    cols = _grid_positions(int(win.width), t, stride)
    bands = list(range(1, src.count + 1))
    max_rows = max(t, READ_BYTES // max(1, int(win.width) * src.count * 4))
    windows = _grid_windows(rows, t, max_rows)
    buffers: dict = {}

    def buffer(slot: int, name: str, shape: tuple, dtype) -> np.ndarray:
        key = (slot, name, shape)
        if key not in buffers:
            buffers[key] = np.empty(shape, dtype=dtype)
        return buffers[key]

    def load(w: int):
        i, j, top = windows[w]
        window = Window(win.col_off, win.row_off + top, win.width, rows[j] + t - top)
        shape = (int(window.height), int(window.width))
        data = raster.read_float(src, bands, window, out=buffer(w % 2, "data", (len(bands),) + shape, np.float32))
        valid = np.isfinite(data[0], out=buffer(w % 2, "valid", shape, bool))
        scratch = buffer(w % 2, "scratch", shape, bool)
        for b in range(1, len(data)):
            valid &= np.isfinite(data[b], out=scratch)
        codes = read_labels(window)
        codes[~valid] = IGNORE  # nodata is unknown ground, never background
        return data, valid, codes, cutter.plan.units(window)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="chip-reader") as reader:
        ahead = reader.submit(load, 0)
        for w, (i, j, top) in enumerate(windows):
            check_canceled(progress)
            data, valid, codes, units = ahead.result()
            if w + 1 < len(windows):
                ahead = reader.submit(load, w + 1)  # into the other buffers: this window's stay untouched
            known = np.not_equal(codes, IGNORE, out=buffer(0, "known", codes.shape, bool))
            landslide = _is_landslide(codes, cutter.lut, buffer(0, "landslide", codes.shape, bool),
                                      buffer(0, "compare", codes.shape, bool))
            for r in rows[i:j + 1]:
                check_canceled(progress)
                rr = r - top
                n_valid = _column_counts(valid, rr, t, cols)
                n_known = _column_counts(known, rr, t, cols)
                n_pos = _column_counts(landslide, rr, t, cols)
                for k, c in enumerate(cols):
                    chip_units = units[rr:rr + t, c:c + t] if units is not None else None
                    cutter.consider(r, c, data[:, rr:rr + t, c:c + t], codes[rr:rr + t, c:c + t],
                                    valid[rr:rr + t, c:c + t], int(n_valid[k]), int(n_known[k]), int(n_pos[k]),
                                    chip_units)
            progress.set_progress(100.0 * (j + 1) / len(rows))


def cut_random(src, win, read_labels, cutter: Cutter, n_chips: int, n_positive: int, positives: np.ndarray,
                lut: np.ndarray, seed: int, progress) -> None:
    """Random sampling: `n_chips` positions, of which `n_positive` are drawn around sampled landslide pixels."""
    t = cutter.tile
    h, w = int(win.height), int(win.width)
    rng = np.random.default_rng(seed + 3)
    bands = list(range(1, src.count + 1))
    landslide_px = positives[lut[positives[:, 2].astype(np.uint8)] == 1] if len(positives) else positives
    if n_positive and not len(landslide_px):
        raise InputError("Positive-biased sampling needs landslide pixels, but the labels hold none inside the "
                         "area being cut.")
    taken: set = set()
    need = {"positive": n_positive, "any": n_chips - n_positive}
    attempts, max_attempts = 0, 30 * n_chips + 100
    while (need["positive"] > 0 or need["any"] > 0) and attempts < max_attempts:
        batch = []
        for kind in ("positive", "any"):
            for _ in range(min(need[kind] * 2, 512)):
                if kind == "positive":
                    pr, pc, _ = landslide_px[rng.integers(0, len(landslide_px))]
                    r = int(rng.integers(max(0, pr - t + 1), min(pr, h - t) + 1))
                    c = int(rng.integers(max(0, pc - t + 1), min(pc, w - t) + 1))
                else:
                    r, c = int(rng.integers(0, h - t + 1)), int(rng.integers(0, w - t + 1))
                batch.append((r, c, kind))
        batch.sort()  # row order: neighbouring reads share the stack's blocks
        for r, c, kind in batch:
            attempts += 1  # duplicates count too: a small area runs out of new positions
            if need[kind] <= 0 or (r, c) in taken:
                continue
            check_canceled(progress)
            window = Window(win.col_off + c, win.row_off + r, t, t)
            data = raster.read_float(src, bands, window)
            valid = np.isfinite(data).all(axis=0)
            codes = read_labels(window)
            codes[~valid] = IGNORE
            _, written = cutter.consider(r, c, data, codes, valid, int(np.count_nonzero(valid)),
                                         int(np.count_nonzero(codes != IGNORE)),
                                         int(np.count_nonzero(lut[codes] == 1)), cutter.plan.units(window),
                                         need_positive=kind == "positive")
            if written:
                taken.add((r, c))
                need[kind] -= 1
        progress.set_progress(100.0 * (n_chips - need["positive"] - need["any"]) / n_chips)
    short = need["positive"] + need["any"]
    if short:
        progress.log(f"Only {n_chips - short} of {n_chips} chips could be sampled ({need['positive']} positive chips "
                     f"short): the area has too few valid, labelled positions.")
