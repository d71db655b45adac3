"""A loaded chip folder: images, labels, band statistics and splits in memory."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..labels import CLASSES, LabelClass


READ_BYTES = 16 << 20  # stack pixels held per read window in grid sampling


@dataclass
class ChipSet:
    """Chips of one folder held in memory: images (N, C, H, W) float32 with NaN, labels (N, H, W) uint8 0/1/255
    (multi-class: channel indexes of manifest["classes"], 255 = ignore)."""

    folder: Path
    manifest: dict
    stats: list[dict]
    images: np.ndarray
    labels: np.ndarray
    splits: np.ndarray

    @property
    def bands(self) -> list[str]:
        return list(self.manifest["bands"])

    def subset(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        keep = self.splits == split
        return self.images[keep], self.labels[keep]


TASKS = ("binary", "multiclass")


def check_task(task: str) -> str:
    if task not in TASKS:
        from ...common.errors import InputError

        raise InputError(f"The task (TASK) must be one of {', '.join(TASKS)}, not '{task}'.")
    return task


def multiclass_table(classes: Sequence[LabelClass], background: dict | None = None) -> tuple[list[dict], np.ndarray]:
    """Class table of a multi-class model (background value 0 first, then the label classes by value) and the
    look-up table label value → channel index (255 = ignore; values outside the table are ignored too)."""
    table = [dict(background or CLASSES[0])]
    table += [{"value": c.value, "name": c.name, "color": c.color} for c in sorted(classes, key=lambda c: c.value)
              if c.value != table[0]["value"]]
    lut = np.full(256, 255, dtype=np.uint8)
    for k, c in enumerate(table):
        lut[int(c["value"])] = k
    return table, lut


def multiclass_manifest(manifest: dict, table: Sequence[dict], classes: Sequence[LabelClass]) -> dict:
    """The manifest a multi-class ChipSet carries: labels are channel indexes of `table` (its `classes`)."""
    return {**manifest, "task": "multiclass", "classes": [dict(c) for c in table],
            "label_classes": [asdict(c) for c in classes]}


def binary_manifest(manifest: dict, classes: Sequence[LabelClass]) -> dict:
    """The manifest a ChipSet carries: the binary classes training predicts, the source class table beside."""
    chosen = [c.name for c in classes if c.landslide]
    landslide = dict(CLASSES[1], source_classes=chosen) if chosen else dict(CLASSES[1])
    return {**manifest, "classes": [CLASSES[0], landslide], "label_classes": [asdict(c) for c in classes]}
