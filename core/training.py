"""Local training: masked losses, positive-biased crops, augmentation, early stopping on validation F1, threshold
choice, and per-epoch checkpoints that a re-run with the same settings resumes from.

The result is a self-describing model package (models/package.py) holding everything prediction needs.
"""
from __future__ import annotations

import copy
import csv
import errno
import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .labels import IGNORE

from .chips import ChipSet, load_chips
from ..common.errors import Canceled, InputError
from ..models.devices import autocast, grad_scaler, pick_device
from .metrics import Confusion, best_threshold, scores
from ..common.outputs import atomic_output
from ..common.progress import Progress, check_canceled, or_null

HIST_BINS = 100
OPTIMIZERS = ["adam", "adamw"]
SCHEDULES = ["plateau", "cosine"]


@dataclass
class TrainConfig:
    architecture: str = "Unet"
    encoder: str = "resnet18"
    loss: str = "bce_dice"
    epochs: int = 30
    batch_size: int = 8
    learning_rate: float = 1e-3
    patience: int = 5  # epochs without a better validation F1 before stopping
    lr_patience: int | None = None  # epochs without gain before LR × 0.1 (None: patience // 2; study: 3)
    optimizer: str = "adam"  # adam | adamw
    schedule: str = "plateau"  # plateau: LR × 0.1 when validation F1 stalls; cosine: 1-epoch warm-up, cosine to 0
    ema: float = 0.0  # decay of an exponential moving average of the weights, validated and packaged (0 = off)
    weight_decay: float = 0.0
    iterations_per_epoch: int | None = None  # None: one pass over the training chips (study: 1000 of batch 4)
    crop_size: int | None = None  # train on random crops of this size (None: whole chips; study: 256)
    positive_fraction: float = 0.5  # share of samples drawn to hold ≥ 1 landslide pixel (study: 1.0)
    augment: bool = True  # random 90° rotations and flips
    brightness: float = 0.0  # std of a random per-sample, per-band offset on normalised inputs (0 = off)
    noise: float = 0.0  # std of Gaussian pixel noise on normalised inputs (0 = off)
    positive_weight: float | None = None  # landslide class weight in BCE terms (None: the loss's own default)
    seed: int = 0
    device: str = "auto"
    encoder_weights: str | None = None  # local file only
    model_kwargs: dict = field(default_factory=dict)
    checkpoints: bool = True  # save every epoch beside the package; a re-run with the same settings resumes
    task: str = "binary"  # binary: landslide or not (sigmoid); multiclass: every class of the chips (softmax)
    class_weights: list | None = None  # multiclass: one loss weight per class of the class table (None: equal)


@dataclass
class TrainResult:
    package: Path
    best_epoch: int
    threshold: float
    validation: dict
    history: list[dict]
    curves_csv: Path | None
    curves_png: Path | None = None
    seconds: float = 0.0


# ---------------------------------------------------------------------------------------------- data
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


# ---------------------------------------------------------------------------------------------- one step


def train_step(model, optimizer, loss_fn, xb, yb, vb, scaler=None) -> torch.Tensor:
    """One optimisation step (mixed precision on CUDA); returns the detached loss without a device sync."""
    with autocast(xb.device):
        output = model(xb)
    loss = loss_fn(output, yb, vb)
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None and scaler.is_enabled():
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return loss.detach()


# ---------------------------------------------------------------------------------------------- validation
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
    from .metrics.classes import ClassConfusion, class_infos, class_scores

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


# ---------------------------------------------------------------------------------------------- checkpoints
CHECKPOINT_FILE = "checkpoint.safetensors"


def checkpoint_folder(package_path: str | os.PathLike) -> Path:
    """Where a training run keeps its per-epoch checkpoint: beside the package, `<package>.checkpoint/`."""
    return Path(str(Path(package_path).resolve()) + ".checkpoint")


