"""The settings of one training run and what it returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path





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
