"""Running the networks over tiles: ONNX Runtime on the CPU (int8 where it keeps F1), PyTorch on the GPU, ensemble
members averaged with their weights, optional flips (TTA)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...common.definitions import ENGINES
from ...common.errors import InputError
from ...models import onnx_runtime
from ..chips import load_chips
from ...models.devices import autocast

RUN_PIXELS = 1 << 20  # pixels per network call: 1024² tiles one by one, 256² tiles 16 at a time


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (0.5 * (1.0 + np.tanh(0.5 * x))).astype(np.float32)  # no overflow for large |x|


def _softmax(x: np.ndarray) -> np.ndarray:
    """Class probabilities over axis 1 of logits (N, K, H, W)."""
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def tile_runner(package, device: torch.device, tta: bool, engine: str, log):
    """(run, engine name): run maps normalised tiles (N, C, H, W) to landslide probability (N, H, W), or for a
    multi-class package to class probabilities (N, K, H, W) (softmax, channel k = the package's classes[k]).

    Members of an ensemble are averaged with their weights (the global study's pixel-wise mean); with TTA each
    member also sees the tiles flipped, and the flips are undone before averaging (class probabilities alike).
    """
    if engine not in ENGINES:
        raise InputError(f"Unknown inference engine '{engine}'; choose one of {', '.join(ENGINES)}.")
    use_onnx = device.type == "cpu" and engine in ("auto", "onnx")
    if use_onnx and not onnx_runtime.available():
        if engine == "onnx":
            raise InputError("ONNX Runtime is not installed in this Python; install it (pip install onnxruntime) "
                             "or choose the torch engine.")
        log("ONNX Runtime is not installed: running the network with PyTorch, which is slower on the CPU "
            "(pip install onnxruntime to speed it up).")
        use_onnx = False
    weights = [float(m.get("weight", 1.0)) for m in package.manifest["members"]]
    precision = ""
    if use_onnx:
        chosen = _int8_sessions(package, log)
        precision = ", int8" if chosen else ""
        chosen = chosen or onnx_runtime.sessions(package, log=log)
        forwards = [lambda x, s=s: onnx_runtime.run(s, x) for s in chosen]
    else:
        def torch_forward(model):
            def forward(x):
                with torch.inference_mode(), autocast(device):
                    return model(torch.from_numpy(x).to(device, non_blocking=True)).float().cpu().numpy()
            return forward

        forwards = [torch_forward(model) for model, _ in package.members(device)]
    flips = [()] + ([(-1,), (-2,), (-1, -2)] if tta else [])  # a flip is its own inverse
    scale = 1.0 / (sum(weights) * len(flips))

    # A network call sees at most RUN_PIXELS pixels: large tiles go one at a time (the network's activations, not
    # the batch size, then bound the memory), small tiles stay batched.
    n_classes = len(package.manifest["classes"]) if getattr(package, "is_multiclass", False) else 0

    def run(x: np.ndarray) -> np.ndarray:
        if n_classes:
            return run_classes(x)
        prob = np.zeros((x.shape[0], x.shape[2], x.shape[3]), dtype=np.float32)
        step = max(1, RUN_PIXELS // (x.shape[2] * x.shape[3]))
        for forward, weight in zip(forwards, weights):
            for axes in flips:
                for s in range(0, x.shape[0], step):
                    xs = x[s:s + step]
                    xi = np.ascontiguousarray(np.flip(xs, axes)) if axes else xs
                    p = _sigmoid(forward(xi)[:, 0])
                    prob[s:s + step] += (np.flip(p, axes) if axes else p) * (weight * scale)
        return prob

    def run_classes(x: np.ndarray) -> np.ndarray:
        prob = np.zeros((x.shape[0], n_classes, x.shape[2], x.shape[3]), dtype=np.float32)
        step = max(1, RUN_PIXELS // (x.shape[2] * x.shape[3]))
        for forward, weight in zip(forwards, weights):
            for axes in flips:
                for s in range(0, x.shape[0], step):
                    xs = x[s:s + step]
                    xi = np.ascontiguousarray(np.flip(xs, axes)) if axes else xs
                    p = _softmax(forward(xi)[:, :n_classes])
                    prob[s:s + step] += (np.flip(p, axes) if axes else p) * (weight * scale)
        return prob

    return run, "ONNX Runtime" + precision if use_onnx else "PyTorch"


def _int8_sessions(package, log):
    """int8 ONNX sessions when the package's validation chips showed they keep F1 within INT8_F1_TOLERANCE.

    The decision is measured once, when the package's chip folder (its provenance) is at hand, and stored in the
    ONNX cache; without chips, or when int8 costs F1, prediction runs in float32.
    """
    if getattr(package, "is_multiclass", False):
        return None  # the int8 decision scores landslide F1; a multi-class network runs in float32
    decision = onnx_runtime.int8_decision(package)
    if decision is None:
        data = validation_chips(package, (package.manifest.get("provenance") or {}).get("chips"))
        if data is None:
            return None
        try:
            decision = onnx_runtime.quantize(package, *data, log=log)
        except Exception as exc:  # noqa: BLE001 - a failed quantisation only means float32
            log(f"int8 ONNX graph not built ({type(exc).__name__}: {str(exc)[:200]}); running in float32.")
            return None
    return onnx_runtime.int8_sessions(package) if decision and decision.get("int8") else None


def predict_tiles(run_tiles, x: np.ndarray, offsets, tile_h: int, tile_w: int) -> np.ndarray:
    """Probabilities (N, tile_h, tile_w) of the tiles starting at column `offsets` of a (C, ≤tile_h, W) window."""
    c, h, w = x.shape
    need_w = offsets[-1] + tile_w
    if h < tile_h or w < need_w:  # raster smaller than a tile: zero-pad (the normalised mean), crop afterwards
        x = np.pad(x, ((0, 0), (0, max(0, tile_h - h)), (0, max(0, need_w - w))))
    return run_tiles(np.stack([x[:, :tile_h, o:o + tile_w] for o in offsets]))


def validation_chips(package, chips) -> tuple[np.ndarray, np.ndarray] | None:
    """Normalised validation images (N, C, H, W) and labels (N, H, W) 0/1/255 from a chip folder, at most INT8_CHIPS."""
    if chips is None or not Path(chips).is_dir():
        return None
    try:
        chipset = load_chips(chips, max_bytes=1 << 30)  # a larger folder: float32 (bounded memory)
    except InputError:
        return None
    if list(chipset.bands) != list(package.input_bands):
        return None
    images, labels = chipset.subset("validation")
    if not len(images) or not (labels == 1).any():
        return None
    pick = np.linspace(0, len(images) - 1, min(onnx_runtime.INT8_CHIPS, len(images))).round().astype(int)
    mean, std = package.normalization()
    x = (images[pick] - mean[None, :, None, None]) / std[None, :, None, None]
    return np.nan_to_num(x, nan=0.0).astype(np.float32), labels[pick]
