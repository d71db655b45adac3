"""Multi-class scores: a confusion matrix summed over windows, per-class precision/recall/F1/IoU, macro and weighted
averages, balanced accuracy and Cohen's kappa (the geological-mapping thesis's scores)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .scores import ratio

IGNORE = 255  # label value of unknown / unlabelled pixels (as the chips)


@dataclass
class ClassInfo:
    """One class of a class map: the value in the raster, its name and colour (#rrggbb)."""

    value: int
    name: str
    color: str = "#808080"


def class_infos(entries: Sequence) -> list[ClassInfo]:
    """ClassInfo from dicts ({value, name, color}) or objects with those attributes, sorted by value."""
    out = []
    for e in entries:
        get = e.get if isinstance(e, dict) else (lambda k, d=None, e=e: getattr(e, k, d))
        out.append(ClassInfo(int(get("value")), str(get("name", get("value"))), str(get("color", "#808080"))[:7]))
    out.sort(key=lambda c: c.value)
    return out


@dataclass
class ClassConfusion:
    """Confusion matrix: rows are truth classes, columns predicted classes, in the order of `values`."""

    values: tuple[int, ...]
    matrix: np.ndarray = field(default=None)

    def __post_init__(self):
        self.values = tuple(int(v) for v in self.values)
        if len(set(self.values)) != len(self.values) or any(not 0 <= v < IGNORE for v in self.values):
            raise ValueError(f"class values must be distinct whole numbers 0…254, not {self.values}")
        n = len(self.values)
        if self.matrix is None:
            self.matrix = np.zeros((n, n), dtype=np.int64)
        self._index = np.full(256, n, dtype=np.int64)  # value → row/column; n = not a class
        self._index[list(self.values)] = np.arange(n)

    def add(self, truth: np.ndarray, predicted: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Count pixels of one window (uint8 class values); truth 255 and invalid pixels are left out.

        Raises ValueError naming the first value that is not in the class table (truth or prediction)."""
        n = len(self.values)
        t = self._index[truth]
        p = self._index[predicted]
        keep = truth != IGNORE
        if valid is not None:
            keep &= valid
        for name, idx, raw in (("truth", t, truth), ("prediction", p, predicted)):
            bad = keep & (idx == n)
            if bad.any():
                raise ValueError(f"the {name} holds class value {int(raw[bad].flat[0])}, which is not in the class "
                                 f"table ({', '.join(str(v) for v in self.values)})")
        self.matrix += np.bincount((t[keep] * n + p[keep]).ravel(), minlength=n * n).reshape(n, n)

    def __iadd__(self, other: "ClassConfusion") -> "ClassConfusion":
        if other.values != self.values:
            raise ValueError("confusion matrices of different class tables cannot be added")
        self.matrix += other.matrix
        return self


def class_scores(confusion: ClassConfusion, classes: Sequence[ClassInfo] | None = None) -> dict:
    """Per-class precision, recall, F1 and IoU (one class against all others), their macro and support-weighted
    averages, overall accuracy, balanced accuracy and Cohen's kappa.

    Averages run over the classes present in the truth (support > 0); such a class that was never predicted has
    precision 0 in the averages (its own row says None). A score with a zero denominator is None, never a made-up 0.
    """
    m = confusion.matrix.astype(np.float64)
    names = {c.value: c for c in (classes or [])}
    total = float(m.sum())
    truth_sums, pred_sums = m.sum(axis=1), m.sum(axis=0)
    rows = []
    for i, v in enumerate(confusion.values):
        tp = m[i, i]
        fp, fn = pred_sums[i] - tp, truth_sums[i] - tp
        info = names.get(v, ClassInfo(v, str(v)))
        rows.append({"value": v, "name": info.name, "color": info.color,
                     "precision": ratio(tp, tp + fp), "recall": ratio(tp, tp + fn),
                     "f1": ratio(2 * tp, 2 * tp + fp + fn), "iou": ratio(tp, tp + fp + fn),
                     "support": int(truth_sums[i]), "predicted": int(pred_sums[i])})
    present = [r for r in rows if r["support"] > 0]
    weights = np.array([r["support"] for r in present], dtype=np.float64)
    out = {"classes": rows, "pixels": int(total)}
    for key in ("precision", "recall", "f1", "iou"):
        values = np.array([r[key] or 0.0 for r in present])
        out[f"macro_{key}"] = float(values.mean()) if len(present) else None
        out[f"weighted_{key}"] = float((values * weights).sum() / weights.sum()) if len(present) else None
    out["accuracy"] = ratio(float(np.trace(m)), total)
    out["balanced_accuracy"] = out["macro_recall"]
    chance = float((truth_sums * pred_sums).sum()) / (total * total) if total > 0 else 1.0
    out["kappa"] = (out["accuracy"] - chance) / (1.0 - chance) if total > 0 and chance < 1.0 else None
    out["confusion_matrix"] = confusion.matrix.tolist()
    out["values"] = list(confusion.values)
    return out


CLASS_COLUMNS = ("precision", "recall", "f1", "iou")


def format_class_table(s: dict) -> str:
    """The per-class table as fixed-width text (class, P, R, F1, IoU, support) with the macro and weighted rows."""
    def f(v):
        return "  n/a" if v is None else f"{v:.3f}"

    width = max([len(r["name"]) for r in s["classes"]] + [len("weighted")])
    lines = [f"{'class':<{width}}  {'prec':>5}  {'rec':>5}  {'F1':>5}  {'IoU':>5}  {'pixels':>9}"]
    for r in s["classes"]:
        lines.append(f"{r['name']:<{width}}  " + "  ".join(f(r[k]) for k in CLASS_COLUMNS) + f"  {r['support']:>9}")
    for kind in ("macro", "weighted"):
        lines.append(f"{kind:<{width}}  " + "  ".join(f(s[f'{kind}_{k}']) for k in CLASS_COLUMNS)
                     + f"  {s['pixels']:>9}")
    lines.append(f"accuracy {f(s['accuracy'])}  balanced accuracy {f(s['balanced_accuracy'])}  "
                 f"kappa {f(s['kappa'])}")
    return "\n".join(lines)


def format_class_metrics(s: dict) -> str:
    """One line: macro F1 and IoU, balanced accuracy, accuracy."""
    def f(v):
        return "n/a" if v is None else f"{v:.3f}"

    return (f"Macro F1 {f(s['macro_f1'])}  macro IoU {f(s['macro_iou'])}  balanced accuracy "
            f"{f(s['balanced_accuracy'])}  accuracy {f(s['accuracy'])}  ({len(s['classes'])} classes, "
            f"{s['pixels']} pixels)")
