"""Architectures and losses, built by name (read it in one screen, like smp's own registry)."""
from __future__ import annotations

import os
from typing import Callable

import torch
import torch.nn.functional as F

from ..common.errors import InputError


def _smp():
    import segmentation_models_pytorch as smp

    return smp


SMP_ARCHITECTURES = ["Unet", "UnetPlusPlus", "MAnet", "Linknet", "FPN", "PSPNet", "PAN", "DeepLabV3",
                     "DeepLabV3Plus"]
ARCHITECTURES = SMP_ARCHITECTURES + ["ResUNet"]
# Networks with a batch-norm layer after global pooling: a training batch needs ≥ 2 samples.
NEEDS_BATCH_OF_TWO = {"PAN", "DeepLabV3", "DeepLabV3Plus"}


def create_model(architecture: str, encoder: str, in_channels: int, classes: int = 1,
                 encoder_weights: str | None = None, **kwargs) -> torch.nn.Module:
    """A segmentation network by name; encoder weights only from a local file (no hub downloads).

    `encoder` is ignored by ResUNet (it has its own encoder; its width comes from `filters`).
    """
    if architecture not in ARCHITECTURES:
        raise InputError(f"Unknown architecture '{architecture}'; choose one of {', '.join(ARCHITECTURES)}.")
    if architecture == "ResUNet":
        from .resunet import ResUNet

        try:
            return ResUNet(in_channels, classes, **kwargs)
        except (TypeError, ValueError) as exc:
            raise InputError(f"Cannot build ResUNet with {kwargs}: {exc}") from None
    smp = _smp()
    kwargs = dict(kwargs)
    depth = kwargs.get("encoder_depth")
    # smp's output upsampling assumes the default encoder depth; keep the output the size of the input.
    if depth is not None and "upsampling" not in kwargs:
        if architecture == "FPN":
            kwargs["upsampling"] = 2 ** (int(depth) - 3)
        elif architecture == "PSPNet":
            kwargs["upsampling"] = 2 ** int(depth)
    try:
        model = getattr(smp, architecture)(encoder_name=encoder, encoder_weights=None, in_channels=in_channels,
                                           classes=classes, **kwargs)
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise InputError(f"Cannot build {architecture} with encoder '{encoder}': {exc}") from None
    if encoder_weights:
        load_encoder_weights(model, encoder_weights)
    return model


def compact_kwargs(architecture: str, encoder_depth: int = 3, width: int = 8) -> dict:
    """Settings for a small, fast network of each architecture (CPU training, ensembles, tests).

    `width` scales the decoder (Unet-like decoders get width·2^k channels per level, others width·4).
    """
    d, w = int(encoder_depth), int(width)
    ladder = [w * 2 ** k for k in reversed(range(d))]  # e.g. depth 3, width 8 → [32, 16, 8]
    if architecture in ("Unet", "UnetPlusPlus"):
        return {"encoder_depth": d, "decoder_channels": ladder}
    if architecture == "MAnet":
        return {"encoder_depth": d, "decoder_channels": ladder, "decoder_pab_channels": 2 * w}
    if architecture == "Linknet":
        return {"encoder_depth": d}
    if architecture == "FPN":  # group norm of 32 groups: segmentation channels must be a multiple of 32
        return {"encoder_depth": d, "decoder_pyramid_channels": 4 * w,
                "decoder_segmentation_channels": max(32, 32 * round(2 * w / 32))}
    if architecture == "PSPNet":
        return {"encoder_depth": d, "psp_out_channels": 4 * w}
    if architecture in ("PAN", "DeepLabV3", "DeepLabV3Plus"):
        return {"encoder_depth": d, "decoder_channels": 4 * w}
    if architecture == "ResUNet":
        return {"filters": [2 * w * 2 ** k for k in range(d + 1)]}
    raise InputError(f"Unknown architecture '{architecture}'; choose one of {', '.join(ARCHITECTURES)}.")


MAX_DECODER_CHANNELS = 4096  # channels of one decoder block: wider ones would not fit in memory anyway


