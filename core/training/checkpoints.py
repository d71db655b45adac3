"""Per-epoch checkpoints beside the package, so a re-run with the same settings resumes exactly."""
from __future__ import annotations

import errno
import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

import torch


from ...common.outputs import atomic_output
from ...common.progress import Progress
from .config import TrainConfig
from .data import TrainingData


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


def restore_checkpoint(tensors: dict, meta: dict, *, model, optimizer, scheduler, scaler, sampler, generator,
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
