"""Validation: scores of a network (or an ensemble) on the pooled validation pixels, the best threshold, and
macro F1 for class maps."""
from __future__ import annotations


import numpy as np
import torch


from ...models.devices import autocast
from ..metrics import Confusion, best_threshold, scores
from .data import HIST_BINS


def _confusion_at(pos_hist, neg_hist, k: int) -> Confusion:
    return Confusion(tp=int(pos_hist[k:].sum()), fp=int(neg_hist[k:].sum()),
                     fn=int(pos_hist[:k].sum()), tn=int(neg_hist[:k].sum()))


@torch.inference_mode()
def validate_probabilities(probability, x, y, v, device, batch_size: int, loss_fn=None) -> dict:
    """Validation scores of `probability(xb) → (probabilities, logits or None)`: loss, F1 at 0.5, and the
    F1-maximising threshold (from probability histograms, so memory does not grow) with its metrics."""
    pos_hist = np.zeros(HIST_BINS, dtype=np.int64)
    neg_hist = np.zeros(HIST_BINS, dtype=np.int64)
    losses, weights = [], []
    for s in range(0, x.shape[0], batch_size):
        xb, yb, vb = (t[s:s + batch_size].to(device) for t in (x, y, v))
        prob, logits = probability(xb)
        if loss_fn is not None and logits is not None:
            losses.append(float(loss_fn(logits, yb, vb)))
            weights.append(float(vb.sum()))
        bins = torch.clamp((prob * HIST_BINS).long(), 0, HIST_BINS - 1)
        keep = vb > 0
        pos_hist += torch.bincount(bins[keep & (yb > 0.5)], minlength=HIST_BINS).cpu().numpy()
        neg_hist += torch.bincount(bins[keep & (yb <= 0.5)], minlength=HIST_BINS).cpu().numpy()
    threshold, f1_best = best_threshold(pos_hist, neg_hist)
    at = _confusion_at(pos_hist, neg_hist, int(round(threshold * HIST_BINS)))
    at_half = _confusion_at(pos_hist, neg_hist, HIST_BINS // 2)
    loss = float(np.average(losses, weights=np.maximum(weights, 1e-9))) if losses else float("nan")
    return {"loss": loss, "f1_at_0.5": scores(at_half)["f1"] or 0.0, "threshold": threshold,
            "f1": f1_best, "metrics": scores(at)}


def validate(model, x, y, v, loss_fn, device, batch_size: int) -> dict:
    """Validation loss, F1 at 0.5, and the F1-maximising threshold with its metrics, for one network."""
    model.eval()

    def probability(xb):
        with autocast(device):
            logits = model(xb)
        logits = logits.float()
        return torch.sigmoid(logits), logits

    return validate_probabilities(probability, x, y, v, device, batch_size, loss_fn)


@torch.inference_mode()
def validate_classes(probability, x, y, v, device, batch_size: int, n_classes: int, loss_fn=None,
                     classes=None) -> dict:
    """Multi-class validation of `probability(xb) → (class probabilities (N,K,H,W), logits or None)`: loss,
    confusion matrix and per-class scores; "f1" is the macro F1 (the epoch is chosen by it), threshold unused."""
    from ..metrics.classes import ClassConfusion, class_infos, class_scores

    confusion = ClassConfusion(range(n_classes))
    losses, weights = [], []
    for s in range(0, x.shape[0], batch_size):
        xb, yb, vb = (t[s:s + batch_size].to(device) for t in (x, y, v))
        prob, logits = probability(xb)
        if loss_fn is not None and logits is not None:
            losses.append(float(loss_fn(logits, yb, vb)))
            weights.append(float(vb.sum()))
        keep = (vb[:, 0] > 0).cpu().numpy()
        confusion.add(yb[:, 0].round().to(torch.uint8).cpu().numpy(),
                      prob.argmax(dim=1).to(torch.uint8).cpu().numpy(), keep)
    table = class_infos([dict(c, value=k) for k, c in enumerate(classes)]) if classes else None
    s = class_scores(confusion, table)
    if classes:
        for row, c in zip(s["classes"], classes):
            row["value"] = int(c["value"])
    loss = float(np.average(losses, weights=np.maximum(weights, 1e-9))) if losses else float("nan")
    f1 = s["macro_f1"] or 0.0
    metrics = {"precision": s["macro_precision"], "recall": s["macro_recall"], "f1": s["macro_f1"],
               "iou": s["macro_iou"], "macro_f1": s["macro_f1"], "weighted_f1": s["weighted_f1"],
               "balanced_accuracy": s["balanced_accuracy"], "accuracy": s["accuracy"], "kappa": s["kappa"]}
    return {"loss": loss, "f1_at_0.5": f1, "threshold": 0.5, "f1": f1, "metrics": metrics,
            "classes": [{k: r[k] for k in ("value", "name", "precision", "recall", "f1", "iou", "support")}
                        for r in s["classes"]]}


def validate_model_classes(model, x, y, v, loss_fn, device, batch_size: int, n_classes: int, classes=None) -> dict:
    """Multi-class validation of one network (softmax)."""
    model.eval()

    def probability(xb):
        with autocast(device):
            logits = model(xb)
        logits = logits.float()
        return torch.softmax(logits, dim=1), logits

    return validate_classes(probability, x, y, v, device, batch_size, n_classes, loss_fn, classes)


def validate_members(members, x, y, v, device, batch_size: int) -> dict:
    """Validation scores of the weighted mean probability of several networks (an ensemble)."""
    members = [(net.to(device).eval(), float(w)) for net, w in members]
    total = sum(w for _, w in members)

    def probability(xb):
        prob = 0.0
        for net, w in members:
            with autocast(device):
                logits = net(xb)
            prob = prob + torch.sigmoid(logits.float()) * (w / total)
        return prob, None

    return validate_probabilities(probability, x, y, v, device, batch_size)


def format_score(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def float_metrics(val: dict) -> dict:
    """Validation metrics for the manifest: the scores at the chosen threshold plus F1 at 0.5."""
    out = {k: v for k, v in val["metrics"].items() if isinstance(v, float)}
    out["f1_at_0.5"] = float(val["f1_at_0.5"])
    out["threshold"] = float(val["threshold"])
    return out