def model_kwargs_for(architecture: str, encoder_depth: int = 5, decoder_channels: list[int] | None = None) -> dict:
    """model_kwargs from the user-facing knobs: depth 5 = the architecture's defaults; a smaller depth gives the
    compact network of that depth (decoder width 16); explicit decoder channels apply to U-Net-like decoders."""
    kwargs = {} if int(encoder_depth) == 5 else compact_kwargs(architecture, encoder_depth, width=16)
    if decoder_channels:
        if architecture not in ("Unet", "UnetPlusPlus", "MAnet"):
            raise InputError(f"Decoder channels can be set for Unet, UnetPlusPlus and MAnet (DECODER_CHANNELS), not "
                             f"{architecture}.")
        if len(decoder_channels) != int(encoder_depth):
            raise InputError(f"Give one decoder channel count per encoder level (DECODER_CHANNELS): {encoder_depth} "
                             f"numbers for encoder depth {encoder_depth}, not {len(decoder_channels)}.")
        if not all(float(c).is_integer() and 1 <= c <= MAX_DECODER_CHANNELS for c in decoder_channels):
            raise InputError(f"Decoder channels (DECODER_CHANNELS) must be whole numbers from 1 to "
                             f"{MAX_DECODER_CHANNELS}, not {','.join(str(c) for c in decoder_channels)}; e.g. "
                             f"'256,128,64,32,16' for encoder depth 5.")
        kwargs["decoder_channels"] = [int(c) for c in decoder_channels]
        if int(encoder_depth) != 5:
            kwargs["encoder_depth"] = int(encoder_depth)
    return kwargs


def load_encoder_weights(model: torch.nn.Module, path: str) -> None:
    """Load pre-trained encoder weights from a local .safetensors or .pth file (tensors only, no pickle code)."""
    if not os.path.exists(path):
        raise InputError(f"Encoder weights file '{path}' does not exist.")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        try:
            state = load_file(path)
        except Exception as exc:  # noqa: BLE001 - a damaged or foreign file is the person's to replace
            raise InputError(f"Encoder weights '{path}' (ENCODER_WEIGHTS) are not a readable safetensors file "
                             f"({str(exc)[:160]}); give the encoder's weights as .safetensors or .pth.") from None
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


def lovasz_hinge_loss(logits, target, valid):
    """Lovász hinge (Berman et al. 2018): a convex surrogate of 1 − IoU over all valid pixels of the batch."""
    keep = valid.reshape(-1) > 0
    lo, t = logits.reshape(-1)[keep], target.reshape(-1)[keep]
    if lo.numel() == 0:
        return logits.sum() * 0.0
    errors = 1.0 - lo * (2.0 * t - 1.0)
    errors_sorted, order = torch.sort(errors, descending=True, stable=True)
    t_sorted = t[order]
    positives = t_sorted.sum()
    intersection = positives - t_sorted.cumsum(0)
    union = positives + (1.0 - t_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    grad = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
    return torch.dot(F.relu(errors_sorted), grad)


# name → (function(logits, target, valid, positive_weight), default landslide class weight)
_LOSSES: dict[str, tuple[Callable, float]] = {
    "bce": (lambda lo, t, v, pw: bce_loss(lo, t, v, pos_weight=pw), 1.0),
    "dice": (lambda lo, t, v, pw: dice_loss(lo, t, v), 1.0),
    "bce_dice": (lambda lo, t, v, pw: bce_loss(lo, t, v, pos_weight=pw) + dice_loss(lo, t, v), 1.0),
    "focal": (lambda lo, t, v, pw: focal_loss(lo, t, v), 1.0),
    "jaccard": (lambda lo, t, v, pw: jaccard_loss(lo, t, v), 1.0),
    "lovasz": (lambda lo, t, v, pw: lovasz_hinge_loss(lo, t, v), 1.0),
    "tversky": (lambda lo, t, v, pw: tversky_loss(lo, t, v), 1.0),
    "focal_tversky": (lambda lo, t, v, pw: focal_tversky_loss(lo, t, v), 1.0),
    # The generalised-CNN study: 0.2·BCE (class weight landslide 5, others 1) + 0.8·focal Tversky.
    "bce_focal_tversky": (lambda lo, t, v, pw: 0.2 * bce_loss(lo, t, v, pos_weight=pw)
                          + 0.8 * focal_tversky_loss(lo, t, v), 5.0),
}
LOSSES = list(_LOSSES)
DEEP_SUPERVISION_WEIGHT = 0.5  # weight of the mean auxiliary loss next to the main loss


def get_loss(name: str, positive_weight: float | None = None) -> Callable:
    """Loss by name: f(logits, target, valid) → scalar; `positive_weight` weighs landslide pixels in BCE terms.

    Networks with deep supervision return (main, aux, …) in training; the loss then adds the mean auxiliary loss.
    """
    if name not in _LOSSES:
        raise InputError(f"Unknown loss '{name}'; choose one of {', '.join(LOSSES)}.")
    fn, default_weight = _LOSSES[name]
    pw = float(default_weight if positive_weight is None else positive_weight)

    def loss(output, target, valid):
        if isinstance(output, (tuple, list)):
            main, aux = output[0], output[1:]
            total = fn(main.float(), target, valid, pw)
            if aux:
                total = total + DEEP_SUPERVISION_WEIGHT * sum(fn(a.float(), target, valid, pw) for a in aux) / len(aux)
            return total
        return fn(output.float(), target, valid, pw)

    loss.__name__ = name
    return loss


# ------------------------------------------------------------------------------------------ multi-class losses
# Every multi-class loss takes logits (N,C,H,W) and a target (N,H,W) of channel indexes 0…C−1 (int64), with
# `ignore_index` where the pixel is nodata or unlabelled (it contributes nothing); `weights` (C,) weigh classes.
IGNORE_INDEX = 255


def multiclass_ce_loss(logits, target, weights=None, ignore_index: int = IGNORE_INDEX):
    """Cross-entropy with softmax, class weights and ignored pixels (mean over the weights of valid pixels)."""
    if not (target != ignore_index).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits, target, weight=weights, ignore_index=ignore_index)


