"""The model package (.lmpkg): a zip of model.json + safetensors weights, never pickle.

Reading validates everything a prediction relies on and refuses with a message a person can act on.
"""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..common.errors import InputError
from ..common.versions import plugin_version, python_version
from ..common.outputs import atomic_output
from .forest import PixelForest
from .manifest import (MANIFEST, MAX_ENTRY_BYTES, MAX_MANIFEST_BYTES, MULTICLASS_TASK, PIXEL_BASELINE,
                       SCHEMA_VERSION, TASK, load_manifest, open_archive, read_entry, validate_manifest)
from .registry import create_model

# Prediction defaults stored in new packages: large tiles compute few pixels twice (tiles shrink to fit the raster),
# and 64 px of blended overlap hide tile seams. Both can be overridden when predicting.
PREDICTION_TILE = 1024
PREDICTION_OVERLAP = 64


@dataclass
class ModelPackage:
    path: Path
    manifest: dict
    networks: list[torch.nn.Module]  # one network per ensemble member, weights loaded, in manifest order

    @property
    def input_bands(self) -> list[str]:
        return list(self.manifest["input_bands"])

    @property
    def threshold(self) -> float:
        return float(self.manifest["threshold"])

    @property
    def task(self) -> str:
        return str(self.manifest["task"])

    @property
    def is_multiclass(self) -> bool:
        return self.task == MULTICLASS_TASK

    @property
    def classes(self) -> list[dict]:
        """The class table: value, name, color (multi-class: channel k of the networks is classes[k])."""
        return [dict(c) for c in self.manifest["classes"]]

    @property
    def tile_size(self) -> int:
        return int(self.manifest["tile_size"])

    def normalization(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-band mean and std in input-band order."""
        norm = self.manifest["normalization"]
        mean = np.array([norm[b]["mean"] for b in self.input_bands], dtype=np.float32)
        std = np.array([norm[b]["std"] for b in self.input_bands], dtype=np.float32)
        return mean, np.where(std > 0, std, 1.0).astype(np.float32)

    def members(self, device: str | torch.device = "cpu") -> list[tuple[torch.nn.Module, float]]:
        """Each member network on `device`, in eval mode, with its ensemble weight."""
        return [(net.to(device).eval(), float(member.get("weight", 1.0)))
                for member, net in zip(self.manifest["members"], self.networks)]


def _build(member: dict, in_channels: int, source: str) -> torch.nn.Module:
    """A network from a member's architecture name and model_kwargs (ResUNet included), weights not loaded.

    The manifest is already checked (model_kwargs allow-listed and typed), but a combination of allowed values can
    still be one the network cannot take; that is a bad package, not a crash.
    """
    try:
        return create_model(member["architecture"], member.get("encoder") or "", in_channels,
                            classes=member.get("out_channels") or 1, **(member.get("model_kwargs") or {}))
    except InputError as exc:
        raise InputError(f"{source}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any failure to build is a bad package for the person
        raise InputError(f"{source}: a {member['architecture']} network cannot be built from its model_kwargs "
                         f"({type(exc).__name__}: {str(exc)[:200]}).") from None


def software_versions() -> dict:
    import segmentation_models_pytorch as smp

    return {"landslide_mapper": plugin_version(), "python": python_version(), "torch": torch.__version__,
            "segmentation_models_pytorch": smp.__version__, "numpy": np.__version__}


def make_manifest(*, members: Sequence[dict], input_bands: Sequence[str], band_stats: Sequence[dict],
                  threshold: float, classes: Sequence[dict], tile_size: int | None = None, pixel_size=None,
                  crs_wkt=None, overlap: int | None = None, validation_metrics: dict | None = None,
                  training: dict | None = None,
                  provenance: dict | None = None, task: str = TASK,
                  validation_classes: Sequence[dict] | None = None) -> dict:
    """model.json contents; `members` entries: architecture, encoder, model_kwargs, weights (file), weight.

    `task` multiclass_segmentation: one network channel per entry of `classes`, in order (members' out_channels
    must say so); `validation_classes` holds the per-class validation scores."""
    stats = {s["name"]: {k: v for k, v in s.items() if k != "name"} for s in band_stats}
    tile = int(tile_size or PREDICTION_TILE)
    first = members[0]
    return {
        "schema_version": SCHEMA_VERSION,
        "task": task,
        "architecture": first["architecture"] if len(members) == 1 else "ensemble",
        "encoder": first.get("encoder"),
        "in_channels": len(input_bands),
        "out_channels": len(classes) if task == MULTICLASS_TASK else 1,
        "input_bands": list(input_bands),
        "normalization": {b: stats[b] for b in input_bands},
        "pixel_size": list(pixel_size) if pixel_size is not None else None,
        "crs": crs_wkt,
        "tile_size": tile,
        "overlap": int(overlap if overlap is not None else min(PREDICTION_OVERLAP, tile // 4)),
        "classes": list(classes),
        "threshold": float(threshold),
        "validation_metrics": validation_metrics or {},
        **({"validation_classes": [dict(r) for r in validation_classes]} if validation_classes else {}),
        "members": [dict(m) for m in members],
        "training": training or {},
        "provenance": {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                       "software": software_versions(), **(provenance or {})},
    }


def write_package(path: str | os.PathLike, manifest: dict, member_weights: Sequence[dict]) -> Path:
    """Write a .lmpkg (temp file, then rename); weights as safetensors, one file per member."""
    from safetensors.torch import save

    if len(member_weights) != len(manifest["members"]):
        raise ValueError("one state dict per manifest member is needed")
    text = json.dumps(manifest, indent=2)
    validate_manifest(json.loads(text), Path(path).name)  # never write a package that reading would refuse
    if len(text.encode()) > MAX_MANIFEST_BYTES:
        raise InputError(f"The manifest of '{Path(path).name}' would exceed {MAX_MANIFEST_BYTES:,} bytes, more than a "
                         f"package may hold.")
    with atomic_output(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(MANIFEST, text)
            for member, state in zip(manifest["members"], member_weights):
                tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
                zf.writestr(member["weights"], save(tensors))
    return Path(path)


def read_package(path: str | os.PathLike) -> ModelPackage:
    """Open and validate a package; every refusal names the file and what is wrong.

    The zip and model.json are checked by models.manifest (limits, schema, allow-listed model_kwargs) before any
    weights are read; weights are safetensors only, read through a bounded reader.
    """
    from safetensors.torch import load

    path = Path(path)
    name = path.name
    with open_archive(path) as zf:
        manifest = load_manifest(zf, name)
        n_bands = len(manifest["input_bands"])
        networks = []
        for i, member in enumerate(manifest["members"]):
            wname = member["weights"]
            data = read_entry(zf, wname, MAX_ENTRY_BYTES, name)
            try:
                state = load(data)
            except Exception as exc:  # noqa: BLE001
                raise InputError(f"Weights '{wname}' in '{name}' are not a valid safetensors file: {exc}") from None
            del data
            if member.get("kind") == PIXEL_BASELINE:
                networks.append(PixelForest.from_state(state, n_bands, f"{name}:{wname}"))
                continue
            net = _build(member, n_bands, f"Model package '{name}', members[{i}]")
            try:
                net.load_state_dict(state)
            except (RuntimeError, ValueError, TypeError) as exc:
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise InputError(f"Weights '{wname}' in '{name}' do not fit a {member['architecture']}/"
                                 f"{member.get('encoder')} network with {n_bands} input bands "
                                 f"({first}).") from None
            networks.append(net)
    return ModelPackage(path, manifest, networks)


def match_bands(package: ModelPackage, raster_bands: Sequence[str], source: str) -> list[int]:
    """1-based raster band indexes feeding the package's inputs, matched by band name."""
    lower = [b.lower() for b in raster_bands]
    missing = [b for b in package.input_bands if b.lower() not in lower]
    if missing:
        raise InputError(
            f"Raster '{source}' lacks band(s) {', '.join(missing)} that model '{package.path.name}' needs "
            f"(it expects {', '.join(package.input_bands)}; the raster has {', '.join(raster_bands)})."
        )
    return [lower.index(b.lower()) + 1 for b in package.input_bands]


def positional_mapping(wanted: Sequence[str], raster_number: int = 1) -> str:
    """BAND_MAPPING text feeding the model's bands, in order, from bands 1…n of one raster: 'B04=1:1,B03=1:2'."""
    return ",".join(f"{band}={raster_number}:{i}" for i, band in enumerate(wanted, start=1))


def positional_mapping_hint(wanted: Sequence[str], missing: Sequence[str], raster_names: Sequence[Sequence[str]],
                            overrides: dict | None = None) -> str:
    """When no band was found by name and the first raster has exactly the model's band count, the sentence that
    gives the exact BAND_MAPPING to pass (bands taken in order) — a guess the person must confirm; else ''."""
    if overrides or len(missing) != len(wanted) or not raster_names or len(raster_names[0]) != len(wanted):
        return ""
    return (f" The first input raster has exactly the model's {len(wanted)} bands but none of their names: if its "
            f"bands are in the model's order ({', '.join(wanted)}), pass BAND_MAPPING "
            f"'{positional_mapping(wanted)}' (check the order first: bands in another order give a wrong map "
            f"without any error).")
