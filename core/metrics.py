"""Pixel metrics people trust (precision, recall, F1, MCC, IoU) and the TP/FP/FN/TN confusion map."""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from . import raster
from .chips import open_labels, rasterize_labels
from .errors import InputError
from .progress import Progress, check_canceled, or_null

# Confusion map codes (paletted style ui/styles/confusion.qml).
NODATA, TP, FP, FN, TN = 0, 1, 2, 3, 4
CONFUSION_NAMES = {TP: "true positive", FP: "false positive", FN: "false negative", TN: "true negative"}


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
        p = predicted.astype(bool)
        t = truth.astype(bool)
        v = np.ones_like(p) if valid is None else valid.astype(bool)
        return cls(tp=int((p & t & v).sum()), fp=int((p & ~t & v).sum()),
                   fn=int((~p & t & v).sum()), tn=int((~p & ~t & v).sum()))


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def scores(c: Confusion) -> dict:
    """Precision, recall, F1, MCC (with the square root), IoU, bias, accuracy; None where undefined."""
    tp, fp, fn, tn = float(c.tp), float(c.fp), float(c.fn), float(c.tn)
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    den = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
    mcc = (tp * tn - fp * fn) / math.sqrt(den) if den > 0 else None
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "mcc": mcc,
        "iou": _ratio(tp, tp + fp + fn),
        "bias": _ratio(tp + fp, tp + fn),
        "accuracy": _ratio(tp + tn, tp + fp + fn + tn),
        **asdict(c),
    }


def best_threshold(pos_hist: np.ndarray, neg_hist: np.ndarray) -> tuple[float, float]:
    """Threshold (bin lower edge) maximising F1, from histograms of probabilities of true positives/negatives.

    Histograms have n bins over [0, 1]; predicting positive for bins ≥ k gives TP/FP as suffix sums.
    """
    n = len(pos_hist)
    tp = np.cumsum(pos_hist[::-1])[::-1].astype(float)
    fp = np.cumsum(neg_hist[::-1])[::-1].astype(float)
    fn = pos_hist.sum() - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    k = int(np.argmax(f1))
    return k / n, float(f1[k])


@dataclass
class Evaluation:
    metrics: dict
    confusion_path: Path | None
    report_path: Path | None


def evaluate_prediction(
    prediction_path: str | os.PathLike,
    truth_path: str | os.PathLike,
    out_confusion: str | os.PathLike | None = None,
    out_report: str | os.PathLike | None = None,
    *,
    threshold: float = 0.5,
    truth_field: str = "class",
    truth_layer: str | None = None,
    extent: Sequence[float] | None = None,
    block: int = raster.DEFAULT_BLOCK,
    progress: Progress | None = None,
) -> Evaluation:
    """Compare a prediction (mask or probability) with truth (raster or polygons) on the prediction's grid.

    A probability raster (float) is cut at `threshold`; nodata in either input is excluded (confusion code 0).
    """
    progress = or_null(progress)
    with raster.open_raster(prediction_path) as pred:
        truth = open_labels(str(truth_path), pred, truth_field, truth_layer)
        win = raster.window_from_extent(pred, extent)
        is_prob = np.dtype(pred.dtypes[0]).kind == "f"
        width, height = int(win.width), int(win.height)
        total = Confusion()
        n_windows = raster.count_windows(width, height, block)
        ctx = (raster.create_raster(out_confusion, width=width, height=height, crs=pred.crs,
                                    transform=pred.window_transform(win), dtype="uint8", descriptions=["confusion"],
                                    nodata=NODATA, tags={"LANDSLIDE_MAPPER": "confusion",
                                                         "CODES": "1=TP,2=FP,3=FN,4=TN,0=nodata"})
               if out_confusion else _NoOutput())
        with ctx as dst:
            for k, w in enumerate(raster.block_windows(width, height, block)):
                check_canceled(progress)
                src_w = w.__class__(w.col_off + win.col_off, w.row_off + win.row_off, w.width, w.height)
                p = raster.read_float(pred, 1, src_w)
                t = rasterize_labels(truth, pred, src_w)
                valid = np.isfinite(p) & (t != 255)
                predicted = (p >= threshold) if is_prob else (p > 0)
                positive = t == 1
                total += Confusion.from_arrays(predicted, positive, valid)
                if dst is not None:
                    code = np.select([predicted & positive, predicted & ~positive, ~predicted & positive],
                                     [TP, FP, FN], TN).astype(np.uint8)
                    dst.write(np.where(valid, code, NODATA)[None], window=w)
                progress.set_progress(100.0 * (k + 1) / n_windows)
    metrics = scores(total)
    if total.tp + total.fp + total.fn + total.tn == 0:
        raise InputError(f"Prediction '{prediction_path}' and truth '{truth_path}' share no valid pixel.")
    report = None
    if out_report:
        with raster.atomic_output(out_report) as tmp:
            tmp.write_text(json.dumps({"prediction": str(prediction_path), "truth": str(truth_path),
                                       "threshold": threshold if is_prob else None, "metrics": metrics}, indent=2))
        report = Path(out_report)
    progress.log(format_metrics(metrics))
    return Evaluation(metrics, Path(out_confusion) if out_confusion else None, report)


