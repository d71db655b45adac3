"""Map checks people trust: pixel scores, landslides found and missed, threshold sweep, confusion and comparison
maps, the performance diagram, and readable reports.

Everything streams over full-width strips of the prediction's grid, so memory stays bounded for any raster size:
pixel counts and probability histograms are sums; connected objects are labelled per strip and joined across strip
borders (see `ObjectTally`).
"""
from __future__ import annotations

import csv
import html
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from rasterio.warp import Resampling
from rasterio.windows import Window

from . import raster
from .chips import IGNORE, _hits, open_labels, rasterize_labels
from .errors import InputError
from .outputs import atomic_output
from .progress import Progress, check_canceled, or_null


@dataclass(frozen=True)
class MapClass:
    """One value of a paletted map: its colour (#rrggbb) and legend label."""

    value: int
    color: str
    label: str


# Confusion map codes (paletted style ui/styles/confusion.qml).
NODATA, TP, FP, FN, TN = 0, 1, 2, 3, 4
CONFUSION_NAMES = {TP: "true positive", FP: "false positive", FN: "false negative", TN: "true negative"}
# As ui/styles/confusion.qml, TN opaque light grey (the map style draws it translucent), for PNGs and colour tables.
CONFUSION_COLOURS = {TP: "#1a9641", FP: "#e31a1c", FN: "#2c7bb6", TN: "#e6e6e6", NODATA: "#ffffff"}

# Single-vs-ensemble comparison map. The 7 coloured classes match ui/styles/comparison.qml (scripts/make_styles.py,
# with A and B for the names); 8 = both right where there is no landslide and 0 = nodata are left transparent.
# code = 8 − (4·truth + 2·A + B), so the code itself says which of A and B was right.
BOTH_TP, ONLY_A_TP, ONLY_B_TP, BOTH_FN, BOTH_FP, ONLY_A_FP, ONLY_B_FP, BOTH_TN = range(1, 9)
COMPARISON_CLASSES = (
    MapClass(BOTH_TP, "#1a9641", "Both detect the landslide"),
    MapClass(ONLY_A_TP, "#80cdc1", "Only {a} detects ({b} misses)"),
    MapClass(ONLY_B_TP, "#dfc27d", "Only {b} detects ({a} misses)"),
    MapClass(BOTH_FN, "#2c7bb6", "Both miss the landslide"),
    MapClass(BOTH_FP, "#e31a1c", "Both give a false alarm"),
    MapClass(ONLY_A_FP, "#f781bf", "False alarm of {a} only"),
    MapClass(ONLY_B_FP, "#984ea3", "False alarm of {b} only"),
    MapClass(BOTH_TN, "#e6e6e6", "Both right: no landslide"),  # light grey in quick-looks only
)


# ---------------------------------------------------------------------------------------------- pixel scores
@dataclass
class Confusion:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __iadd__(self, other: "Confusion") -> "Confusion":
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.tn += other.tn
        return self

    @classmethod
    def from_arrays(cls, predicted: np.ndarray, truth: np.ndarray, valid: np.ndarray | None = None) -> "Confusion":
        p = predicted.astype(bool, copy=False)
        t = truth.astype(bool, copy=False)
        if valid is not None:
            v = valid.astype(bool, copy=False)
            p, t, n = p & v, t & v, int(np.count_nonzero(v))
        else:
            n = p.size
        return cls.from_counts(int(np.count_nonzero(p & t)), int(np.count_nonzero(p)), int(np.count_nonzero(t)), n)

    @classmethod
    def from_counts(cls, tp: int, predicted: int, positive: int, total: int) -> "Confusion":
        """From TP and the totals of predicted-positive, truly-positive and all pixels (4 cheap counts)."""
        return cls(tp=tp, fp=predicted - tp, fn=positive - tp, tn=total - predicted - positive + tp)


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def scores(c: Confusion) -> dict:
    """Precision, recall, F1, MCC (with the square root), IoU, frequency bias, accuracy, Cohen's kappa.

    A score whose denominator is zero (e.g. no landslide in truth nor prediction) is None, never a made-up 0.
    """
    tp, fp, fn, tn = float(c.tp), float(c.fp), float(c.fn), float(c.tn)
    n = tp + fp + fn + tn
    den = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
    chance = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / (n * n) if n > 0 else 1.0  # agreement by chance
    return {
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "mcc": (tp * tn - fp * fn) / math.sqrt(den) if den > 0 else None,
        "iou": _ratio(tp, tp + fp + fn),
        "bias": _ratio(tp + fp, tp + fn),
        "accuracy": _ratio(tp + tn, n),
        "kappa": ((tp + tn) / n - chance) / (1.0 - chance) if n > 0 and chance < 1.0 else None,
        **asdict(c),
    }


METRIC_HELP = {
    "precision": "share of mapped landslide pixels that are real landslides",
    "recall": "share of real landslide pixels that were mapped (probability of detection)",
    "f1": "balance of precision and recall (2·TP / (2·TP + FP + FN))",
    "mcc": "Matthews correlation: −1 … 1, also rewards correct empty ground",
    "iou": "intersection over union (critical success index)",
    "bias": "mapped / real landslide area: > 1 over-maps, < 1 under-maps",
    "accuracy": "share of all pixels classified correctly (dominated by empty ground)",
    "kappa": "Cohen's kappa: agreement beyond chance",
}


def format_metrics(m: dict) -> str:
    def f(v):
        return "n/a" if v is None else f"{v:.3f}"

    return (f"Precision {f(m['precision'])}  Recall {f(m['recall'])}  F1 {f(m['f1'])}  MCC {f(m['mcc'])}  "
            f"IoU {f(m['iou'])}  (TP {m['tp']}, FP {m['fp']}, FN {m['fn']}, TN {m['tn']})")


# ---------------------------------------------------------------------------------------------- threshold sweep
SWEEP_BINS = 100  # thresholds 0.00, 0.01, …, 0.99


def sweep_confusions(pos_hist: np.ndarray, neg_hist: np.ndarray) -> list[Confusion]:
    """Confusion at each threshold k/n from histograms of n bins over [0, 1] of truly positive/negative pixels.

    Predicting positive for bins ≥ k gives TP and FP as suffix sums.
    """
    tp = np.cumsum(np.asarray(pos_hist)[::-1])[::-1]
    fp = np.cumsum(np.asarray(neg_hist)[::-1])[::-1]
    n_pos, n_neg = int(np.sum(pos_hist)), int(np.sum(neg_hist))
    return [Confusion(tp=int(a), fp=int(b), fn=n_pos - int(a), tn=n_neg - int(b)) for a, b in zip(tp, fp)]


def threshold_sweep(pos_hist: np.ndarray, neg_hist: np.ndarray) -> list[dict]:
    """Rows of threshold and scores (precision, recall, F1, MCC, …) for every histogram bin edge."""
    n = len(pos_hist)
    return [{"threshold": k / n, **scores(c)} for k, c in enumerate(sweep_confusions(pos_hist, neg_hist))]


def best_threshold(pos_hist: np.ndarray, neg_hist: np.ndarray) -> tuple[float, float]:
    """Threshold (bin lower edge) maximising F1, from histograms of probabilities of true positives/negatives."""
    rows = threshold_sweep(pos_hist, neg_hist)
    k = int(np.argmax([r["f1"] or 0.0 for r in rows]))
    return rows[k]["threshold"], float(rows[k]["f1"] or 0.0)


