"""What an evaluation and a comparison return."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


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


@dataclass
class Comparison:
    names: tuple[str, str]
    metrics: tuple[dict, dict]  # pixel scores of A and B on the pixels both cover
    counts: dict  # comparison class label → pixels
    map_path: Path | None
    report_path: Path | None
    files: dict = field(default_factory=dict)
