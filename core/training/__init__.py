"""Local training: masked losses, positive-biased crops, augmentation, early stopping on validation F1, threshold
choice, and per-epoch checkpoints that a re-run with the same settings resumes from.

The result is a self-describing model package (models/package.py) holding everything prediction needs.
"""
from .config import OPTIMIZERS, SCHEDULES, TrainConfig, TrainResult  # noqa: F401
from .data import (  # noqa: F401
    HIST_BINS, prepare, TrainingData, load_training_data, CropSampler, gather_batch, augment_batch,
)
from .validation import (  # noqa: F401
    validate_probabilities, validate, validate_classes, validate_model_classes, validate_members, float_metrics,
)
from .checkpoints import (  # noqa: F401
    CHECKPOINT_FILE, checkpoint_folder, config_hash, save_checkpoint, remove_checkpoint, load_checkpoint,
)
from .curves import curves_paths, write_curves  # noqa: F401
from .loop import train_step, make_scheduler, make_ema, train_model, make_loss  # noqa: F401