def _best_rows(rows: list[dict]) -> dict:
    """The sweep rows with the highest F1 and the highest MCC (first of ties, i.e. the lowest threshold).

    None when no threshold finds a single landslide pixel (F1 0 everywhere) or MCC is undefined everywhere.
    """
    out = {}
    for key, floor in (("f1", 0.0), ("mcc", -np.inf)):
        values = [r[key] if r[key] is not None else -np.inf for r in rows]
        k = int(np.argmax(values))
        out[f"best_{key}"] = rows[k] if values[k] > floor else None
    return out


class ProbabilityHistogram:
    """Counts of truly positive / negative valid pixels per probability bin, summed over windows.

    Bin k holds p with k/n ≤ p < (k+1)/n (p·n is exact in float64 for float32 p), so predicting bins ≥ k is exactly
    `p ≥ k/n` as `evaluate_prediction` cuts probabilities; p ≥ 1 falls in the top bin, p < 0 in the first.
    """

    def __init__(self, bins: int = SWEEP_BINS):
        self.bins = bins
        self.counts = np.zeros(2 * bins + 1, dtype=np.int64)  # [negatives | positives | not valid]

    def add(self, prob: np.ndarray, positive: np.ndarray, valid: np.ndarray) -> None:
        k = np.multiply(prob, self.bins, dtype=np.float64)
        np.clip(k, 0, self.bins - 1, out=k)
        with np.errstate(invalid="ignore"):
            idx = k.astype(np.int16)  # NaN is never valid: whatever it casts to is overwritten below
        idx += positive.view(np.uint8) * np.int16(self.bins)
        idx[~valid] = 2 * self.bins
        self.counts += np.bincount(idx.ravel(), minlength=2 * self.bins + 1)

    @property
    def negative(self) -> np.ndarray:
        return self.counts[:self.bins]

    @property
    def positive(self) -> np.ndarray:
        return self.counts[self.bins:2 * self.bins]


def exact_threshold(dtype, threshold: float):
    """The value to compare `dtype` pixels with so that `p >= it` means p ≥ threshold as real numbers.

    numpy compares a float32 array with a float32-rounded threshold; 0.29 rounds *down*, which would count
    p = 0.2899999 as landslide. Rounding the threshold up to the next float32 keeps evaluation and sweep in step.
    """
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        return threshold
    t = dtype.type(threshold)
    if float(t) < threshold:
        t = np.nextafter(t, dtype.type(np.inf))
    return t


# ---------------------------------------------------------------------------------------------- objects
@dataclass(frozen=True)
class ObjectRule:
    """How landslide objects are formed and when one counts as found.

    An object is a group of connected landslide pixels (8-connectivity: diagonal neighbours join). A real landslide
    is *detected* when the map covers at least `min_overlap` of its pixels (0: any single pixel); a mapped object is
    a *false object* when less than `min_overlap` of it (0: not a single pixel) lies on real landslides.
    """

    min_overlap: float = 0.0
    connectivity: int = 8
    size_classes_m2: tuple[float, ...] = (1_000.0, 5_000.0, 10_000.0, 50_000.0)  # upper edges of size classes

    def check(self) -> None:
        if not 0.0 <= self.min_overlap <= 1.0:
            raise InputError(f"Object overlap must be a share between 0 and 1; got {self.min_overlap}.")
        if self.connectivity not in (4, 8):
            raise InputError(f"Object connectivity must be 4 or 8 neighbours; got {self.connectivity}.")
        edges = list(self.size_classes_m2)
        if any(e <= 0 for e in edges) or edges != sorted(set(edges)):
            raise InputError(f"Size class limits must be positive and increasing (m²); got {edges}.")

    def class_names(self) -> list[str]:
        edges = list(self.size_classes_m2)
        if not edges:
            return ["all sizes"]
        names = [f"< {edges[0]:,.0f} m²"]
        names += [f"{a:,.0f}–{b:,.0f} m²" for a, b in zip(edges[:-1], edges[1:])]
        return names + [f"≥ {edges[-1]:,.0f} m²"]


class ObjectTally:
    """Connected objects of a binary map, tallied by size class, with memory bounded by one strip.

    Each strip is labelled with scipy.ndimage.label. Objects touching the strip's last row stay *open*: their
    running area and overlap are kept with their labels along that row. In the next strip, labels of its first row
    that touch open labels (vertically, or diagonally with 8-connectivity) are joined through the connected
    components of that link graph (a union-find). An object is tallied once no pixel of it reaches the next strip,
    so memory is one strip plus one row of open objects, whatever the raster size or the number of objects.
    """

    def __init__(self, rule: ObjectRule, pixel_area_m2: float):
        from scipy import ndimage

        self.rule = rule
        self.pixel_area_m2 = pixel_area_m2
        self.structure = ndimage.generate_binary_structure(2, 2 if rule.connectivity == 8 else 1)
        n = len(rule.size_classes_m2) + 1
        self.objects = np.zeros(n, dtype=np.int64)
        self.hits = np.zeros(n, dtype=np.int64)  # objects that meet the overlap rule
        self.pixels = np.zeros(n, dtype=np.int64)
        self.hit_pixels = np.zeros(n, dtype=np.int64)
        self._open_row: np.ndarray | None = None  # open-object ids (1..K) along the last row, 0 = none
        self._open_area = np.zeros(1, dtype=np.int64)  # per open id (index 0 unused)
        self._open_overlap = np.zeros(1, dtype=np.int64)

    def add(self, mask: np.ndarray, other: np.ndarray, last: bool = False) -> None:
        """Add the next strip: `mask` the objects' pixels, `other` the pixels that count as overlap."""
        from scipy import ndimage, sparse
        from scipy.sparse.csgraph import connected_components

        labels, n = ndimage.label(mask, self.structure)
        if labels.shape[0] == 0:
            return
        area = np.bincount(labels.ravel(), minlength=n + 1)
        overlap = np.bincount(labels[other], minlength=n + 1)
        n_open = len(self._open_area) - 1
        # Graph nodes: 0 (nothing), open ids 1..K, this strip's labels as K + label.
        node_area = np.concatenate([self._open_area, area[1:]])
        node_overlap = np.concatenate([self._open_overlap, overlap[1:]])
        a_list, b_list = [], []
        if self._open_row is not None and n_open:
            above, first = self._open_row, labels[0]
            pairs = [(above, first)]
            if self.rule.connectivity == 8:
                pairs += [(above[:-1], first[1:]), (above[1:], first[:-1])]
            for a, b in pairs:
                linked = (a > 0) & (b > 0)
                a_list.append(a[linked])
                b_list.append(b[linked].astype(np.int64) + n_open)
        size = n_open + n + 1
        if a_list:
            a_nodes, b_nodes = np.concatenate(a_list), np.concatenate(b_list)
            graph = sparse.coo_matrix((np.ones(len(a_nodes), dtype=np.int8), (a_nodes, b_nodes)), shape=(size, size))
            _, component = connected_components(graph, directed=False)
        else:
            component = np.arange(size)
        n_comp = int(component.max()) + 1
        comp_area = np.bincount(component, weights=node_area, minlength=n_comp).astype(np.int64)
        comp_overlap = np.bincount(component, weights=node_overlap, minlength=n_comp).astype(np.int64)
        still_open = np.zeros(n_comp, dtype=bool)
        if not last:
            bottom = labels[-1]
            still_open[component[bottom[bottom > 0].astype(np.int64) + n_open]] = True
        done = ~still_open & (comp_area > 0)
        self._tally(comp_area[done], comp_overlap[done])
        # Renumber the open objects 1..K' and remember them along this strip's last row.
        new_id = np.zeros(n_comp, dtype=np.int64)
        new_id[still_open] = np.arange(1, int(still_open.sum()) + 1)
        self._open_area = np.concatenate([[0], comp_area[still_open]])
        self._open_overlap = np.concatenate([[0], comp_overlap[still_open]])
        bottom = labels[-1].astype(np.int64)
        self._open_row = np.where(bottom > 0, new_id[component[bottom + n_open]], 0)

    def _tally(self, area: np.ndarray, overlap: np.ndarray) -> None:
        hit = (overlap > 0) & (overlap >= self.rule.min_overlap * area)
        cls = np.searchsorted(np.asarray(self.rule.size_classes_m2, dtype=float), area * self.pixel_area_m2,
                              side="right")
        n = len(self.objects)
        self.objects += np.bincount(cls, minlength=n)
        self.hits += np.bincount(cls[hit], minlength=n)
        self.pixels += np.bincount(cls, weights=area, minlength=n).astype(np.int64)
        self.hit_pixels += np.bincount(cls[hit], weights=area[hit], minlength=n).astype(np.int64)

    def finish(self) -> None:
        """Tally objects still open after the last strip (call once at the end)."""
        if len(self._open_area) > 1:
            self._tally(self._open_area[1:], self._open_overlap[1:])
        self._open_area, self._open_overlap = np.zeros(1, np.int64), np.zeros(1, np.int64)
        self._open_row = None


