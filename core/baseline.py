"""The studies' Google Earth Engine baseline done locally: a CART or Random Forest classifier of single pixels
(band vectors, no spatial context), trained on the same chips as the networks.

The trees are fitted with scikit-learn and stored as node tables in safetensors (models/forest.py), never pickled;
the package predicts through the same `predict` path as a network.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .chips import ChipSet
from ..common.errors import InputError
from ..common.progress import Progress, SubProgress, check_canceled, or_null
from .training import float_metrics, load_training_data, validate_members

BASELINE_MODELS = {"random_forest": "RandomForest", "cart": "CART"}
TREES_PER_ROUND = 10  # Random Forest grows in rounds, so progress shows and cancel is honoured


@dataclass
class BaselineConfig:
    model: str = "random_forest"  # random_forest | cart
    n_trees: int = 50  # Random Forest only (CART is one tree)
    max_depth: int | None = 16  # bounds the package size; None grows trees fully (GEE's default)
    min_samples_leaf: int = 2
    max_pixels: int = 200_000  # training pixels sampled from the training chips
    balanced: bool = False  # weigh landslide pixels by class frequency
    seed: int = 0
    tile_size: int = 256  # prediction tile (any size works for a per-pixel model)


@dataclass
class BaselineResult:
    package: Path
    threshold: float
    validation: dict
    seconds: float
    prediction: object | None = None  # core.predict.Prediction when a raster was mapped too


def _pixels(x, y, v, limit: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Valid pixels of chips as (band vectors, 0/1 labels), a random sample of at most `limit`."""
    keep = np.flatnonzero(v.reshape(-1).numpy() > 0)
    if keep.size > limit:
        keep = np.sort(rng.choice(keep, size=limit, replace=False))
    size = x.shape[-1] * x.shape[-2]
    chip, rows, cols = keep // size, (keep % size) // x.shape[-1], keep % x.shape[-1]
    features = x.numpy()[chip, :, rows, cols]  # (pixels, bands), gathered without copying every chip
    return features, y.numpy()[chip, 0, rows, cols].astype(np.int64)


def train_pixel_baseline(
    chips: str | os.PathLike | ChipSet,
    package_path: str | os.PathLike,
    config: BaselineConfig | None = None,
    validation_chips: str | os.PathLike | None = None,
    progress: Progress | None = None,
    landslide_classes=None,
    *,
    map_raster: str | os.PathLike | None = None,
    out_probability: str | os.PathLike | None = None,
    out_mask: str | os.PathLike | None = None,
) -> BaselineResult:
    """Fit CART / Random Forest on chip pixels, choose the threshold on validation chips, write a package;
    optionally map `map_raster` with it right away (the GEE workflow: train, then classify the scene)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.tree import DecisionTreeClassifier

    from ..models.forest import PixelForest
    from ..models.package import PIXEL_BASELINE, make_manifest, write_package

    config = config or BaselineConfig()
    progress = or_null(progress)
    if config.model not in BASELINE_MODELS:
        raise InputError(f"Unknown baseline model '{config.model}'; choose one of {', '.join(BASELINE_MODELS)}.")
    if config.n_trees < 1 or config.max_pixels < 100 or config.tile_size % 32:
        raise InputError("Trees must be ≥ 1, training pixels ≥ 100 and the tile size a multiple of 32 px.")
    started = time.perf_counter()
    data = load_training_data(chips, validation_chips, landslide_classes)
    features, labels = _pixels(*data.train, config.max_pixels, np.random.default_rng(config.seed))
    progress.log(f"{BASELINE_MODELS[config.model]} on {len(labels)} training pixels "
                 f"({int(labels.sum())} landslide) of {len(data.bands)} bands: {', '.join(data.bands)}.")
    common = dict(max_depth=config.max_depth, min_samples_leaf=config.min_samples_leaf,
                  class_weight="balanced" if config.balanced else None, random_state=config.seed)
    if config.model == "cart":
        check_canceled(progress)
        estimators = [DecisionTreeClassifier(**common).fit(features, labels)]
        progress.set_progress(40)
    else:
        forest = RandomForestClassifier(n_estimators=0, warm_start=True, n_jobs=-1, **common)
        while forest.n_estimators < config.n_trees:
            check_canceled(progress)
            forest.n_estimators = min(config.n_trees, forest.n_estimators + TREES_PER_ROUND)
            forest.fit(features, labels)
            progress.set_progress(40.0 * forest.n_estimators / config.n_trees)
        estimators = forest.estimators_
    model = PixelForest.from_sklearn(estimators)
    check_canceled(progress)
    val = validate_members([(model, 1.0)], *data.val, device=torch.device("cpu"), batch_size=16)
    member = {"kind": PIXEL_BASELINE, "architecture": BASELINE_MODELS[config.model], "encoder": None,
              "weights": "forest.safetensors", "weight": 1.0, "n_trees": model.n_trees,
              "max_depth": int(model.depth), "validation_f1": val["f1"]}
    seconds = time.perf_counter() - started
    manifest = make_manifest(
        members=[member], input_bands=data.bands, band_stats=data.chipset.stats, tile_size=config.tile_size,
        overlap=0, threshold=val["threshold"], classes=data.chipset.manifest["classes"],
        pixel_size=data.chipset.manifest.get("pixel_size"), crs_wkt=data.chipset.manifest.get("crs"),
        validation_metrics=float_metrics(val),
        training={**asdict(config), "training_pixels": int(len(labels)), "seconds": seconds},
        provenance={"chips": str(data.chipset.folder)},
    )
    package = write_package(package_path, manifest, [model.state_dict()])
    progress.set_progress(50)
    progress.log(f"{BASELINE_MODELS[config.model]}: validation F1 {val['f1']:.3f} at threshold "
                 f"{val['threshold']:.2f} ({model.n_trees} tree(s), depth ≤ {int(model.depth)}). "
                 f"Package written: {package}")
    prediction = None
    if map_raster is not None:
        from ..models.package import read_package
        from .predict import sliding_window_predict

        if out_probability is None:
            raise InputError("Mapping a raster with the baseline needs a probability output path.")
        prediction = sliding_window_predict(read_package(package), map_raster, out_probability, out_mask,
                                            device="cpu", progress=SubProgress(progress, 50, 100))
    return BaselineResult(package, val["threshold"], val["metrics"], seconds, prediction)
