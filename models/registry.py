"""Architectures and losses, built by name (read it in one screen, like smp's own registry)."""
from __future__ import annotations

import os
from typing import Callable

import torch
import torch.nn.functional as F

from ..core.errors import InputError


def _smp():
    import segmentation_models_pytorch as smp

    return smp


ARCHITECTURES = ["Unet", "UnetPlusPlus", "MAnet", "Linknet", "FPN", "PSPNet", "PAN", "DeepLabV3", "DeepLabV3Plus"]


def create_model(architecture: str, encoder: str, in_channels: int, classes: int = 1,
                 encoder_weights: str | None = None, **kwargs) -> torch.nn.Module:
    """An smp segmentation network; encoder weights only from a local file (no hub downloads)."""
    if architecture not in ARCHITECTURES:
        raise InputError(f"Unknown architecture '{architecture}'; choose one of {', '.join(ARCHITECTURES)}.")
    smp = _smp()
    try:
        model = getattr(smp, architecture)(encoder_name=encoder, encoder_weights=None, in_channels=in_channels,
                                           classes=classes, **kwargs)
    except (KeyError, ValueError, TypeError) as exc:
        raise InputError(f"Cannot build {architecture} with encoder '{encoder}': {exc}") from None
    if encoder_weights:
        load_encoder_weights(model, encoder_weights)
    return model


def load_encoder_weights(model: torch.nn.Module, path: str) -> None:
    """Load pre-trained encoder weights from a local .safetensors or .pth file (tensors only, no pickle code)."""
    if not os.path.exists(path):
        raise InputError(f"Encoder weights file '{path}' does not exist.")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any failure is a bad file for the person
            raise InputError(f"Encoder weights '{path}' could not be read as plain tensors: {exc}") from None
    own = model.encoder.state_dict()
    # Keep tensors that fit; the first convolution differs when the band count is not 3.
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not fitting:
        raise InputError(f"No tensor in '{path}' fits the encoder; is it for another encoder?")
    model.encoder.load_state_dict(fitting, strict=False)


# ------------------------------------------------------------------------------------------------ losses
# Every loss takes logits (N,1,H,W), target (N,1,H,W) in {0,1} and a valid mask (N,1,H,W); ignored pixels
# (nodata, unlabelled ground) contribute nothing.

def _masked_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return (values * valid).sum() / valid.sum().clamp_min(1.0)


def bce_loss(logits, target, valid, pos_weight: float = 1.0):
    weight = torch.where(target > 0.5, torch.full_like(target, pos_weight), torch.ones_like(target))
    return _masked_mean(F.binary_cross_entropy_with_logits(logits, target, reduction="none") * weight, valid)


def _soft_counts(logits, target, valid):
    p = torch.sigmoid(logits) * valid
    t = target * valid
    tp = (p * t).sum()
    return tp, (p * (1 - t)).sum(), ((1 - p) * t * valid).sum()


def dice_loss(logits, target, valid, smooth: float = 1.0):
    tp, fp, fn = _soft_counts(logits, target, valid)
    return 1 - (2 * tp + smooth) / (2 * tp + fp + fn + smooth)


def jaccard_loss(logits, target, valid, smooth: float = 1.0):
    tp, fp, fn = _soft_counts(logits, target, valid)
    return 1 - (tp + smooth) / (tp + fp + fn + smooth)


def tversky_loss(logits, target, valid, alpha: float = 0.3, beta: float = 0.7, smooth: float = 1.0):
    tp, fp, fn = _soft_counts(logits, target, valid)
    return 1 - (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)


def focal_tversky_loss(logits, target, valid, gamma: float = 0.75):
    return tversky_loss(logits, target, valid).clamp_min(0) ** gamma


def focal_loss(logits, target, valid, gamma: float = 2.0, alpha: float = 0.25):
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = torch.exp(-bce)
    a_t = alpha * target + (1 - alpha) * (1 - target)
    return _masked_mean(a_t * (1 - p_t) ** gamma * bce, valid)


LOSSES: dict[str, Callable] = {
    "bce": bce_loss,
    "dice": dice_loss,
    "bce_dice": lambda lo, t, v: bce_loss(lo, t, v) + dice_loss(lo, t, v),
    "focal": focal_loss,
    "jaccard": jaccard_loss,
    "tversky": tversky_loss,
    "focal_tversky": focal_tversky_loss,
    # The generalised-CNN study: 0.2·BCE (landslide class weight 5) + 0.8·focal Tversky.
    "bce_focal_tversky": lambda lo, t, v: 0.2 * bce_loss(lo, t, v, pos_weight=5.0) + 0.8 * focal_tversky_loss(lo, t, v),
}


def get_loss(name: str) -> Callable:
    if name not in LOSSES:
        raise InputError(f"Unknown loss '{name}'; choose one of {', '.join(LOSSES)}.")
    return LOSSES[name]