def object_metrics(truth: ObjectTally, predicted: ObjectTally) -> dict:
    """Landslides detected / missed by size class, false objects, object precision/recall/F1."""
    rule = truth.rule
    n_true, n_found = int(truth.objects.sum()), int(truth.hits.sum())
    n_pred, n_correct = int(predicted.objects.sum()), int(predicted.hits.sum())
    recall, precision = _ratio(n_found, n_true), _ratio(n_correct, n_pred)
    classes = []
    for k, name in enumerate(rule.class_names()):
        lo = 0.0 if k == 0 else rule.size_classes_m2[k - 1]
        hi = rule.size_classes_m2[k] if k < len(rule.size_classes_m2) else None
        classes.append({
            "size_class": name, "min_m2": lo, "max_m2": hi,
            "landslides": int(truth.objects[k]), "detected": int(truth.hits[k]),
            "missed": int(truth.objects[k] - truth.hits[k]),
            "recall": _ratio(int(truth.hits[k]), int(truth.objects[k])),
            "landslide_area_m2": float(truth.pixels[k] * truth.pixel_area_m2),
            "detected_area_m2": float(truth.hit_pixels[k] * truth.pixel_area_m2),
            "mapped_objects": int(predicted.objects[k]),
            "false_objects": int(predicted.objects[k] - predicted.hits[k]),
        })
    return {
        "rule": {"min_overlap": rule.min_overlap, "connectivity": rule.connectivity},
        "pixel_area_m2": truth.pixel_area_m2,
        "landslides": n_true, "detected": n_found, "missed": n_true - n_found,
        "mapped_objects": n_pred, "correct_objects": n_correct, "false_objects": n_pred - n_correct,
        "object_recall": recall, "object_precision": precision,
        "object_f1": (2 * recall * precision / (recall + precision)
                      if recall is not None and precision is not None and recall + precision > 0 else None),
        "size_classes": classes,
    }


def pixel_area_m2(src, window: Window) -> float:
    """Ground area of one pixel in m² (projected CRS: exact; geographic: on the sphere at the window's centre)."""
    a, e = abs(src.transform.a), abs(src.transform.e)
    crs = src.crs
    if crs is not None and crs.is_geographic:
        centre_row = window.row_off + window.height / 2
        lat = math.radians((src.transform * (0, centre_row))[1])
        r = 6_371_008.8
        return r * r * math.radians(a) * abs(math.sin(lat + math.radians(e) / 2) - math.sin(lat - math.radians(e) / 2))
    factor = 1.0
    if crs is not None:
        try:
            factor = float(crs.linear_units_factor[1])
        except Exception:  # noqa: BLE001 - unknown units: assume metres
            factor = 1.0
    return a * e * factor * factor


# ---------------------------------------------------------------------------------------------- boundaries
class BoundaryTally:
    """Boundary precision/recall within a tolerance (the thesis scored ravine lines this way).

    A boundary pixel is an object pixel with a non-object 4-neighbour; one counts as matched when the other map has
    a boundary pixel within `tolerance` pixels (square neighbourhood). Strips are read with a halo of
    tolerance + 1 rows, so results do not depend on where strips are cut.
    """

    def __init__(self, tolerance: int):
        self.tolerance = int(tolerance)
        self.counts = {"truth_boundary": 0, "truth_matched": 0, "mapped_boundary": 0, "mapped_matched": 0}

    @staticmethod
    def boundary(mask: np.ndarray) -> np.ndarray:
        from scipy import ndimage

        # Outside the raster counts as 'object', so the raster edge is no boundary.
        return mask & ~ndimage.binary_erosion(mask, border_value=1)

    def add(self, truth: np.ndarray, mapped: np.ndarray, valid: np.ndarray, core: slice) -> None:
        """Masks of a strip with halo rows; `core` the rows this strip owns."""
        from scipy import ndimage

        inner = ndimage.binary_erosion(valid, border_value=1)  # not next to nodata: no artificial boundaries
        bt, bm = self.boundary(truth) & inner, self.boundary(mapped) & inner
        size = 2 * self.tolerance + 1
        near_t = ndimage.maximum_filter(bt.view(np.uint8), size=size, mode="constant").astype(bool)
        near_m = ndimage.maximum_filter(bm.view(np.uint8), size=size, mode="constant").astype(bool)
        bt, bm, near_t, near_m = bt[core], bm[core], near_t[core], near_m[core]
        self.counts["truth_boundary"] += int(np.count_nonzero(bt))
        self.counts["truth_matched"] += int(np.count_nonzero(bt & near_m))
        self.counts["mapped_boundary"] += int(np.count_nonzero(bm))
        self.counts["mapped_matched"] += int(np.count_nonzero(bm & near_t))

    def result(self, pixel_size: float) -> dict:
        c = self.counts
        precision = _ratio(c["mapped_matched"], c["mapped_boundary"])
        recall = _ratio(c["truth_matched"], c["truth_boundary"])
        f1 = (2 * precision * recall / (precision + recall)
              if precision is not None and recall is not None and precision + recall > 0 else None)
        return {"tolerance_px": self.tolerance, "tolerance_map_units": self.tolerance * pixel_size,
                "boundary_precision": precision, "boundary_recall": recall, "boundary_f1": f1, **c}


# ---------------------------------------------------------------------------------------------- streaming
STRIP_BLOCK = 2048  # strips of about 2048² = 4 M pixels: 16 MB per float32 band, few per-strip overheads


