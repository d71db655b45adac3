"""Training data: chips normalised, nodata masked, crops biased to landslides, augmentations."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from ..labels import IGNORE

from ..chips import ChipSet, load_chips
from ...common.errors import InputError


HIST_BINS = 100


def prepare(images: np.ndarray, labels: np.ndarray, mean: np.ndarray, std: np.ndarray, multiclass: bool = False):
    """Normalise chips; nodata (NaN) → 0 and excluded from the loss via the valid mask. Targets are 0/1, or the
    class channel index (as float, so crops, rotations and flips treat it like the image) for multi-class."""
    valid = np.all(np.isfinite(images), axis=1) & (labels != IGNORE)
    x = (images - mean[None, :, None, None]) / std[None, :, None, None]
    x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
    y = np.where(valid, labels, 0).astype(np.float32) if multiclass else (labels == 1).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(y[:, None]), torch.from_numpy(valid[:, None].astype(np.float32))


@dataclass
class TrainingData:
    """Training and validation chips normalised by the training statistics, as tensors (N, C|1, T, T)."""

    chipset: ChipSet
    mean: np.ndarray
    std: np.ndarray
    train: tuple
    val: tuple
    validation_folder: str | None
    landslide_classes: object = None
    n_classes: int = 0  # multi-class: channels of the class table (chipset.manifest["classes"]); 0 = binary

    @property
    def bands(self) -> list[str]:
        return self.chipset.bands


def load_training_data(chips: str | os.PathLike | ChipSet, validation_chips: str | os.PathLike | None = None,
                       landslide_classes=None, task: str = "binary") -> TrainingData:
    """Chips (and validation chips) in memory, checked, normalised with the training-chip statistics.

    `landslide_classes` picks the label classes that are landslides (see chips.load_chips); `task` "multiclass"
    keeps every class of the chips' class table.
    """
    chipset = chips if isinstance(chips, ChipSet) else load_chips(chips, landslide_classes=landslide_classes,
                                                                  task=task)
    multiclass = chipset.manifest.get("task") == "multiclass"
    if validation_chips:
        val_set = load_chips(validation_chips, landslide_classes=landslide_classes, task=task)
        if multiclass and val_set.manifest["classes"] != chipset.manifest["classes"]:
            raise InputError(f"Validation chips '{validation_chips}' have another class table than the training "
                             f"chips '{chipset.folder}'; export both from labels with the same classes.")
        if val_set.bands != chipset.bands:
            raise InputError(f"Validation chips '{validation_chips}' have bands {', '.join(val_set.bands)}; the "
                             f"training chips have {', '.join(chipset.bands)}.")
        train_images, train_labels = chipset.images, chipset.labels
        val_images, val_labels = val_set.images, val_set.labels
    else:
        train_images, train_labels = chipset.subset("train")
        val_images, val_labels = chipset.subset("validation")
    if len(train_images) == 0:
        raise InputError(f"Chip folder '{chipset.folder}' has no training chips.")
    if len(val_images) == 0:
        raise InputError(f"Chip folder '{chipset.folder}' has no validation chips: export with a validation "
                         f"fraction above 0, or give a separate validation chip folder.")
    if multiclass:
        n_classes = len(chipset.manifest["classes"])
        present = np.unique(train_labels[train_labels != IGNORE])
        if len(present) < 2:
            raise InputError(f"The training chips of '{chipset.folder}' hold only one class: a multi-class model "
                             f"(TASK multiclass) needs at least two. Check the label layer and its class field.")
    elif not (train_labels == 1).any():
        raise InputError(f"The training chips of '{chipset.folder}' hold no landslide pixel: check the label "
                         f"layer and its class field.")
    stats = {s["name"]: s for s in chipset.stats}
    missing = [b for b in chipset.bands if b not in stats]
    if missing:
        raise InputError(f"Chip folder '{chipset.folder}' has no statistics for band(s) {', '.join(missing)}.")
    mean = np.array([stats[b]["mean"] for b in chipset.bands], dtype=np.float32)
    std = np.array([stats[b]["std"] or 1.0 for b in chipset.bands], dtype=np.float32)
    return TrainingData(chipset, mean, std, prepare(train_images, train_labels, mean, std, multiclass),
                        prepare(val_images, val_labels, mean, std, multiclass),
                        str(validation_chips) if validation_chips else None, landslide_classes,
                        n_classes if multiclass else 0)


class CropSampler:
    """Batches of (chip, crop row, crop column): a share of samples comes from chips with landslides, cropped
    around one of their landslide pixels (the study trains only on crops holding ≥ 1 landslide pixel); the others
    go through the chips in shuffled order. All randomness comes from `generator`, so a checkpoint resumes it.
    """

    def __init__(self, y: torch.Tensor, crop: int, batch: int, positive_fraction: float, generator: torch.Generator):
        n, _, tile, _ = y.shape
        self.n, self.tile, self.crop, self.batch = n, tile, crop, batch
        self.positive_fraction = float(positive_fraction)
        self.generator = generator
        flat = y[:, 0].reshape(n, -1) > 0.5
        counts = flat.sum(dim=1)
        self.positive_chips = torch.nonzero(counts > 0).flatten()
        self.counts = counts
        # Landslide pixel offsets of every chip, concatenated (only needed when cropping).
        self.starts = torch.cumsum(counts, 0) - counts
        self.pixels = torch.nonzero(flat)[:, 1].to(torch.int32) if crop < tile else None
        self.order = torch.empty(0, dtype=torch.long)
        self.positive_order = torch.empty(0, dtype=torch.long)

    def _take(self, queue: str, size: int, k: int) -> torch.Tensor:
        q = getattr(self, queue)
        while q.numel() < k:
            q = torch.cat([q, torch.randperm(size, generator=self.generator)])
        setattr(self, queue, q[k:])
        return q[:k]

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        g, b = self.generator, self.batch
        positive = torch.rand(b, generator=g) < self.positive_fraction
        if len(self.positive_chips) == 0:
            positive[:] = False
        idx = torch.empty(b, dtype=torch.long)
        n_pos = int(positive.sum())
        idx[positive] = self.positive_chips[self._take("positive_order", len(self.positive_chips), n_pos)]
        idx[~positive] = self._take("order", self.n, b - n_pos)
        span = self.tile - self.crop
        if span == 0:
            zero = torch.zeros(b, dtype=torch.long)
            return idx, zero, zero
        rows = torch.randint(0, span + 1, (b,), generator=g)
        cols = torch.randint(0, span + 1, (b,), generator=g)
        if n_pos:
            chips = idx[positive]
            pick = (torch.rand(n_pos, generator=g) * self.counts[chips]).long()
            flat = self.pixels[self.starts[chips] + pick].long()
            for coord, out in ((flat // self.tile, rows), (flat % self.tile, cols)):
                lo = (coord - self.crop + 1).clamp_min(0)
                hi = coord.clamp_max(span)
                out[positive] = lo + (torch.rand(n_pos, generator=g) * (hi - lo + 1)).long()
        return idx, rows, cols

    def state(self) -> dict:
        return {"order": self.order, "positive_order": self.positive_order}

    def load_state(self, tensors: dict) -> None:
        self.order, self.positive_order = tensors["order"], tensors["positive_order"]


def gather_batch(x, y, v, idx, rows, cols, crop: int):
    """The sampled chips, cropped to `crop` px at (rows, cols)."""
    if crop == x.shape[-1]:
        return x[idx], y[idx], v[idx]
    out = []
    for t in (x, y, v):
        out.append(torch.stack([t[i, :, r:r + crop, c:c + crop] for i, r, c in
                                zip(idx.tolist(), rows.tolist(), cols.tolist())]))
    return tuple(out)


def augment_batch(x, y, v, generator: torch.Generator, brightness: float = 0.0, noise: float = 0.0):
    """Random 90° rotations and flips per sample; optional brightness offsets and pixel noise on valid pixels."""
    xs, ys, vs = [], [], []
    ks = torch.randint(0, 4, (x.shape[0],), generator=generator)
    flips = torch.randint(0, 2, (x.shape[0],), generator=generator)
    for i in range(x.shape[0]):
        a, b, c = (torch.rot90(t[i], int(ks[i]), dims=(-2, -1)) for t in (x, y, v))
        if flips[i]:
            a, b, c = a.flip(-1), b.flip(-1), c.flip(-1)
        xs.append(a)
        ys.append(b)
        vs.append(c)
    x, y, v = torch.stack(xs), torch.stack(ys), torch.stack(vs)
    if brightness > 0 or noise > 0:
        shift = torch.randn(x.shape[0], x.shape[1], 1, 1, generator=generator) * brightness
        jitter = torch.randn(x.shape, generator=generator) * noise if noise > 0 else 0.0
        x = x + (shift + jitter) * v  # nodata pixels stay 0, as in prediction
    return x, y, v