def _one_hot_valid(logits, target, ignore_index):
    valid = (target != ignore_index)
    safe = torch.where(valid, target, torch.zeros_like(target))
    onehot = F.one_hot(safe, logits.shape[1]).permute(0, 3, 1, 2).to(logits.dtype)
    v = valid.unsqueeze(1).to(logits.dtype)
    return torch.softmax(logits, dim=1) * v, onehot * v


def multiclass_dice_loss(logits, target, weights=None, ignore_index: int = IGNORE_INDEX, smooth: float = 1.0):
    """1 − soft Dice averaged over the classes present in the batch's truth (weighted by `weights`)."""
    p, t = _one_hot_valid(logits, target, ignore_index)
    dims = (0, 2, 3)
    inter, total, present = (p * t).sum(dims), (p + t).sum(dims), t.sum(dims) > 0
    dice = (2 * inter + smooth) / (total + smooth)
    w = (weights if weights is not None else torch.ones_like(dice)) * present
    if w.sum() <= 0:
        return logits.sum() * 0.0
    return 1 - (dice * w).sum() / w.sum()


def multiclass_focal_loss(logits, target, weights=None, ignore_index: int = IGNORE_INDEX, gamma: float = 2.0):
    """Focal loss (Lin et al. 2017) over the softmax: (1 − p_t)^γ · weighted cross-entropy, mean over valid pixels."""
    valid = target != ignore_index
    if not valid.any():
        return logits.sum() * 0.0
    ce = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="none")
    p_t = torch.exp(-ce)
    w = weights[torch.where(valid, target, torch.zeros_like(target))] if weights is not None else torch.ones_like(ce)
    return ((1 - p_t) ** gamma * ce * w)[valid].sum() / w[valid].sum().clamp_min(1e-6)


# Multi-class loss per LOSS name: the binary names map to their softmax counterparts (bce → ce), so LOSS keeps one
# list of choices; the others have no multi-class form here.
_MULTICLASS_LOSSES: dict[str, Callable] = {
    "ce": multiclass_ce_loss,
    "bce": multiclass_ce_loss,
    "dice": multiclass_dice_loss,
    "ce_dice": lambda lo, t, w, i: multiclass_ce_loss(lo, t, w, i) + multiclass_dice_loss(lo, t, w, i),
    "bce_dice": lambda lo, t, w, i: multiclass_ce_loss(lo, t, w, i) + multiclass_dice_loss(lo, t, w, i),
    "focal": multiclass_focal_loss,
}
MULTICLASS_LOSSES = list(_MULTICLASS_LOSSES)


def get_multiclass_loss(name: str, class_weights=None, ignore_index: int = IGNORE_INDEX) -> Callable:
    """Multi-class loss by name: f(logits (N,C,H,W), target (N,H,W) int64) → scalar; deep supervision as `get_loss`.

    `class_weights`: one weight per channel (e.g. inverse class frequency), or None for equal weights."""
    if name not in _MULTICLASS_LOSSES:
        raise InputError(f"Loss '{name}' has no multi-class form (LOSS); for TASK multiclass choose one of "
                         f"{', '.join(MULTICLASS_LOSSES)} (bce and bce_dice mean cross-entropy and cross-entropy + "
                         f"Dice there).")
    fn = _MULTICLASS_LOSSES[name]
    weights = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
    if weights is not None and (weights.ndim != 1 or not torch.isfinite(weights).all() or (weights < 0).any()
                                or weights.sum() <= 0):
        raise InputError(f"Class weights (CLASS_WEIGHTS) must be finite numbers ≥ 0, one per class, not all 0; got "
                         f"{class_weights}.")

    def loss(output, target):
        w = weights.to(target.device) if weights is not None else None
        if isinstance(output, (tuple, list)):
            main, aux = output[0], output[1:]
            total = fn(main.float(), target, w, ignore_index)
            if aux:
                total = total + DEEP_SUPERVISION_WEIGHT * sum(fn(a.float(), target, w, ignore_index)
                                                              for a in aux) / len(aux)
            return total
        return fn(output.float(), target, w, ignore_index)

    loss.__name__ = name
    return loss
