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
    """Chips of one folder held in memory: images (N, C, H, W) float32 with NaN, labels (N, H, W) uint8 0/1/255."""

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


def binary_manifest(manifest: dict, classes: Sequence[LabelClass]) -> dict:
    """The manifest a ChipSet carries: the binary classes training predicts, the source class table beside."""
    chosen = [c.name for c in classes if c.landslide]
    landslide = dict(CLASSES[1], source_classes=chosen) if chosen else dict(CLASSES[1])
    return {**manifest, "classes": [CLASSES[0], landslide], "label_classes": [asdict(c) for c in classes]}