def config_hash(config: TrainConfig, data: TrainingData) -> str:
    """What must be equal for a checkpoint to be resumed: the settings (not the device) and the chips."""
    key = {k: v for k, v in asdict(config).items() if k not in ("device", "checkpoints")}
    key.update(chips=str(Path(data.chipset.folder).resolve()), validation=data.validation_folder,
               landslide_classes=data.landslide_classes,
               bands=data.bands, n_train=int(data.train[0].shape[0]), n_val=int(data.val[0].shape[0]),
               mean=data.mean.tolist(), std=data.std.tolist())
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _tensors(prefix: str, state: dict) -> dict:
    return {f"{prefix}{k}": v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def _untensor(prefix: str, tensors: dict) -> dict:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def save_checkpoint(folder: Path, *, model, optimizer, scheduler, scaler, sampler, generator, progress_state: dict,
                    best_state: dict | None, ema=None) -> None:
    """Everything a resumed run needs, in one safetensors file (tensors) with JSON metadata (scalars).

    Written to a temp file then renamed, so a kill mid-write leaves the previous epoch's checkpoint intact.
    """
    from safetensors.torch import save_file

    opt = optimizer.state_dict()
    tensors = _tensors("model.", model.state_dict())
    if best_state is not None:
        tensors.update(_tensors("best.", best_state))
    if ema is not None:
        tensors.update(_tensors("ema.", ema.state_dict()))
    scalars = {}
    for i, entry in opt["state"].items():
        for k, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"optim.{i}.{k}"] = value.detach().to("cpu").contiguous().clone()
            else:
                scalars[f"{i}.{k}"] = value
    tensors.update(_tensors("sampler.", sampler.state()))
    tensors["rng.generator"] = generator.get_state()
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    meta = {**progress_state, "optimizer": {"param_groups": opt["param_groups"], "scalars": scalars},
            "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler is not None else {}}
    folder.mkdir(parents=True, exist_ok=True)
    # A checkpoint outlives a failed or canceled run on purpose: it is what a re-run resumes from.
    with atomic_output(folder / CHECKPOINT_FILE, undo_with_run=False) as tmp:
        try:
            save_file(tensors, str(tmp), metadata={"landslide_mapper_checkpoint": json.dumps(meta)})
        except Exception as exc:  # safetensors reports a full disk as its own error type
            if "No space left" in str(exc) or "os error" in str(exc):
                raise OSError(errno.ENOSPC if "No space" in str(exc) else errno.EIO, str(exc), str(tmp)) from None
            raise


def remove_checkpoint(folder: Path) -> None:
    """Remove the checkpoint file, and its folder when nothing else is in it (never anything a user put there)."""
    (folder / CHECKPOINT_FILE).unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:
        pass


def load_checkpoint(folder: Path, expected_hash: str, progress: Progress) -> tuple[dict, dict] | None:
    """(tensors, metadata) of a checkpoint made with the same settings, else None (with a log line why)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = folder / CHECKPOINT_FILE
    if not path.exists():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads(f.metadata()["landslide_mapper_checkpoint"])
        tensors = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - a damaged checkpoint is skipped, never fatal
        progress.log(f"Ignoring the unreadable checkpoint '{path}' ({exc}); training from the start.")
        return None
    if meta.get("config_hash") != expected_hash:
        progress.log(f"The checkpoint in '{folder}' was made with other settings or chips; training from the start.")
        return None
    return tensors, meta


def _restore(tensors: dict, meta: dict, *, model, optimizer, scheduler, scaler, sampler, generator,
             ema=None) -> dict | None:
    """Load a checkpoint into the live objects; returns the best state dict (or None)."""
    model.load_state_dict(_untensor("model.", tensors))
    if ema is not None:
        ema.load_state_dict(_untensor("ema.", tensors))
    state: dict = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, i, name = k.split(".", 2)
            state.setdefault(int(i), {})[name] = v
    for key, value in meta["optimizer"]["scalars"].items():
        i, name = key.split(".", 1)
        state.setdefault(int(i), {})[name] = value
    groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in meta["optimizer"]["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    scheduler.load_state_dict(meta["scheduler"])
    if scaler is not None and meta.get("scaler"):
        scaler.load_state_dict(meta["scaler"])
    sampler.load_state(_untensor("sampler.", tensors))
    generator.set_state(tensors["rng.generator"])
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    best = _untensor("best.", tensors)
    return best or None


# ---------------------------------------------------------------------------------------------- training
def _check_config(config: TrainConfig, data: TrainingData) -> int:
    """Refuse settings that cannot work, with the reason; returns the crop size."""
    from ..models.registry import NEEDS_BATCH_OF_TWO

    if config.epochs < 1 or config.batch_size < 1 or config.learning_rate <= 0:
        raise InputError("Epochs and batch size must be ≥ 1 and the learning rate > 0.")
    if config.batch_size < 2 and config.architecture in NEEDS_BATCH_OF_TWO:
        raise InputError(f"{config.architecture} needs a batch size of at least 2 (its pooled batch norm).")
    if config.optimizer not in OPTIMIZERS:
        raise InputError(f"Unknown optimizer '{config.optimizer}'; choose one of {', '.join(OPTIMIZERS)}.")
    if config.schedule not in SCHEDULES:
        raise InputError(f"Unknown learning-rate schedule '{config.schedule}'; choose one of {', '.join(SCHEDULES)}.")
    if not 0.0 <= config.ema < 1.0:
        raise InputError(f"The weight-averaging (EMA) decay must be in [0, 1), e.g. 0.99 (got {config.ema}).")
    if not 0.0 <= config.positive_fraction <= 1.0:
        raise InputError(f"The positive fraction must be between 0 and 1 (got {config.positive_fraction}).")
    tile = int(data.train[0].shape[-1])
    crop = int(config.crop_size or tile)
    if not 16 <= crop <= tile:
        raise InputError(f"Crop size {crop} px must be between 16 px and the chip size ({tile} px).")
    return crop


def make_scheduler(optimizer, config: TrainConfig, iters: int):
    """'plateau': LR × 0.1 after `lr_patience` epochs without a better validation F1 (stepped per epoch);
    'cosine': linear warm-up over the first epoch, then cosine decay to 0 at the last step (stepped per batch)."""
    if config.schedule == "cosine":
        total, warm = config.epochs * iters, iters

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    lr_patience = config.lr_patience if config.lr_patience is not None else max(1, config.patience // 2)
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.1, patience=lr_patience)


def make_ema(model, decay: float):
    """An exponential moving average of the weights and batch-norm statistics (None when decay is 0). The decay
    ramps up as min(decay, (1 + n) / (10 + n)) after n updates, so short runs are not stuck near the first weights."""
    if not decay:
        return None
    from torch.optim.swa_utils import AveragedModel

    def average(averaged, current, n):
        d = min(float(decay), (1.0 + float(n)) / (10.0 + float(n)))
        return averaged * d + current * (1.0 - d)

    return AveragedModel(model, avg_fn=average, use_buffers=True)


def _check_shape(model, channels: int, crop: int, config: TrainConfig) -> None:
    """Run one empty batch so a chip size the network cannot take fails now, with a clear message."""
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(2, channels, crop, crop, device=next(model.parameters()).device))
    except RuntimeError as exc:
        raise InputError(f"{config.architecture}/{config.encoder} cannot take {crop}×{crop} px inputs "
                         f"({str(exc).splitlines()[0]}); use chips or crops of a multiple of 32 px, or a "
                         f"smaller encoder depth.") from None
    model.train()


@dataclass
class _Training:
    """Everything one training run changes, so it can be checkpointed and resumed exactly."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    scaler: object
    sampler: "CropSampler"
    generator: torch.Generator
    ema: object
    iters: int
    crop: int
    best: dict = field(default_factory=lambda: {"f1": -1.0, "epoch": 0, "state": None, "val": None})
    history: list = field(default_factory=list)
    start_epoch: int = 1
    stopped: bool = False

    @property
    def scored(self) -> torch.nn.Module:
        """The network validated and kept: the averaged weights when averaging is on."""
        return self.ema.module if self.ema is not None else self.model


def train_model(
    chips: str | os.PathLike | ChipSet | TrainingData,
    package_path: str | os.PathLike,
    config: TrainConfig | None = None,
    validation_chips: str | os.PathLike | None = None,
    progress: Progress | None = None,
    landslide_classes=None,
) -> TrainResult:
    """Train one network on a chip folder and write a model package with its chosen threshold.

    A checkpoint is written after every epoch to `<package>.checkpoint/`; running again with the same settings
    and chips continues from it (same result as an uninterrupted run), and it is deleted once the package exists.
    """
    config = config or TrainConfig()
    progress = or_null(progress)
    data = (chips if isinstance(chips, TrainingData)
            else load_training_data(chips, validation_chips, landslide_classes, config.task))
    loss_fn = make_loss(config, data)
    device = pick_device(config.device)
    run = _start(config, data, device)
    folder, chash = checkpoint_folder(package_path), config_hash(config, data)
    resumed = load_checkpoint(folder, chash, progress) if config.checkpoints else None
    if resumed is not None:
        _resume(run, *resumed, progress)
    progress.log(f"Training {config.architecture}/{config.encoder} on {data.train[0].shape[0]} chips "
                 f"({len(data.val[0])} validation), {run.iters} batches of {config.batch_size} × {run.crop} px per "
                 f"epoch, {config.loss} loss, on {device}.")
    try:
        for epoch in range(run.start_epoch, config.epochs + 1):
            if run.stopped:
                break
            started = time.perf_counter()
            epoch_loss = _train_epoch(run, data, config, loss_fn, device, epoch, progress)
            _close_epoch(run, data, config, loss_fn, device, epoch, epoch_loss, started, progress)
            if config.checkpoints:
                save_checkpoint(folder, model=run.model, optimizer=run.optimizer, scheduler=run.scheduler,
                                scaler=run.scaler, sampler=run.sampler, generator=run.generator,
                                best_state=run.best["state"], ema=run.ema,
                                progress_state={"config_hash": chash, "epoch": epoch, "stopped": run.stopped,
                                                "history": run.history,
                                                "best": {k: v for k, v in run.best.items() if k != "state"}})
    except Canceled:
        if config.checkpoints and run.history:
            raise Canceled(f"The training state after epoch {run.history[-1]['epoch']} is kept in '{folder}': run "
                           f"train again with the same settings and output to resume from it, or delete that "
                           f"folder.") from None
        raise
    result = _write_trained(package_path, run, data, config, chash, progress)
    remove_checkpoint(folder)
    return result


def make_loss(config: TrainConfig, data: TrainingData):
    """f(output, target, valid) of the configured loss: binary as named, or its multi-class (softmax) form with
    class weights, nodata and unlabelled pixels ignored."""
    from ..models.registry import IGNORE_INDEX, get_loss, get_multiclass_loss

    if not data.n_classes:
        return get_loss(config.loss, config.positive_weight)
    if config.class_weights is not None and len(config.class_weights) != data.n_classes:
        names = ", ".join(c["name"] for c in data.chipset.manifest["classes"])
        raise InputError(f"Give one class weight per class (CLASS_WEIGHTS): {data.n_classes} numbers for {names}; "
                         f"got {len(config.class_weights)}.")
    fn = get_multiclass_loss(config.loss, config.class_weights, IGNORE_INDEX)

    def loss(output, target, valid):
        index = torch.where(valid[:, 0] > 0, target[:, 0].round().long(), torch.full_like(target[:, 0], IGNORE_INDEX,
                                                                                         dtype=torch.long))
        return fn(output, index)

    loss.__name__ = config.loss
    return loss


def _start(config: TrainConfig, data: TrainingData, device) -> _Training:
    """The network, optimiser, schedule and sampler of a fresh run (seeded: the same settings give the same run)."""
    from ..models.registry import create_model

    crop = _check_config(config, data)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = create_model(config.architecture, config.encoder, len(data.bands), classes=max(1, data.n_classes),
                         encoder_weights=config.encoder_weights, **config.model_kwargs).to(device)
    _check_shape(model, len(data.bands), crop, config)
    optimizer_class = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    optimizer = optimizer_class(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    scaler = grad_scaler(device)
    sampler = CropSampler(data.train[1], crop, config.batch_size, config.positive_fraction, generator)
    iters = config.iterations_per_epoch or max(1, data.train[0].shape[0] // config.batch_size)
    scheduler = make_scheduler(optimizer, config, iters)
    return _Training(model, optimizer, scheduler, scaler, sampler, generator, make_ema(model, config.ema), iters,
                     crop)


def _resume(run: _Training, tensors: dict, meta: dict, progress: Progress) -> None:
    best_state = _restore(tensors, meta, model=run.model, optimizer=run.optimizer, scheduler=run.scheduler,
                          scaler=run.scaler, sampler=run.sampler, generator=run.generator, ema=run.ema)
    run.best = {**meta["best"], "state": best_state}
    run.history = meta["history"]
    run.start_epoch, run.stopped = meta["epoch"] + 1, meta["stopped"]
    progress.log(f"Resuming from the checkpoint after epoch {meta['epoch']} (best validation F1 "
                 f"{run.best['f1']:.3f} at epoch {run.best['epoch']}).")


def _train_epoch(run: _Training, data: TrainingData, config: TrainConfig, loss_fn, device, epoch: int,
                 progress: Progress) -> float:
    """One epoch of batches; returns the mean training loss."""
    x_train, y_train, v_train = data.train
    iters = run.iters
    log_every = max(1, iters // 4) if iters >= 8 else iters + 1
    run.model.train()
    epoch_loss = torch.zeros((), device=device)
    for i in range(1, iters + 1):
        check_canceled(progress)
        idx, rows, cols = run.sampler.next_batch()
        xb, yb, vb = gather_batch(x_train, y_train, v_train, idx, rows, cols, run.crop)
        if config.augment:
            xb, yb, vb = augment_batch(xb, yb, vb, run.generator, config.brightness, config.noise)
        xb, yb, vb = (t.to(device, non_blocking=True) for t in (xb, yb, vb))
        epoch_loss += train_step(run.model, run.optimizer, loss_fn, xb, yb, vb, run.scaler)
        if run.ema is not None:
            run.ema.update_parameters(run.model)
        if config.schedule != "plateau":
            run.scheduler.step()
        progress.set_progress(100.0 * ((epoch - 1) * iters + i) / (config.epochs * iters))
        if i % log_every == 0 and i < iters:
            progress.log(f"  epoch {epoch}: {i}/{iters} batches, loss {float(epoch_loss) / i:.4f}")
    return float(epoch_loss) / iters


def _close_epoch(run: _Training, data: TrainingData, config: TrainConfig, loss_fn, device, epoch: int,
                 train_loss: float, started: float, progress: Progress) -> None:
    """Validate, keep the best epoch, log, and decide on an early stop."""
    x_val, y_val, v_val = data.val
    if data.n_classes:  # multi-class: the epoch with the best macro F1
        val = validate_model_classes(run.scored, x_val, y_val, v_val, loss_fn, device, config.batch_size * 2,
                                     data.n_classes, data.chipset.manifest["classes"])
    else:
        val = validate(run.scored, x_val, y_val, v_val, loss_fn, device, config.batch_size * 2)
    if config.schedule == "plateau":
        run.scheduler.step(val["f1"])
    row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val["loss"],
           "val_f1": val["f1"], "val_f1_at_0.5": val["f1_at_0.5"], "threshold": val["threshold"],
           "lr": run.optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - started}
    run.history.append(row)
    improved = val["f1"] > run.best["f1"]
    if improved:
        run.best = {"f1": val["f1"], "epoch": epoch, "state": copy.deepcopy(run.scored.state_dict()), "val": val}
    progress.log(f"Epoch {epoch}/{config.epochs}: loss {row['train_loss']:.4f}, val loss {val['loss']:.4f}, "
                 f"val F1 {val['f1']:.3f} at threshold {val['threshold']:.2f}"
                 f"{' (best)' if improved else ''}, {row['seconds']:.1f} s")
    if epoch - run.best["epoch"] >= config.patience:
        progress.log(f"Early stop: no better validation F1 for {config.patience} epochs.")
        run.stopped = True


def _write_trained(package_path, run: _Training, data: TrainingData, config: TrainConfig, chash: str,
                   progress: Progress) -> TrainResult:
    """The package of the best epoch, with its threshold and validation scores, and the learning curves."""
    from ..models.package import make_manifest, write_package

    best, history = run.best, run.history
    val = best["val"]
    seconds = float(sum(r["seconds"] for r in history))
    member = {"architecture": config.architecture, "encoder": config.encoder, "model_kwargs": config.model_kwargs,
              "weights": "weights.safetensors", "weight": 1.0, "loss": config.loss,
              "learning_rate": config.learning_rate, "validation_f1": val["f1"]}
    if data.n_classes:
        member["out_channels"] = data.n_classes
    manifest = make_manifest(
        members=[member], input_bands=data.bands, band_stats=data.chipset.stats,
        threshold=val["threshold"], classes=data.chipset.manifest["classes"],
        pixel_size=data.chipset.manifest.get("pixel_size"), crs_wkt=data.chipset.manifest.get("crs"),
        validation_metrics=float_metrics(val),
        training={**{k: v for k, v in asdict(config).items() if k not in ("encoder_weights", "checkpoints")},
                  "best_epoch": best["epoch"], "chip_tile_size": int(data.chipset.manifest["tile_size"]),
                  "seconds": seconds, "config_hash": chash, "history": history},
        provenance={"chips": str(data.chipset.folder)},
        task="multiclass_segmentation" if data.n_classes else "binary_segmentation",
        validation_classes=val.get("classes"),
    )
    package = write_package(package_path, manifest, [best["state"]])
    curves_csv, curves_png = write_curves(Path(package_path), history)
    progress.log(f"Best epoch {best['epoch']}: validation F1 {val['f1']:.3f} at threshold {val['threshold']:.2f} "
                 f"(precision {_fmt(val['metrics']['precision'])}, recall {_fmt(val['metrics']['recall'])}). "
                 f"Package written: {package}")
    return TrainResult(package, best["epoch"], val["threshold"], val["metrics"], history, curves_csv, curves_png,
                       seconds)


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def float_metrics(val: dict) -> dict:
    """Validation metrics for the manifest: the scores at the chosen threshold plus F1 at 0.5."""
    out = {k: v for k, v in val["metrics"].items() if isinstance(v, float)}
    out["f1_at_0.5"] = float(val["f1_at_0.5"])
    out["threshold"] = float(val["threshold"])
    return out


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
