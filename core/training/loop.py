"""The training loop: one network trained on a chip folder, the best epoch kept and packaged."""
from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch


from ..chips import ChipSet
from ...common.errors import Canceled, InputError
from ...models.devices import autocast, grad_scaler, pick_device
from ...common.progress import Progress, check_canceled, or_null
from .checkpoints import (
    restore_checkpoint, checkpoint_folder, config_hash, load_checkpoint, remove_checkpoint, save_checkpoint,
)
from .config import OPTIMIZERS, SCHEDULES, TrainConfig, TrainResult
from .curves import write_curves
from .data import CropSampler, TrainingData, augment_batch, gather_batch, load_training_data
from .validation import format_score, float_metrics, validate, validate_model_classes


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


def _check_config(config: TrainConfig, data: TrainingData) -> int:
    """Refuse settings that cannot work, with the reason; returns the crop size."""
    from ...models.registry import NEEDS_BATCH_OF_TWO

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
    from ...models.registry import IGNORE_INDEX, get_loss, get_multiclass_loss

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
    from ...models.registry import create_model

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
    best_state = restore_checkpoint(tensors, meta, model=run.model, optimizer=run.optimizer, scheduler=run.scheduler,
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
    from ...models.package import make_manifest, write_package

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
                 f"(precision {format_score(val['metrics']['precision'])}, "
                 f"recall {format_score(val['metrics']['recall'])}). "
                 f"Package written: {package}")
    return TrainResult(package, best["epoch"], val["threshold"], val["metrics"], history, curves_csv, curves_png,
                       seconds)
