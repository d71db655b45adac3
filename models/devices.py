"""Where networks run: the device a user gets by default (CUDA when present), and mixed precision on GPUs."""
from __future__ import annotations

import torch

from ..common.errors import InputError


def pick_device(device: str = "auto") -> torch.device:
    """`auto` → CUDA when available, else CPU; explicit `cuda` without a GPU is a clear error."""
    if device in ("", "auto", None):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("Device 'cuda' was requested but PyTorch sees no CUDA GPU here; use 'auto' or 'cpu'.")
    return torch.device(device)


def autocast(device: torch.device):
    """bfloat16 (or float16) autocast on CUDA; a disabled no-op on the CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    return torch.autocast("cpu", enabled=False)


def grad_scaler(device: torch.device):
    """Loss scaling for float16 mixed precision (CUDA without bfloat16); a disabled no-op elsewhere."""
    fp16 = device.type == "cuda" and not torch.cuda.is_bf16_supported()
    return torch.amp.GradScaler("cuda", enabled=fp16)