def strip_windows(window: Window, block: int = STRIP_BLOCK) -> Iterator[Window]:
    """Full-width strips of `window` holding about block² pixels each (whole rows, so objects can be joined)."""
    width, height = int(window.width), int(window.height)
    rows = max(1, (block * block) // max(width, 1))
    if rows > 256:
        rows -= rows % 256  # whole rows of 256-pixel tiles: each tile is decoded and compressed once
    for r in range(0, height, rows):
        yield Window(window.col_off, window.row_off + r, width, min(rows, height - r))


@dataclass
class _Sources:
    grid: object  # the first prediction: its grid is the evaluation grid
    predictions: list  # datasets on that grid (aligned views)
    truth: object  # chips.LabelSource
    area: object | None
    window: Window

    def read(self, w: Window, thresholds: Sequence[float | None]) -> tuple[list, list, np.ndarray, np.ndarray]:
        """Per prediction (predicted positive, raw values) and truth positive and common valid mask for `w`."""
        labels = rasterize_labels(self.truth, self.grid, w)
        valid = labels != IGNORE
        if self.area is not None:
            valid &= rasterize_labels(self.area, self.grid, w) == 1
        raws = []
        for src in self.predictions:
            data, ok = raster.read_valid(src, 1, w)
            valid &= ok
            raws.append(data)
        predicted = []
        for data, t in zip(raws, thresholds):
            p = (data >= t) if t is not None else (data > 0)
            p &= valid
            predicted.append(p)
        positive = labels == 1
        positive &= valid
        return predicted, raws, positive, valid


def _open_prediction(path):
    """Open a prediction; a floating-point one so that several threads decode the tiles of each strip.

    Decoding a DEFLATE float32 probability is the slowest step of an evaluation (threads ~1.6× faster here);
    for a uint8 mask the threads cost more than they save.
    """
    src = raster.open_raster(path)
    if np.dtype(src.dtypes[0]).kind != "f":
        return src
    src.close()
    return raster.open_raster(path, num_threads="ALL_CPUS")


@contextmanager
def _open_sources(predictions: Sequence, truth_path, truth_field, truth_layer, area_path, area_layer,
                  extent, parameter: str = "PREDICTION") -> Iterator[_Sources]:
    with ExitStack() as stack:
        stack.enter_context(raster.bounded_gdal_cache())
        grid = stack.enter_context(_open_prediction(predictions[0]))
        views = [grid]
        for path in predictions[1:]:
            src = stack.enter_context(_open_prediction(path))
            views.append(stack.enter_context(raster.aligned(src, grid, Resampling.nearest)))
        truth = open_labels(str(truth_path), grid, truth_field, truth_layer, what="Truth layer (TRUTH)")
        area = open_labels(str(area_path), grid, None, area_layer, what="Evaluation area (EVALUATION_AREA)") \
            if area_path else None
        _check_overlap(f"'{predictions[0]}' ({parameter})", grid.bounds, truth, truth_path, truth_field, area,
                       area_path)
        yield _Sources(grid, views, truth, area, raster.window_from_extent(grid, extent))


def _check_overlap(prediction: str, bounds, truth, truth_path, truth_field, area, area_path) -> None:
    """Refuse truth polygons (or evaluation-area polygons) of which none lies on the prediction: every score would
    then measure the mismatch of two places, not the prediction. (Truth that only misses a chosen EXTENT or
    evaluation area still scores false alarms: that is a warning of the evaluation, not a refusal.)"""
    box = "(bounds " + ", ".join(f"{v:.10g}" for v in bounds) + ")"
    if truth.bboxes is not None and not len(truth.bboxes):
        raise InputError(f"Truth layer '{truth_path}' (TRUTH) holds no landslide polygon (no feature with a class "
                         f"above 0 in field '{truth_field}'), so there is nothing to score prediction {prediction} "
                         f"against. Check the layer and its class field (TRUTH_FIELD), then run again.")
    if truth.bboxes is not None and not len(_hits(truth.bboxes, bounds)):
        raise InputError(f"None of the {len(truth.bboxes)} landslide polygons of truth '{truth_path}' (TRUTH) lies "
                         f"on prediction {prediction} {box}: they map different places, so no score "
                         f"would mean anything. Check that both cover the same area and that the truth layer's CRS "
                         f"is right, then run again.")
    if area is not None and area.bboxes is not None and not len(_hits(area.bboxes, bounds)):
        raise InputError(f"Evaluation area '{area_path}' (EVALUATION_AREA) does not overlap prediction "
                         f"{prediction} {box}, so no pixel could be scored. Check that both cover the same "
                         f"area and that the area layer's CRS is right, then run again.")


PROBABILITY_TOLERANCE = 1e-6  # float rounding allowed beyond 0 and 1


def _check_probability_range(raw: np.ndarray, valid: np.ndarray, seen: list[float], path, parameter: str,
                             advice: str) -> None:
    """Refuse a raster read as probabilities that holds values outside 0–1; `seen` = [lowest, highest] so far."""
    top, bottom = (np.inf, -np.inf) if raw.dtype.kind == "f" else (np.iinfo(raw.dtype).max, np.iinfo(raw.dtype).min)
    seen[0] = min(seen[0], float(np.min(raw, where=valid, initial=top)))
    seen[1] = max(seen[1], float(np.max(raw, where=valid, initial=bottom)))
    if seen[0] < -PROBABILITY_TOLERANCE or seen[1] > 1.0 + PROBABILITY_TOLERANCE:
        raise InputError(f"Prediction '{path}' ({parameter}) is read as a probability but holds values from "
                         f"{seen[0]:.4g} to {seen[1]:.4g}; a probability lies between 0 and 1, so every threshold "
                         f"and score would be meaningless. {advice}")


def _is_probability(src, is_probability: bool | None) -> bool:
    return np.dtype(src.dtypes[0]).kind == "f" if is_probability is None else bool(is_probability)


def _threshold(src, probability: bool, threshold: float) -> float | None:
    if not probability:
        return None
    if not 0.0 <= threshold <= 1.0:
        raise InputError(f"The threshold must be between 0 and 1 for probability raster '{src.name}'; "
                         f"got {threshold}.")
    return exact_threshold(src.dtypes[0], threshold)


@contextmanager
def _code_raster(path, grid, window: Window, description: str, codes: str, colours: dict[int, str]):
    """A uint8 class map with an embedded colour table, so it shows in its colours in any GIS (QGIS styles it too)."""
    if not path:
        yield None
        return
    with raster.create_raster(path, width=int(window.width), height=int(window.height), crs=grid.crs,
                              transform=grid.window_transform(window), dtype="uint8", descriptions=[description],
                              nodata=NODATA, tags={"LANDSLIDE_MAPPER": description, "CODES": codes}, fast=True) as dst:
        table = {NODATA: (255, 255, 255, 0)}
        table.update({v: tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) + (255,) for v, c in colours.items()})
        dst.write_colormap(1, table)
        yield dst


@contextmanager
def _stream(s: _Sources, cuts: Sequence, block: int, out_path=None, description: str = "", codes: str = "",
            colours: dict | None = None):
    """Strips of the evaluation window with their data, and `write(code, strip)` into an optional code raster.

    The next strip is read in a background thread while the caller works on this one, and each code strip is
    compressed and written in the background too; only one thread ever touches a dataset at a time, and every
    thread has finished before the inputs or the output are closed (or the output is dropped after an error).
    """
    strips = list(strip_windows(s.window, block))
    with ExitStack() as stack:
        dst = stack.enter_context(_code_raster(out_path, s.grid, s.window, description, codes, colours or {}))
        pool = stack.enter_context(ThreadPoolExecutor(2))  # closed first: waits for the last read and write
        pending: list = []

        def write(code: np.ndarray, w: Window) -> None:
            for job in pending:
                job.result()
            pending.clear()
            target = Window(0, w.row_off - s.window.row_off, w.width, w.height)
            pending.append(pool.submit(dst.write, code[None], window=target))

        def with_data() -> Iterator[tuple[int, Window, tuple]]:
            ahead = pool.submit(s.read, strips[0], cuts)
            for k, w in enumerate(strips):
                data = ahead.result()
                if k + 1 < len(strips):
                    ahead = pool.submit(s.read, strips[k + 1], cuts)
                yield k, w, data

        yield with_data(), (write if dst is not None else None), len(strips)
        for job in pending:
            job.result()  # a failed write must fail the run before the file is renamed into place


