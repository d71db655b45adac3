"""Quick-look PNGs: confusion and comparison maps, the performance diagram and the threshold sweep."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import raster
from ...common.outputs import atomic_output
from .codes import (
    BOTH_FN,
    BOTH_FP,
    BOTH_TN,
    BOTH_TP,
    COMPARISON_CLASSES,
    CONFUSION_COLOURS,
    CONFUSION_NAMES,
    FN,
    FP,
    NODATA,
    ONLY_A_FP,
    ONLY_A_TP,
    ONLY_B_FP,
    ONLY_B_TP,
    TN,
    TP,
)
from .scores import best_rows, format_metrics


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
    best = best_rows(list(rows))["best_f1"]
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


def plot_class_confusion(matrix, names: Sequence[str], png_path, title: str = "Confusion matrix") -> Path:
    """Heat map of a multi-class confusion matrix (rows truth, columns predicted): colour = share of the truth row
    (recall per class on the diagonal), text = pixels and row share."""
    plt = _pyplot()
    m = np.asarray(matrix, dtype=np.float64)
    rows = m.sum(axis=1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    n = len(names)
    fig, ax = plt.subplots(figsize=(2.0 + 0.9 * n, 1.6 + 0.8 * n), dpi=110)
    ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{int(m[i, j])}\n{share[i, j]:.0%}", ha="center", va="center", fontsize=7,
                    color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks(range(n), labels=list(names), rotation=45, ha="right")
    ax.set_yticks(range(n), labels=list(names))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    return _save(fig, png_path)
