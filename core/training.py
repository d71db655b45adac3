"""Local U-Net training: masked losses, augmentation, early stopping on validation F1, threshold choice.

The result is a self-describing model package (models/package.py) holding everything prediction needs.
"""
from __future__ import annotations

import copy
import csv
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import raster
from .chips import IGNORE, ChipSet, load_chips
from .errors import InputError
from .metrics import Confusion, best_threshold, scores
from .progress import Progress, check_canceled, or_null

HIST_BINS = 100


@dataclass
class TrainConfig:
    architecture: str = "Unet"
    encoder: str = "resnet18"
    loss: str = "bce_dice"
    epochs: int = 30
    batch_size: int = 8
    learning_rate: float = 1e-3
    patience: int = 5
    iterations_per_epoch: int | None = None  # None: one full pass over the training chips
    augment: bool = True
    seed: int = 0
    device: str = "auto"
    encoder_weights: str | None = None  # local file only
    model_kwargs: dict = field(default_factory=dict)


@dataclass
class TrainResult:
    package: Path
    best_epoch: int
    threshold: float
    validation: dict
    history: list[dict]
    curves_csv: Path | None


def pick_device(device: str = "auto") -> torch.device:
    """`auto` → CUDA when available, else CPU; explicit `cuda` without a GPU is a clear error."""
    if device in ("", "auto", None):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("Device 'cuda' was requested but PyTorch sees no CUDA GPU here; use 'auto' or 'cpu'.")
    return torch.device(device)


def prepare(images: np.ndarray, labels: np.ndarray, mean: np.ndarray, std: np.ndarray):
    """Normalise chips; nodata (NaN) → 0 and excluded from the loss via the valid mask."""
    valid = np.all(np.isfinite(images), axis=1) & (labels != IGNORE)
    x = (images - mean[None, :, None, None]) / std[None, :, None, None]
    x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
    y = (labels == 1).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(y[:, None]), torch.from_numpy(valid[:, None].astype(np.float32))


def augment_batch(x, y, v, generator: torch.Generator):
    """Random 90° rotations and flips per sample (rotations are training augmentation, not exported chips)."""
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
    return torch.stack(xs), torch.stack(ys), torch.stack(vs)


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    return torch.autocast("cpu", enabled=False)


@torch.inference_mode()
def validate(model, x, y, v, loss_fn, device, batch_size: int) -> dict:
    """Validation loss, F1 at 0.5, and the F1-maximising threshold with its metrics."""
    model.eval()
    pos_hist = np.zeros(HIST_BINS, dtype=np.int64)
    neg_hist = np.zeros(HIST_BINS, dtype=np.int64)
    losses, weights = [], []
    for s in range(0, x.shape[0], batch_size):
        xb, yb, vb = (t[s:s + batch_size].to(device) for t in (x, y, v))
        with _autocast(device):
            logits = model(xb)
        logits = logits.float()
        losses.append(float(loss_fn(logits, yb, vb)))
        weights.append(float(vb.sum()))
        prob = torch.sigmoid(logits)
        bins = torch.clamp((prob * HIST_BINS).long(), 0, HIST_BINS - 1)
        keep = vb > 0
        pos = keep & (yb > 0.5)
        neg = keep & (yb <= 0.5)
        pos_hist += torch.bincount(bins[pos], minlength=HIST_BINS).cpu().numpy()
        neg_hist += torch.bincount(bins[neg], minlength=HIST_BINS).cpu().numpy()
    threshold, f1_best = best_threshold(pos_hist, neg_hist)
    k = int(round(threshold * HIST_BINS))
    at = Confusion(tp=int(pos_hist[k:].sum()), fp=int(neg_hist[k:].sum()),
                   fn=int(pos_hist[:k].sum()), tn=int(neg_hist[:k].sum()))
    half = HIST_BINS // 2
    at_half = Confusion(tp=int(pos_hist[half:].sum()), fp=int(neg_hist[half:].sum()),
                        fn=int(pos_hist[:half].sum()), tn=int(neg_hist[:half].sum()))
    loss = float(np.average(losses, weights=np.maximum(weights, 1e-9))) if losses else float("nan")
    return {"loss": loss, "f1_at_0.5": scores(at_half)["f1"] or 0.0, "threshold": threshold,
            "f1": f1_best, "metrics": scores(at)}


