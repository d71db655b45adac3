"""Ensembles as in the global study: train a grid of architectures × losses × learning rates, rank the members by
validation F1 on a leaderboard, and package the pixel-wise mean of the top K (or of fewer of them, when the top k < K
score better on validation: an ensemble is kept only where it beats its best member on validation).

Members are ordinary packages in `<package>.members/`; a member whose package exists with the same settings is
not trained again, so an interrupted grid continues where it stopped (an interrupted member resumes from its own
checkpoint).
"""
from __future__ import annotations

import csv
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

from .chips import ChipSet
from ..common.errors import InputError
from ..common.outputs import atomic_output, make_folder
from ..common.progress import Progress, SubProgress, check_canceled, or_null
from ..models.devices import pick_device
from .training import (TrainConfig, config_hash, float_metrics, load_training_data, train_model,
                       validate_members)

LEADERBOARD_FIELDS = ["rank", "member", "architecture", "encoder", "loss", "learning_rate", "val_f1", "precision",
                      "recall", "mcc", "iou", "threshold", "best_epoch", "epochs_run", "seconds", "selected"]


@dataclass
class EnsembleConfig:
    # Defaults are a small grid that trains on a CPU in minutes (the study: 9 × 5 × 2 on a GPU).
    architectures: list[str] = field(default_factory=lambda: ["Unet", "FPN"])
    losses: list[str] = field(default_factory=lambda: ["dice", "bce"])
    learning_rates: list[float] = field(default_factory=lambda: [1e-3])
    top_k: int = 3
    base: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=10, patience=4))
    # Small networks per architecture (registry.compact_kwargs); None: base.model_kwargs for every member.
    encoder_depth: int | None = 3
    decoder_width: int = 8


@dataclass
class EnsembleResult:
    package: Path
    leaderboard: Path
    rows: list[dict]  # one per member, ranked
    selected: list[str]  # member names in the ensemble
    validation: dict  # ensemble metrics at its own threshold
    threshold: float


def member_name(architecture: str, loss: str, learning_rate: float) -> str:
    return f"{architecture}_{loss}_lr{learning_rate:g}"


def member_configs(config: EnsembleConfig) -> list[tuple[str, TrainConfig]]:
    """(name, training settings) of every grid member, in grid order."""
    from ..models.registry import ARCHITECTURES, LOSSES, compact_kwargs

    unknown = [a for a in config.architectures if a not in ARCHITECTURES]
    unknown += [loss for loss in config.losses if loss not in LOSSES]
    if unknown:
        raise InputError(f"Unknown architecture(s) or loss(es) in the grid: {', '.join(unknown)}.")
    if not (config.architectures and config.losses and config.learning_rates):
        raise InputError("The ensemble grid needs at least one architecture, one loss and one learning rate.")
    if config.top_k < 1:
        raise InputError(f"Top K must be at least 1 (got {config.top_k}).")
    bad = [lr for lr in config.learning_rates if not (math.isfinite(float(lr)) and float(lr) > 0)]
    if bad:
        raise InputError(f"Learning rates (LEARNING_RATES) must be finite numbers above 0, not "
                         f"{', '.join(f'{float(lr):g}' for lr in bad)}; e.g. '0.001,0.0003'.")
    out = []
    for arch in config.architectures:
        kwargs = (compact_kwargs(arch, config.encoder_depth, config.decoder_width)
                  if config.encoder_depth is not None else dict(config.base.model_kwargs))
        for loss in config.losses:
            for lr in config.learning_rates:
                out.append((member_name(arch, loss, lr),
                            replace(config.base, architecture=arch, loss=loss, learning_rate=float(lr),
                                    model_kwargs=kwargs)))
    return out


def select_top_k(rows: Sequence[dict], k: int) -> list[dict]:
    """The k best members by validation F1 (ties: higher MCC, then name); members without a score are skipped."""
    def score(row, key):
        value = row.get(key)
        try:
            value = float(value)
        except (TypeError, ValueError):
            return -math.inf
        return value if math.isfinite(value) else -math.inf

    scored = [r for r in rows if score(r, "val_f1") > -math.inf]
    ranked = sorted(scored, key=lambda r: (-score(r, "val_f1"), -score(r, "mcc"), str(r.get("member"))))
    return ranked[:k]