class _NoOutput:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def format_metrics(m: dict) -> str:
    def f(v):
        return "n/a" if v is None else f"{v:.3f}"

    return (f"Precision {f(m['precision'])}  Recall {f(m['recall'])}  F1 {f(m['f1'])}  MCC {f(m['mcc'])}  "
            f"IoU {f(m['iou'])}  (TP {m['tp']}, FP {m['fp']}, FN {m['fn']}, TN {m['tn']})")


# When several pixels fall into one screen cell, show the most telling: misses and false alarms over hits over TN.
_PRIORITY = np.array([0, 2, 3, 4, 1], dtype=np.uint8)  # indexed by code NODATA, TP, FP, FN, TN
_FROM_PRIORITY = np.array([NODATA, TN, TP, FP, FN], dtype=np.uint8)


def _decimate_codes(path, max_pixels: int) -> np.ndarray:
    """Confusion codes reduced by an integer factor, strip by strip, keeping small objects visible."""
    with raster.open_raster(path) as src:
        f = max(1, int(np.ceil(max(src.width, src.height) / max_pixels)))
        out_h, out_w = -(-src.height // f), -(-src.width // f)
        out = np.zeros((out_h, out_w), dtype=np.uint8)
        rows_per_strip = f * max(1, 1024 // f)
        for row in range(0, src.height, rows_per_strip):
            h = min(rows_per_strip, src.height - row)
            block = _PRIORITY[src.read(1, window=((row, row + h), (0, src.width)))]
            ph, pw = -(-h // f) * f, out_w * f
            padded = np.zeros((ph, pw), dtype=np.uint8)
            padded[:h, :src.width] = block
            reduced = padded.reshape(ph // f, f, out_w, f).max(axis=(1, 3))
            out[row // f: row // f + reduced.shape[0]] = reduced
    return _FROM_PRIORITY[out]


CONFUSION_COLOURS = {TP: "#1a9641", FP: "#d7191c", FN: "#2c7bb6", TN: "#e6e6e6", NODATA: "#ffffff"}


def plot_confusion_map(confusion_path: str | os.PathLike, png_path: str | os.PathLike, metrics: dict | None = None,
                       title: str = "Landslide map check", max_pixels: int = 1200) -> Path:
    """PNG quick-look of a confusion map (TP green, FP red, FN blue, TN grey) with a legend and the scores.

    The raster is read decimated (at most `max_pixels` on its long side), so any size is cheap to show.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    codes = _decimate_codes(confusion_path, max_pixels)
    shape = codes.shape
    cmap = ListedColormap([CONFUSION_COLOURS[k] for k in (NODATA, TP, FP, FN, TN)])
    aspect = shape[0] / shape[1]
    fig, ax = plt.subplots(figsize=(8, 8 * aspect) if aspect <= 1.5 else (12 / aspect + 0.5, 12), dpi=120)
    ax.imshow(codes, cmap=cmap, vmin=-0.5, vmax=4.5, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title + ("\n" + format_metrics(metrics).split("  (")[0] if metrics else ""), fontsize=10)
    handles = [Patch(color=CONFUSION_COLOURS[k], label=CONFUSION_NAMES[k]) for k in (TP, FP, FN, TN)]
    handles.append(Patch(facecolor="white", edgecolor="#999999", label="no data (e.g. cloud)"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.01), ncol=3, frameon=False)
    with raster.atomic_output(png_path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    plt.close(fig)
    return Path(png_path)