@dataclass
class Evaluation:
    metrics: dict  # pixel scores and counts (see `scores`)
    confusion_path: Path | None
    report_path: Path | None
    objects: dict | None = None  # see `object_metrics`
    sweep: list[dict] | None = None  # threshold rows (probability input only)
    best: dict | None = None  # {"best_f1": row, "best_mcc": row}
    boundary: dict | None = None
    files: dict = field(default_factory=dict)  # html, performance_diagram, sweep_csv, sweep_plot, confusion_png


def evaluate_prediction(
    prediction_path: str | os.PathLike,
    truth_path: str | os.PathLike,
    out_confusion: str | os.PathLike | None = None,
    out_report: str | os.PathLike | None = None,
    *,
    threshold: float = 0.5,
    truth_field: str = "class",
    truth_layer: str | None = None,
    area_path: str | os.PathLike | None = None,
    area_layer: str | None = None,
    extent: Sequence[float] | None = None,
    is_probability: bool | None = None,
    objects: ObjectRule | None = ObjectRule(),
    sweep: bool = True,
    boundary_tolerance: int = 0,
    name: str | None = None,
    block: int = STRIP_BLOCK,
    progress: Progress | None = None,
) -> Evaluation:
    """Compare a prediction (mask or probability) with truth (raster, or polygons in any CRS) on the prediction's grid.

    A probability raster (float; or `is_probability=True`) is cut at p ≥ `threshold`, a mask is positive where > 0.
    Pixels that are nodata in either input, or outside the optional evaluation area (polygons or raster > 0), are
    left out (confusion code 0). With `objects`, landslides found/missed and false objects are counted by size
    class; with a probability input and `sweep`, scores at every threshold 0.00…0.99 are reported with the best.
    `out_report` (JSON) gets an HTML report and PNG/CSV files next to it, named after it.
    """
    progress = or_null(progress)
    if objects is not None:
        objects.check()
    if boundary_tolerance < 0:
        raise InputError(f"The boundary tolerance must be 0 (off) or more pixels; got {boundary_tolerance}.")
    name = name or Path(prediction_path).stem
    with _open_sources([prediction_path], truth_path, truth_field, truth_layer, area_path, area_layer,
                       extent) as s:
        grid, win = s.grid, s.window
        probability = _is_probability(grid, is_probability)
        cut = _threshold(grid, probability, threshold)
        hist = ProbabilityHistogram() if probability and sweep else None
        area_m2 = pixel_area_m2(grid, win)
        truth_objects = ObjectTally(objects, area_m2) if objects else None
        mapped_objects = ObjectTally(objects, area_m2) if objects else None
        tp = n_pred = n_pos = n_valid = 0
        seen = [np.inf, -np.inf]
        advice = ("If it is a mask or a class raster, set the prediction type (PREDICTION_TYPE) to Mask; if it is "
                  "a probability in percent or 0–255, rescale it to 0–1 first.")
        share = 100.0 if not boundary_tolerance else 70.0
        with _stream(s, [cut], block, out_confusion, "confusion", "1=TP,2=FP,3=FN,4=TN,0=nodata",
                     {k: CONFUSION_COLOURS[k] for k in (TP, FP, FN, TN)}) as (strips, write, n_strips):
            for k, w, ((predicted,), (raw,), positive, valid) in strips:
                check_canceled(progress)
                if probability:
                    _check_probability_range(raw, valid, seen, prediction_path, "PREDICTION", advice)
                tp += int(np.count_nonzero(predicted & positive))
                n_pred += int(np.count_nonzero(predicted))
                n_pos += int(np.count_nonzero(positive))
                n_valid += int(np.count_nonzero(valid))
                if hist is not None:
                    hist.add(raw, positive, valid)
                if truth_objects is not None:
                    last = k == n_strips - 1
                    truth_objects.add(positive, predicted, last)
                    mapped_objects.add(predicted, positive, last)
                if write is not None:
                    # TP 1, FP 2, FN 3, TN 4 is 4 − 2·predicted − positive; nodata stays 0.
                    code = np.uint8(TN) - 2 * predicted.view(np.uint8) - positive.view(np.uint8)
                    code *= valid.view(np.uint8)
                    write(code, w)
                progress.set_progress(share * (k + 1) / n_strips)
            total = Confusion.from_counts(tp, n_pred, n_pos, n_valid)
            if n_valid == 0:
                raise InputError(f"Prediction '{prediction_path}' and truth '{truth_path}' share no valid pixel"
                                 + (f" inside the evaluation area '{area_path}'." if area_path else "."))
        boundary = None
        if boundary_tolerance:
            boundary = _boundary_pass(s, cut, boundary_tolerance, block, progress, share)
    ev = Evaluation(scores(total), Path(out_confusion) if out_confusion else None, None, boundary=boundary)
    if truth_objects is not None:
        truth_objects.finish()
        mapped_objects.finish()
        ev.objects = object_metrics(truth_objects, mapped_objects)
    if hist is not None:
        ev.sweep = threshold_sweep(hist.positive, hist.negative)
        ev.best = _best_rows(ev.sweep)
    progress.log(format_metrics(ev.metrics))
    warning = None
    if n_pos == 0:  # still a count of false alarms, but no score of finding landslides
        warning = (f"the truth '{truth_path}' holds no landslide pixel where the prediction is scored, so recall, "
                   f"F1, MCC and IoU are undefined or 0 and say nothing about finding landslides; only the false "
                   f"alarms (FP) count.")
        progress.log(f"Warning: {warning}")
    if ev.objects:
        o = ev.objects
        progress.log(f"Landslides detected {o['detected']} of {o['landslides']}, false objects {o['false_objects']} "
                     f"of {o['mapped_objects']} mapped")
    if ev.best and ev.best["best_f1"]:
        b = ev.best["best_f1"]
        progress.log(f"Best threshold {b['threshold']:.2f} (F1 {b['f1']:.3f})")
    if out_report:
        info = {"kind": "evaluation", "name": name, "prediction": str(prediction_path), "truth": str(truth_path),
                "evaluation_area": str(area_path) if area_path else None,
                "prediction_type": "probability" if probability else "mask",
                "threshold": threshold if probability else None, "pixels_evaluated": n_valid, "warning": warning}
        ev.report_path, ev.files = write_evaluation_report(out_report, info, ev)
    progress.set_progress(100.0)
    return ev


def _boundary_pass(s: _Sources, cut, tolerance: int, block: int, progress: Progress, start: float) -> dict:
    """Second pass for boundary scores: strips with a halo of tolerance + 1 rows above and below."""
    win, grid = s.window, s.grid
    tally = BoundaryTally(tolerance)
    halo = tolerance + 1
    strips = list(strip_windows(win, block))
    top, bottom = int(win.row_off), int(win.row_off + win.height)
    for k, w in enumerate(strips):
        check_canceled(progress)
        r0 = max(top, int(w.row_off) - halo)
        r1 = min(bottom, int(w.row_off + w.height) + halo)
        (predicted,), _, positive, valid = s.read(Window(w.col_off, r0, w.width, r1 - r0), [cut])
        core = slice(int(w.row_off) - r0, int(w.row_off) - r0 + int(w.height))
        tally.add(positive, predicted, valid, core)
        progress.set_progress(start + (100.0 - start) * (k + 1) / len(strips))
    return tally.result(abs(grid.transform.a))


@dataclass
class Comparison:
    names: tuple[str, str]
    metrics: tuple[dict, dict]  # pixel scores of A and B on the pixels both cover
    counts: dict  # comparison class label → pixels
    map_path: Path | None
    report_path: Path | None
    files: dict = field(default_factory=dict)