def best_prefix(f1_of_prefix: Sequence[float]) -> int:
    """How many of the ranked members to keep: the k whose top-k mean scores the highest validation F1 (ties: the
    larger ensemble, which varies less on new data)."""
    scores = [f if f is not None and math.isfinite(f) else -math.inf for f in f1_of_prefix]
    if not scores:
        raise InputError("No ensemble member to keep.")
    best = max(scores)
    return max(k for k, f in enumerate(scores, start=1) if f == best)


def _row(name: str, manifest: dict) -> dict:
    member = manifest["members"][0]
    vm = manifest.get("validation_metrics", {})
    tr = manifest.get("training", {})
    return {"member": name, "architecture": member["architecture"], "encoder": member.get("encoder"),
            "loss": member.get("loss"), "learning_rate": member.get("learning_rate"), "val_f1": vm.get("f1"),
            "precision": vm.get("precision"), "recall": vm.get("recall"), "mcc": vm.get("mcc"), "iou": vm.get("iou"),
            "threshold": manifest.get("threshold"), "best_epoch": tr.get("best_epoch"),
            "epochs_run": len(tr.get("history", [])), "seconds": round(float(tr.get("seconds", 0.0)), 1)}


def _finished_member(path: Path, expected_hash: str) -> dict | None:
    """The manifest of an already trained member with the same settings, else None."""
    from ..models.package import read_package

    if not path.exists():
        return None
    try:
        manifest = read_package(path).manifest
    except InputError:
        return None
    return manifest if manifest.get("training", {}).get("config_hash") == expected_hash else None


def train_ensemble(
    chips: str | os.PathLike | ChipSet,
    package_path: str | os.PathLike,
    config: EnsembleConfig | None = None,
    validation_chips: str | os.PathLike | None = None,
    progress: Progress | None = None,
    landslide_classes=None,
) -> EnsembleResult:
    """Train the grid (skipping finished members), write the leaderboard CSV and the top-K ensemble package."""
    from ..models.package import make_manifest, read_package, write_package

    config = config or EnsembleConfig()
    progress = or_null(progress)
    members = member_configs(config)
    data = load_training_data(chips, validation_chips, landslide_classes)
    package_path = Path(package_path).resolve()
    folder = Path(str(package_path) + ".members")
    make_folder(folder)  # removed again by a run that fails before writing anything in it
    progress.log(f"Ensemble grid: {len(members)} members ({', '.join(config.architectures)} × "
                 f"{', '.join(config.losses)} × lr {', '.join(f'{lr:g}' for lr in config.learning_rates)}); "
                 f"the top {config.top_k} by validation F1 form the ensemble. Members are kept in '{folder}'.")
    rows, paths = _train_grid(members, data, folder, progress)
    top = select_top_k(rows, config.top_k)
    if not top:
        raise InputError("No ensemble member reached a validation score; check the chips and labels.")
    selected = [r["member"] for r in top]
    if len(top) < config.top_k:
        progress.log(f"Only {len(top)} member(s) available for a top {config.top_k}; using them all.")

    started = time.perf_counter()
    chosen, selected, val = _keep_best_prefix([read_package(paths[name]) for name in selected], selected, top,
                                              data, config, progress)
    entries = []
    for k, (name, pkg) in enumerate(zip(selected, chosen), start=1):
        entries.append({**pkg.manifest["members"][0], "name": name, "weights": f"member_{k:02d}.safetensors",
                        "weight": 1.0})
    first = chosen[0].manifest
    manifest = make_manifest(
        members=entries, input_bands=data.bands, band_stats=data.chipset.stats, tile_size=first["tile_size"],
        threshold=val["threshold"], classes=first["classes"], pixel_size=first.get("pixel_size"),
        crs_wkt=first.get("crs"), validation_metrics=float_metrics(val),
        training={"ensemble": {"top_k": config.top_k, "selected": selected, "grid_size": len(members),
                               "architectures": config.architectures, "losses": config.losses,
                               "learning_rates": config.learning_rates},
                  "best_single": {"member": top[0]["member"], "val_f1": float(top[0]["val_f1"])},
                  "seconds": float(sum(float(r["seconds"] or 0) for r in rows)) + time.perf_counter() - started},
        provenance={"chips": str(data.chipset.folder), "members_folder": str(folder)},
    )
    write_package(package_path, manifest, [pkg.networks[0].state_dict() for pkg in chosen])

    scored = select_top_k(rows, len(rows))
    ranked = scored + [r for r in rows if r not in scored]
    for rank, row in enumerate(ranked, start=1):
        row["rank"] = rank
        row["selected"] = row["member"] in selected
    leaderboard = write_leaderboard(leaderboard_path(package_path), ranked, val,
                                    selected)
    progress.log(f"Leaderboard: {leaderboard}. Ensemble package written: {package_path}")
    return EnsembleResult(package_path, leaderboard, ranked, selected, val["metrics"], val["threshold"])


