"""Learning curves beside the package: CSV and PNG."""
from __future__ import annotations

import csv
import os
from pathlib import Path



from ...common.outputs import atomic_output


def curves_paths(package_path: str | os.PathLike) -> tuple[Path, Path]:
    """The learning-curve files written beside a package (CSV, PNG)."""
    package_path = Path(package_path)
    return (package_path.with_name(package_path.stem + "_curves.csv"),
            package_path.with_name(package_path.stem + "_curves.png"))


def write_curves(package_path: Path, history: list[dict]) -> tuple[Path, Path]:
    """Learning curves beside the package: `<stem>_curves.csv` and a PNG of losses and validation F1."""
    csv_path, png_path = curves_paths(package_path)
    with atomic_output(csv_path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    _plot_curves(history, png_path, package_path.stem)
    return csv_path, png_path


def _plot_curves(history: list[dict], png_path: Path, title: str) -> None:
    # Figure + Agg canvas directly: no pyplot, so the host application's matplotlib backend is left alone.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    epochs = [r["epoch"] for r in history]
    fig = Figure(figsize=(8, 3.2), dpi=110)
    FigureCanvasAgg(fig)
    ax_loss, ax_f1 = fig.subplots(1, 2)
    ax_loss.plot(epochs, [r["train_loss"] for r in history], "o-", label="training")
    ax_loss.plot(epochs, [r["val_loss"] for r in history], "o-", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="Loss")
    ax_loss.legend(frameon=False)
    ax_f1.plot(epochs, [r["val_f1"] for r in history], "o-", color="#1a9641", label="best threshold")
    ax_f1.plot(epochs, [r["val_f1_at_0.5"] for r in history], "--", color="#999999", label="threshold 0.5")
    best = max(history, key=lambda r: r["val_f1"])
    ax_f1.axvline(best["epoch"], color="#d7191c", lw=0.8)
    ax_f1.set(xlabel="epoch", ylabel="F1", title=f"Validation F1 (best {best['val_f1']:.3f}, epoch {best['epoch']})",
              ylim=(0, 1))
    ax_f1.legend(frameon=False, loc="lower right")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_output(png_path) as tmp:
        fig.savefig(tmp, format="png")