def compare_predictions(
    prediction_a: str | os.PathLike,
    prediction_b: str | os.PathLike,
    truth_path: str | os.PathLike,
    out_map: str | os.PathLike | None = None,
    out_report: str | os.PathLike | None = None,
    *,
    names: tuple[str, str] = ("A", "B"),
    thresholds: tuple[float, float] = (0.5, 0.5),
    truth_field: str = "class",
    truth_layer: str | None = None,
    area_path: str | os.PathLike | None = None,
    area_layer: str | None = None,
    extent: Sequence[float] | None = None,
    block: int = STRIP_BLOCK,
    progress: Progress | None = None,
) -> Comparison:
    """Two predictions (e.g. single best model vs ensemble) against one truth → 8-class comparison map and scores.

    Map codes: 1 both found, 2 only A found, 3 only B found, 4 both missed, 5 both false alarm, 6 only A false
    alarm, 7 only B false alarm, 8 both correctly empty, 0 nodata. B is read on A's grid (nearest neighbour); only
    pixels valid in A, B and truth (and inside the evaluation area) count, so both get the same ground.
    """
    progress = or_null(progress)
    names = tuple(str(n) for n in names)
    if names[0] == names[1]:
        names = (f"{names[0]} (A)", f"{names[1]} (B)")
    with _open_sources([prediction_a, prediction_b], truth_path, truth_field, truth_layer, area_path, area_layer,
                       extent, parameter="PREDICTION_A") as s:
        kinds = [_is_probability(src, None) for src in s.predictions]
        cuts = [_threshold(src, k, t) for src, k, t in zip(s.predictions, kinds, thresholds)]
        counts = np.zeros(BOTH_TN + 1, dtype=np.int64)
        codes = "1=both TP,2=only A TP,3=only B TP,4=both FN,5=both FP,6=only A FP,7=only B FP,8=both TN,0=nodata"
        colours = {m.value: m.color for m in COMPARISON_CLASSES}
        with _stream(s, cuts, block, out_map, "comparison", codes, colours) as (strips, write, n_strips):
            seen = [[np.inf, -np.inf], [np.inf, -np.inf]]
            for k, w, ((a, b), raws, positive, valid) in strips:
                check_canceled(progress)
                for raw, kind, path, side, lo_hi in zip(raws, kinds, (prediction_a, prediction_b), "AB", seen):
                    if kind:
                        _check_probability_range(raw, valid, lo_hi, path, f"PREDICTION_{side}",
                                                 "If it is a mask or a class raster, store it as integers (1 = "
                                                 "landslide); if it is a probability in percent or 0–255, rescale "
                                                 "it to 0–1 first.")
                code = np.uint8(BOTH_TN) - 4 * positive.view(np.uint8) - 2 * a.view(np.uint8) - b.view(np.uint8)
                code *= valid.view(np.uint8)
                counts += np.bincount(code.ravel(), minlength=BOTH_TN + 1)
                if write is not None:
                    write(code, w)
                progress.set_progress(95.0 * (k + 1) / n_strips)
            if counts[1:].sum() == 0:
                raise InputError(f"Predictions '{prediction_a}', '{prediction_b}' and truth '{truth_path}' share no "
                                 f"valid pixel.")
    c = counts
    conf_a = Confusion(tp=int(c[BOTH_TP] + c[ONLY_A_TP]), fn=int(c[ONLY_B_TP] + c[BOTH_FN]),
                       fp=int(c[BOTH_FP] + c[ONLY_A_FP]), tn=int(c[ONLY_B_FP] + c[BOTH_TN]))
    conf_b = Confusion(tp=int(c[BOTH_TP] + c[ONLY_B_TP]), fn=int(c[ONLY_A_TP] + c[BOTH_FN]),
                       fp=int(c[BOTH_FP] + c[ONLY_B_FP]), tn=int(c[ONLY_A_FP] + c[BOTH_TN]))
    labels = {m.value: m.label.format(a=names[0], b=names[1]) for m in COMPARISON_CLASSES}
    result = Comparison(names, (scores(conf_a), scores(conf_b)), {labels[v]: int(c[v]) for v in labels},
                        Path(out_map) if out_map else None, None)
    for n, m in zip(names, result.metrics):
        progress.log(f"{n}: {format_metrics(m)}")
    if out_report:
        info = {"kind": "comparison", "truth": str(truth_path),
                "evaluation_area": str(area_path) if area_path else None,
                "predictions": [{"name": n, "path": str(p), "prediction_type": "probability" if k else "mask",
                                 "threshold": t if k else None}
                                for n, p, k, t in zip(names, (prediction_a, prediction_b), kinds, thresholds)]}
        result.report_path, result.files = write_comparison_report(out_report, info, result)
    progress.set_progress(100.0)
    return result