def _train_grid(members, data, folder: Path, progress: Progress) -> tuple[list[dict], dict]:
    """Train every member not already finished (same settings and chips); their leaderboard rows and paths."""
    from ..models.package import read_package

    rows, paths = [], {}
    for i, (name, member_config) in enumerate(members):
        check_canceled(progress)
        path = folder / f"{name}.lmpkg"
        paths[name] = path
        manifest = _finished_member(path, config_hash(member_config, data))
        if manifest is not None:
            progress.log(f"[{i + 1}/{len(members)}] {name}: already trained (validation F1 "
                         f"{manifest['validation_metrics'].get('f1', float('nan')):.3f}), skipped.")
        else:
            progress.log(f"[{i + 1}/{len(members)}] {name}: training.")
            sub = SubProgress(progress, 100.0 * i / len(members), 100.0 * (i + 1) / len(members))
            train_model(data, path, member_config, progress=sub)
            manifest = read_package(path).manifest
        rows.append(_row(name, manifest))
        progress.set_progress(100.0 * (i + 1) / len(members))
    return rows, paths


def _keep_best_prefix(chosen, selected, top, data, config, progress: Progress):
    """Each top-k prefix (k = 1 … K) scored on the pooled validation pixels at its own best threshold; the best
    prefix is kept, so the ensemble never scores below its best member on validation (members that agree on the
    same errors, or whose probabilities are calibrated differently, can pull a mean below it)."""
    device = pick_device(config.base.device)
    prefix = [validate_members([(pkg.networks[0], 1.0) for pkg in chosen[:k]], *data.val, device,
                               config.base.batch_size * 2) for k in range(1, len(chosen) + 1)]
    keep = best_prefix([v["f1"] for v in prefix])
    val = prefix[keep - 1]
    for k, v in enumerate(prefix, start=1):
        progress.log(f"Top {k}: validation F1 {v['f1']:.3f} at threshold {v['threshold']:.2f}"
                     f"{' (kept)' if k == keep else ''}.")
    if keep < len(chosen):
        progress.log(f"The top {keep} score better on validation than the top {len(chosen)}: the ensemble keeps "
                     f"{keep} member(s).")
    best_single = top[0]
    progress.log(f"Ensemble of {keep}: validation F1 {val['f1']:.3f} at threshold {val['threshold']:.2f} "
                 f"(best single member {best_single['member']}: {float(best_single['val_f1']):.3f}).")
    return chosen[:keep], selected[:keep], val


def leaderboard_path(package_path: str | os.PathLike) -> Path:
    """The leaderboard CSV written beside an ensemble package."""
    package_path = Path(package_path)
    return package_path.with_name(package_path.stem + "_leaderboard.csv")


def write_leaderboard(path: Path, ranked: list[dict], ensemble_val: dict, selected: list[str]) -> Path:
    """Members ranked by validation F1, then one row for the ensemble itself."""
    m = ensemble_val["metrics"]
    ensemble_row = {"rank": "", "member": f"ENSEMBLE (top {len(selected)})", "architecture": "ensemble",
                    "val_f1": ensemble_val["f1"], "precision": m.get("precision"), "recall": m.get("recall"),
                    "mcc": m.get("mcc"), "iou": m.get("iou"), "threshold": ensemble_val["threshold"],
                    "selected": ""}
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=LEADERBOARD_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in ranked + [ensemble_row]:
            writer.writerow({k: (f"{v:.4f}" if isinstance(v, float) and k != "learning_rate" else v)
                             for k, v in row.items()})
    return path
