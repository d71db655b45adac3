"""Pixel scores from a confusion matrix, and the threshold sweep over probability histograms."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


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


def ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def scores(c: Confusion) -> dict:
    """Precision, recall, F1, MCC (with the square root), IoU, frequency bias, accuracy, Cohen's kappa, balanced
    accuracy.

    A score whose denominator is zero (e.g. no landslide in truth nor prediction) is None, never a made-up 0.
    """
    tp, fp, fn, tn = float(c.tp), float(c.fp), float(c.fn), float(c.tn)
    n = tp + fp + fn + tn
    den = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
    chance = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / (n * n) if n > 0 else 1.0  # agreement by chance
    return {
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "mcc": (tp * tn - fp * fn) / math.sqrt(den) if den > 0 else None,
        "iou": ratio(tp, tp + fp + fn),
        "bias": ratio(tp + fp, tp + fn),
        "accuracy": ratio(tp + tn, n),
        "kappa": ((tp + tn) / n - chance) / (1.0 - chance) if n > 0 and chance < 1.0 else None,
        "balanced_accuracy": _balanced(ratio(tp, tp + fn), ratio(tn, tn + fp)),
        **asdict(c),
    }


def _balanced(recall: float | None, specificity: float | None) -> float | None:
    """Mean of the recalls of the classes present in truth (landslide and not landslide)."""
    present = [v for v in (recall, specificity) if v is not None]
    return sum(present) / len(present) if present else None


METRIC_HELP = {
    "precision": "share of mapped landslide pixels that are real landslides",
    "recall": "share of real landslide pixels that were mapped (probability of detection)",
    "f1": "balance of precision and recall (2·TP / (2·TP + FP + FN))",
    "mcc": "Matthews correlation: −1 … 1, also rewards correct empty ground",
    "iou": "intersection over union (critical success index)",
    "bias": "mapped / real landslide area: > 1 over-maps, < 1 under-maps",
    "accuracy": "share of all pixels classified correctly (dominated by empty ground)",
    "kappa": "Cohen's kappa: agreement beyond chance",
    "balanced_accuracy": "mean recall of landslide and not landslide: not dominated by empty ground",
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


def best_rows(rows: list[dict]) -> dict:
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