# ---------------------------------------------------------------------------------------------- plots
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, png_path) -> Path:
    plt = _pyplot()
    with atomic_output(png_path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    plt.close(fig)
    return Path(png_path)


# When several pixels fall into one screen cell, show the most telling: misses and false alarms over hits over TN.
_CONFUSION_PRIORITY = (NODATA, TN, TP, FP, FN)  # lowest → highest
_COMPARISON_PRIORITY = (NODATA, BOTH_TN, BOTH_TP, BOTH_FP, BOTH_FN, ONLY_A_FP, ONLY_B_FP, ONLY_A_TP, ONLY_B_TP)


def _decimate_codes(path, max_pixels: int, priority: Sequence[int] = _CONFUSION_PRIORITY) -> np.ndarray:
    """Map codes reduced by an integer factor, strip by strip, keeping small objects visible (by `priority`)."""
    rank = np.zeros(256, dtype=np.uint8)
    rank[list(priority)] = np.arange(len(priority), dtype=np.uint8)
    back = np.asarray(priority, dtype=np.uint8)
    with raster.open_raster(path) as src:
        f = max(1, int(np.ceil(max(src.width, src.height) / max_pixels)))
        out_h, out_w = -(-src.height // f), -(-src.width // f)
        out = np.zeros((out_h, out_w), dtype=np.uint8)
        rows_per_strip = f * max(1, 1024 // f)
        for row in range(0, src.height, rows_per_strip):
            h = min(rows_per_strip, src.height - row)
            block = rank[src.read(1, window=((row, row + h), (0, src.width)))]
            ph, pw = -(-h // f) * f, out_w * f
            padded = np.zeros((ph, pw), dtype=np.uint8)
            padded[:h, :src.width] = block
            reduced = padded.reshape(ph // f, f, out_w, f).max(axis=(1, 3))
            out[row // f: row // f + reduced.shape[0]] = reduced
    return back[out]


def plot_code_map(path, png_path, classes: Sequence[tuple[int, str, str]], title: str,
                  priority: Sequence[int], max_pixels: int = 1200) -> Path:
    """PNG quick-look of a paletted code raster with a legend; `classes` are (code, colour, label)."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    plt = _pyplot()
    codes = _decimate_codes(path, max_pixels, priority)
    top = max(c for c, _, _ in classes)
    colours = ["#ffffff"] * (top + 1)
    for code, colour, _ in classes:
        colours[code] = colour
    aspect = codes.shape[0] / codes.shape[1]
    fig, ax = plt.subplots(figsize=(8, 8 * aspect) if aspect <= 1.5 else (12 / aspect + 0.5, 12), dpi=120)
    ax.imshow(codes, cmap=ListedColormap(colours), vmin=-0.5, vmax=top + 0.5, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title, fontsize=10)
    handles = [Patch(color=colour, label=label) for _, colour, label in classes]
    handles.append(Patch(facecolor="white", edgecolor="#999999", label="no data (e.g. cloud)"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.01), ncol=3 if len(handles) <= 6 else 2,
              frameon=False, fontsize=8)
    return _save(fig, png_path)


def plot_confusion_map(confusion_path: str | os.PathLike, png_path: str | os.PathLike, metrics: dict | None = None,
                       title: str = "Landslide map check", max_pixels: int = 1200) -> Path:
    """PNG quick-look of a confusion map (TP green, FP red, FN blue, TN grey) with a legend and the scores.

    The raster is read decimated (at most `max_pixels` on its long side), so any size is cheap to show.
    """
    classes = [(k, CONFUSION_COLOURS[k], CONFUSION_NAMES[k]) for k in (TP, FP, FN, TN)]
    full_title = title + ("\n" + format_metrics(metrics).split("  (")[0] if metrics else "")
    return plot_code_map(confusion_path, png_path, classes, full_title, _CONFUSION_PRIORITY, max_pixels)


def plot_comparison_map(map_path, png_path, names: tuple[str, str] = ("A", "B"),
                        title: str = "Comparison of two landslide maps", max_pixels: int = 1200) -> Path:
    """PNG quick-look of a comparison map (codes of `compare_predictions`) with a legend naming A and B."""
    classes = [(m.value, m.color, m.label.format(a=names[0], b=names[1])) for m in COMPARISON_CLASSES]
    return plot_code_map(map_path, png_path, classes, title, _COMPARISON_PRIORITY, max_pixels)


def plot_performance_diagram(points: Sequence[tuple[str, dict]], png_path: str | os.PathLike,
                             title: str = "Performance diagram") -> Path:
    """Roebber's performance diagram: success ratio (precision) vs probability of detection (recall).

    Background: critical success index (CSI = IoU) contours, dashed lines of equal frequency bias. Best is top
    right. `points` are (name, metrics with 'precision' and 'recall'); any number (one model, two, an ensemble's
    members); points whose scores are undefined are listed in the legend as n/a.
    """
    plt = _pyplot()
    sr, pod = np.meshgrid(np.linspace(0.001, 1, 300), np.linspace(0.001, 1, 300))
    csi = 1.0 / (1.0 / sr + 1.0 / pod - 1.0)
    fig, ax = plt.subplots(figsize=(6.5, 6), dpi=120)
    filled = ax.contourf(sr, pod, csi, levels=np.linspace(0, 1, 11), cmap="Greys", alpha=0.35)
    lines = ax.contour(sr, pod, csi, levels=np.linspace(0.1, 0.9, 9), colors="#777777", linewidths=0.6)
    ax.clabel(lines, fmt="%.1f", fontsize=7)
    fig.colorbar(filled, ax=ax, fraction=0.046, pad=0.04).set_label("Critical success index (IoU)")
    x = np.linspace(0.001, 1, 100)
    for bias in (0.25, 0.5, 0.8, 1.0, 1.25, 2.0, 4.0):
        ax.plot(x, bias * x, ls="--", lw=0.7, color="#555555")
        lx, ly = (1.0, bias) if bias <= 1 else (1.0 / bias, 1.0)
        ax.annotate(f"{bias:g}", (lx, ly), xytext=(2, 2), textcoords="offset points", fontsize=7, color="#555555")
    many = len(points) > 20
    markers = "osD^vP*Xh<>p"
    best = None
    for i, (label, m) in enumerate(points):
        p, r = m.get("precision"), m.get("recall")
        if p is None or r is None:
            ax.plot([], [], ls="none", marker="x", color="#999999", label=f"{label} (n/a)")
            continue
        f1 = m.get("f1")
        if many:
            ax.plot(p, r, "o", ms=4, color="#1f77b4", alpha=0.7)
        else:
            ax.plot(p, r, ls="none", marker=markers[i % len(markers)], ms=9, mec="black",
                    label=f"{label}" + (f"  F1 {f1:.2f}" if f1 is not None else ""))
        if f1 is not None and (best is None or f1 > best[0]):
            best = (f1, label, p, r)
    if many and best is not None:
        ax.annotate(f"best: {best[1]} (F1 {best[0]:.2f})", (best[2], best[3]), xytext=(-80, -20),
                    textcoords="offset points", fontsize=8, arrowprops={"arrowstyle": "->"})
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("Success ratio (precision = 1 − false alarm ratio)")
    ax.set_ylabel("Probability of detection (recall)")
    ax.set_title(title + "\n(dashed: frequency bias)", fontsize=10)
    if not many or any(m.get("precision") is None for _, m in points):
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, frameon=False, fontsize=8)
    return _save(fig, png_path)


def plot_threshold_sweep(rows: Sequence[dict], png_path: str | os.PathLike, used: float | None = None,
                         title: str = "Scores by threshold") -> Path:
    """Precision, recall, F1 and MCC against the probability threshold, with the best-F1 threshold marked."""
    plt = _pyplot()
    t = [r["threshold"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for key, colour in (("precision", "#d7191c"), ("recall", "#2c7bb6"), ("f1", "#1a9641"), ("mcc", "#7b3294")):
        ax.plot(t, [np.nan if r[key] is None else r[key] for r in rows], color=colour, label=key.upper()
                if key in ("f1", "mcc") else key.capitalize())
    best = _best_rows(list(rows))["best_f1"]
    if best is not None:
        ax.axvline(best["threshold"], color="#1a9641", ls="--", lw=1)
        ax.annotate(f"best F1 {best['f1']:.3f} at {best['threshold']:.2f}", (best["threshold"], 0.02),
                    xytext=(4, 0), textcoords="offset points", fontsize=8, color="#1a9641")
    if used is not None:
        ax.axvline(used, color="#555555", ls=":", lw=1, label=f"threshold used ({used:.2f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(min(0.0, np.nanmin([np.nan if r["mcc"] is None else r["mcc"] for r in rows] + [0.0])), 1.0)
    ax.set_xlabel("Probability threshold (landslide where p ≥ threshold)")
    ax.set_ylabel("Score")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return _save(fig, png_path)


# ---------------------------------------------------------------------------------------------- reports
SWEEP_COLUMNS = ("threshold", "precision", "recall", "f1", "mcc", "iou", "bias", "tp", "fp", "fn", "tn")


def write_sweep_csv(rows: Sequence[dict], path: str | os.PathLike) -> Path:
    with atomic_output(path) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(SWEEP_COLUMNS)
            for r in rows:
                writer.writerow([_csv_value(r[c]) for c in SWEEP_COLUMNS])
    return Path(path)


def _csv_value(v):
    if v is None:
        return ""
    return f"{v:.6g}" if isinstance(v, float) else v


def _sibling(report: Path, suffix: str) -> Path:
    return report.with_name(report.stem + suffix)


def _fmt(v, digits: int = 3) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return html.escape(str(v))


def _table(header: Sequence[str], rows: Sequence[Sequence], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><tr>{head}</tr>{body}</table>'


_CSS = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;"
        "text-align:right}th{background:#f0f0f0}td:first-child{text-align:left}img{max-width:100%;"
        "border:1px solid #ddd;margin:0.5em 0}.note{color:#666;font-size:90%}.sw{display:inline-block;width:1em;"
        "height:1em;vertical-align:middle;margin-right:4px;border:1px solid #999}")


def _html_page(title: str, parts: Sequence[str]) -> str:
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>{''.join(parts)}</body></html>")


def _metric_rows(metrics_list: Sequence[dict]) -> list[list[str]]:
    return [[f"{key.upper() if key in ('f1', 'mcc', 'iou') else key.capitalize()}"
             f'<br><span class="note">{html.escape(help_)}</span>', *[_fmt(m[key]) for m in metrics_list]]
            for key, help_ in METRIC_HELP.items()]


def _write_text(path: Path, text: str) -> Path:
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def _inputs_html(info: dict) -> str:
    rows = [[html.escape(k.replace("_", " ")), html.escape(str(v))] for k, v in info.items()
            if v is not None and not isinstance(v, (list, dict))]
    return "<h2>Inputs</h2>" + _table(["Input", "Value"], rows)


def _json_safe(obj):
    """JSON without NaN/Infinity (not valid JSON): undefined values become null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def write_evaluation_report(out_report, info: dict, ev: Evaluation) -> tuple[Path, dict]:
    """JSON report plus an HTML page, PNG plots and the sweep CSV next to it (named after the JSON file)."""
    report = Path(out_report)
    files: dict[str, Path] = {}
    name = info.get("name") or "prediction"
    if ev.confusion_path is not None:
        files["confusion_png"] = plot_confusion_map(ev.confusion_path, _sibling(report, "_confusion.png"),
                                                    ev.metrics, title=f"{name}: landslide map check")
    files["performance_diagram"] = plot_performance_diagram([(name, ev.metrics)],
                                                            _sibling(report, "_performance.png"))
    if ev.sweep:
        files["sweep_csv"] = write_sweep_csv(ev.sweep, _sibling(report, "_sweep.csv"))
        files["sweep_plot"] = plot_threshold_sweep(ev.sweep, _sibling(report, "_sweep.png"), info.get("threshold"),
                                                   title=f"{name}: scores by threshold")
    files["html"] = _sibling(report, ".html")
    _write_text(files["html"], _evaluation_html(info, ev, files))
    body = {**info, "metrics": ev.metrics, "objects": ev.objects, "boundary": ev.boundary,
            "threshold_sweep": ({**ev.best, "rows": len(ev.sweep)} if ev.sweep else None),
            "files": {k: p.name for k, p in files.items()}}
    _write_text(report, json.dumps(_json_safe(body), indent=2, ensure_ascii=False))
    return report, files


def _evaluation_html(info: dict, ev: Evaluation, files: dict) -> str:
    m = ev.metrics
    parts = [_inputs_html(info), "<h2>Pixel scores</h2>", _table(["Score", "Value"], _metric_rows([m])),
             "<h3>Confusion matrix (pixels)</h3>",
             _table(["", "Truth: landslide", "Truth: no landslide"],
                    [["Mapped as landslide", f"TP {_fmt(m['tp'])}", f"FP {_fmt(m['fp'])}"],
                     ["Not mapped", f"FN {_fmt(m['fn'])}", f"TN {_fmt(m['tn'])}"]])]
    if "confusion_png" in files:
        parts.append(f'<img src="{html.escape(files["confusion_png"].name)}" alt="confusion map">')
    if ev.objects:
        o = ev.objects
        rule = ("at least one of its pixels" if o["rule"]["min_overlap"] == 0
                else f"at least {o['rule']['min_overlap']:.0%} of its pixels")
        parts += [f"<h2>Landslides as objects</h2><p>A landslide (connected truth pixels, {o['rule']['connectivity']}"
                  f"-connected) counts as detected when the map covers {rule}; a mapped object is false when it "
                  f"does not reach real landslides by the same rule.</p>",
                  _table(["", "Value"], [["Landslides", _fmt(o["landslides"])], ["Detected", _fmt(o["detected"])],
                                         ["Missed", _fmt(o["missed"])], ["Mapped objects", _fmt(o["mapped_objects"])],
                                         ["False objects", _fmt(o["false_objects"])],
                                         ["Object recall", _fmt(o["object_recall"])],
                                         ["Object precision", _fmt(o["object_precision"])],
                                         ["Object F1", _fmt(o["object_f1"])]]),
                  _table(["Size class", "Landslides", "Detected", "Missed", "Recall", "Mapped objects",
                          "False objects"],
                         [[html.escape(c["size_class"]), _fmt(c["landslides"]), _fmt(c["detected"]),
                           _fmt(c["missed"]), _fmt(c["recall"]), _fmt(c["mapped_objects"]), _fmt(c["false_objects"])]
                          for c in o["size_classes"]])]
    if ev.boundary:
        b = ev.boundary
        parts += [f"<h2>Boundaries (within {b['tolerance_px']} px)</h2>",
                  _table(["", "Value"], [["Boundary precision", _fmt(b["boundary_precision"])],
                                         ["Boundary recall", _fmt(b["boundary_recall"])],
                                         ["Boundary F1", _fmt(b["boundary_f1"])]])]
    parts.append('<h2>Performance diagram</h2><p class="note">Top right is best; dashed lines are frequency bias, '
                 "grey contours the critical success index.</p>"
                 f'<img src="{html.escape(files["performance_diagram"].name)}" alt="performance diagram">')
    if ev.sweep:
        rows = [[f"best {key[5:].upper()}", _fmt(r["threshold"], 2), _fmt(r["precision"]), _fmt(r["recall"]),
                 _fmt(r["f1"]), _fmt(r["mcc"])] for key, r in ev.best.items() if r is not None]
        parts += ["<h2>Threshold sweep</h2>",
                  _table(["", "Threshold", "Precision", "Recall", "F1", "MCC"], rows),
                  f'<p><a href="{html.escape(files["sweep_csv"].name)}">All thresholds (CSV)</a></p>',
                  f'<img src="{html.escape(files["sweep_plot"].name)}" alt="scores by threshold">']
    return _html_page(f"Landslide map check: {info.get('name')}", parts)


def write_comparison_report(out_report, info: dict, result: Comparison) -> tuple[Path, dict]:
    """JSON report plus an HTML page with both models' scores, the comparison quick-look and performance diagram."""
    report = Path(out_report)
    files: dict[str, Path] = {}
    if result.map_path is not None:
        files["comparison_png"] = plot_comparison_map(result.map_path, _sibling(report, "_comparison.png"),
                                                      result.names,
                                                      title=f"{result.names[0]} (A) vs {result.names[1]} (B)")
    files["performance_diagram"] = plot_performance_diagram(list(zip(result.names, result.metrics)),
                                                            _sibling(report, "_performance.png"))
    files["html"] = _sibling(report, ".html")
    colours = {m.label.format(a=result.names[0], b=result.names[1]): m.color for m in COMPARISON_CLASSES}
    parts = [_inputs_html(info),
             _table(["Map", "File", "Type", "Threshold"],
                    [[html.escape(p["name"]), html.escape(p["path"]), p["prediction_type"], _fmt(p["threshold"], 2)]
                     for p in info["predictions"]]),
             "<h2>Pixel scores on the pixels both maps cover</h2>",
             _table(["Score", *map(html.escape, result.names)], _metric_rows(result.metrics)),
             "<h2>Where the maps agree and differ (pixels)</h2>",
             _table(["Class", "Pixels"], [[f'<span class="sw" style="background:{colours[k]}"></span>'
                                           f"{html.escape(k)}", _fmt(v)] for k, v in result.counts.items()])]
    if "comparison_png" in files:
        parts.append(f'<img src="{html.escape(files["comparison_png"].name)}" alt="comparison map">')
    parts.append(f'<h2>Performance diagram</h2><img src="{html.escape(files["performance_diagram"].name)}" '
                 f'alt="performance diagram">')
    _write_text(files["html"], _html_page(f"Comparison: {result.names[0]} vs {result.names[1]}", parts))
    body = {**info, "metrics": dict(zip(result.names, result.metrics)), "pixels_by_class": result.counts,
            "files": {k: p.name for k, p in files.items()}}
    _write_text(report, json.dumps(_json_safe(body), indent=2, ensure_ascii=False))
    return report, files