def train_model(
    chips: str | os.PathLike | ChipSet,
    package_path: str | os.PathLike,
    config: TrainConfig | None = None,
    validation_chips: str | os.PathLike | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Train one network on a chip folder and write a model package with its chosen threshold."""
    from ..models.package import make_manifest, write_package
    from ..models.registry import create_model, get_loss

    config = config or TrainConfig()
    progress = or_null(progress)
    chipset = chips if isinstance(chips, ChipSet) else load_chips(chips)
    if validation_chips:
        val_set = load_chips(validation_chips)
        if val_set.bands != chipset.bands:
            raise InputError(f"Validation chips have bands {val_set.bands}, training chips {chipset.bands}.")
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
    if config.epochs < 1 or config.batch_size < 1 or config.learning_rate <= 0:
        raise InputError("Epochs and batch size must be ≥ 1 and the learning rate > 0.")
    loss_fn = get_loss(config.loss)
    stats = {s["name"]: s for s in chipset.stats}
    mean = np.array([stats[b]["mean"] for b in chipset.bands], dtype=np.float32)
    std = np.array([stats[b]["std"] or 1.0 for b in chipset.bands], dtype=np.float32)
    x_train, y_train, v_train = prepare(train_images, train_labels, mean, std)
    x_val, y_val, v_val = prepare(val_images, val_labels, mean, std)

    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = create_model(config.architecture, config.encoder, len(chipset.bands),
                         encoder_weights=config.encoder_weights, **config.model_kwargs).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.1,
                                                           patience=max(1, config.patience // 2))
    n_train = x_train.shape[0]
    iters = config.iterations_per_epoch or max(1, n_train // config.batch_size)
    progress.log(f"Training {config.architecture}/{config.encoder} on {n_train} chips "
                 f"({len(x_val)} validation) with {config.loss} loss on {device}.")
    best = {"f1": -1.0, "epoch": 0, "state": None, "val": None}
    history = []
    total_steps = config.epochs * iters
    step = 0
    order = torch.empty(0, dtype=torch.long)
    for epoch in range(1, config.epochs + 1):
        model.train()
        started = time.perf_counter()
        epoch_loss = 0.0
        for _ in range(iters):
            check_canceled(progress)
            if order.numel() < config.batch_size:
                order = torch.cat([order, torch.randperm(n_train, generator=generator)])
            idx, order = order[:config.batch_size], order[config.batch_size:]
            xb, yb, vb = x_train[idx], y_train[idx], v_train[idx]
            if config.augment:
                xb, yb, vb = augment_batch(xb, yb, vb, generator)
            xb, yb, vb = xb.to(device), yb.to(device), vb.to(device)
            with _autocast(device):
                logits = model(xb)
            loss = loss_fn(logits.float(), yb, vb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            epoch_loss += float(loss.detach())
            step += 1
            progress.set_progress(100.0 * step / total_steps)
        val = validate(model, x_val, y_val, v_val, loss_fn, device, config.batch_size * 2)
        scheduler.step(val["f1"])
        row = {"epoch": epoch, "train_loss": epoch_loss / iters, "val_loss": val["loss"], "val_f1": val["f1"],
               "val_f1_at_0.5": val["f1_at_0.5"], "threshold": val["threshold"],
               "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - started}
        history.append(row)
        improved = val["f1"] > best["f1"]
        if improved:
            best = {"f1": val["f1"], "epoch": epoch, "state": copy.deepcopy(model.state_dict()), "val": val}
        progress.log(f"Epoch {epoch}/{config.epochs}: loss {row['train_loss']:.4f}, val loss {val['loss']:.4f}, "
                     f"val F1 {val['f1']:.3f} at threshold {val['threshold']:.2f}"
                     f"{' (best)' if improved else ''}, {row['seconds']:.1f} s")
        if epoch - best["epoch"] >= config.patience:
            progress.log(f"Early stop: no better validation F1 for {config.patience} epochs.")
            break

    val = best["val"]
    manifest = make_manifest(
        members=[{"architecture": config.architecture, "encoder": config.encoder,
                  "model_kwargs": config.model_kwargs, "weights": "weights.safetensors", "weight": 1.0}],
        input_bands=chipset.bands, band_stats=chipset.stats, tile_size=int(chipset.manifest["tile_size"]) * 2,
        threshold=val["threshold"], classes=chipset.manifest["classes"],
        pixel_size=chipset.manifest.get("pixel_size"), crs_wkt=chipset.manifest.get("crs"),
        validation_metrics={k: v for k, v in val["metrics"].items() if isinstance(v, float)},
        training={**{k: v for k, v in asdict(config).items() if k != "encoder_weights"},
                  "best_epoch": best["epoch"], "chip_tile_size": int(chipset.manifest["tile_size"]),
                  "history": history},
        provenance={"chips": str(chipset.folder)},
    )
    package = write_package(package_path, manifest, [best["state"]])
    curves = _write_curves(Path(package_path), history)
    progress.log(f"Best epoch {best['epoch']}: validation F1 {val['f1']:.3f} at threshold {val['threshold']:.2f}. "
                 f"Package written: {package}")
    return TrainResult(package, best["epoch"], val["threshold"], val["metrics"], history, curves)


def _write_curves(package_path: Path, history: list[dict]) -> Path:
    path = package_path.with_name(package_path.stem + "_curves.csv")
    with raster.atomic_output(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    return path
