"""Run a package's networks with ONNX Runtime on the CPU: exported once, cached beside the package.

ONNX Runtime's CPU kernels are faster than eager PyTorch for these convolutional networks; the exported graph
computes the same function (checked against torch in the tests), so this is a speed-up, never a different model.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from ..common.outputs import make_folder

OPSET = 17
# ORT's CPU arena keeps its largest footprint for the life of the session (and rounds growth up to powers of
# two); without it, freed tensors go back to the system: peak memory ~25 % lower at the same speed (issue 17).
ARENA = False


def available() -> bool:
    try:
        import onnxruntime  # noqa: F401 - only whether it imports matters
    except ImportError:
        return False
    return True


_DIGESTS: dict[tuple, str] = {}  # (path, size, mtime) -> digest: hashing a large package costs a read of it


def _package_digest(path: Path) -> str:
    """Cache key: the package bytes, the exporter, and the code that builds the networks (models/*.py)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = _hash_package(path)
    return _DIGESTS[key]


def _hash_package(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    for source in sorted(Path(__file__).resolve().parent.glob("*.py")):
        h.update(source.read_bytes())
    h.update(f"{torch.__version__}/{OPSET}".encode())
    return h.hexdigest()[:16]


def cache_folder(package_path: Path) -> Path:
    """`<package>.onnx/` beside the package, or the user cache when the package folder is read-only."""
    beside = package_path.with_name(package_path.name + ".onnx")
    if os.access(package_path.parent, os.W_OK):
        return beside
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "landslide_mapper" / "onnx"
    return root / package_path.stem


def export(model: torch.nn.Module, in_channels: int, path: Path) -> Path:
    """Export a network with dynamic batch, height and width; written to a temp file, then renamed."""
    from ..common.outputs import atomic_output

    model = model.to("cpu").eval()
    example = torch.zeros(1, in_channels, 64, 64)
    dims = {0: "batch", 2: "height", 3: "width"}
    # a cache of the package: a run that fails removes it with the package it may have just written
    with atomic_output(path) as tmp, torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(model, example, str(tmp), input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": dims, "logits": dims}, opset_version=OPSET, dynamo=False)
    return path


_SESSIONS: dict[tuple, object] = {}  # kept per process: building a session costs about a second


def sessions(package, threads: int | None = None, log=None) -> list:
    """One session per ensemble member (exporting any that are not cached yet), reused within the process."""
    import warnings

    import onnxruntime as ort

    folder = cache_folder(Path(package.path))
    make_folder(folder)
    digest = _package_digest(Path(package.path))
    workers = threads or torch.get_num_threads()
    out = []
    for i, net in enumerate(package.networks):
        path = folder / f"{digest}-member{i}.onnx"
        if not path.exists():  # the torch network is only touched to export it
            if log:
                log(f"Exporting network {i + 1} to ONNX for faster CPU inference (once): {path}")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                export(net, len(package.input_bands), path)
        key = (str(path), workers)
        if key not in _SESSIONS:
            options = ort.SessionOptions()
            options.intra_op_num_threads = workers
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.enable_cpu_mem_arena = ARENA  # without the arena, tensors go back to the system when freed
            _SESSIONS[key] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        out.append(_SESSIONS[key])
    return out


def run(session, x: np.ndarray) -> np.ndarray:
    """Logits (N, 1, H, W) for normalised tiles (N, C, H, W)."""
    return session.run(None, {"x": np.ascontiguousarray(x, dtype=np.float32)})[0]


# ------------------------------------------------------------------------------------------ int8 (optional)
INT8_F1_TOLERANCE = 0.005  # int8 graphs are used only when validation F1 stays within this of float32
INT8_MIN_SPEEDUP = 0.9  # ... and only when they run in under 90 % of float32's time
INT8_CHIPS = 48  # validation chips used to calibrate and score (bounded: the decision is made once per package)


def _decision_path(package) -> Path:
    return cache_folder(Path(package.path)) / f"{_package_digest(Path(package.path))}-int8.json"


def int8_decision(package) -> dict | None:
    """The stored int8 decision for this package ({"int8": bool, "f1_float32", "f1_int8", ...}), if made."""
    import json

    path = _decision_path(package)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _f1(sessions_, weights, x, labels, threshold) -> float:
    prob = np.zeros(labels.shape, np.float64)
    for session, weight in zip(sessions_, weights):
        for s in range(0, len(x), 8):
            logits = run(session, x[s:s + 8])[:, 0]
            prob[s:s + 8] += weight / sum(weights) * 0.5 * (1.0 + np.tanh(0.5 * logits))
    keep = labels != 255
    pred, truth = prob[keep] >= threshold, labels[keep] == 1
    tp = np.count_nonzero(pred & truth)
    denominator = np.count_nonzero(pred) + np.count_nonzero(truth)
    return 2.0 * tp / denominator if denominator else 1.0


def quantize(package, x: np.ndarray, labels: np.ndarray, threads: int | None = None, log=None) -> dict | None:
    """Build int8 graphs (static QDQ quantisation calibrated on validation chips `x`, normalised, N×C×H×W, with
    `labels` 0/1/255), score both precisions on them and store the decision in the ONNX cache (never in the
    package). Tree members (pixel baselines) are exact comparisons that int8 would move: they stay float32.
    """
    import json

    from ..common.outputs import atomic_output

    if any(m.get("kind") == "pixel_baseline" for m in package.manifest["members"]):
        return None
    float_sessions = sessions(package, threads, log=log)
    folder = cache_folder(Path(package.path))
    digest = _package_digest(Path(package.path))
    paths = [folder / f"{digest}-member{i}.int8.onnx" for i in range(len(float_sessions))]
    for i, path in enumerate(paths):
        if not path.exists():
            _quantize_graph(folder / f"{digest}-member{i}.onnx", path, x)
    weights = [float(m.get("weight", 1.0)) for m in package.manifest["members"]]
    int8_sessions_ = [_session(p, threads) for p in paths]
    f1_32 = _f1(float_sessions, weights, x, labels, package.threshold)
    f1_8 = _f1(int8_sessions_, weights, x, labels, package.threshold)
    # int8 is not always faster (QDQ graphs of some networks run slower than float32 on some CPUs): time both.
    s32, s8 = _seconds(float_sessions, x), _seconds(int8_sessions_, x)
    decision = {"int8": bool(f1_8 >= f1_32 - INT8_F1_TOLERANCE and s8 < INT8_MIN_SPEEDUP * s32),
                "f1_float32": round(f1_32, 5), "f1_int8": round(f1_8, 5), "seconds_float32": round(s32, 4),
                "seconds_int8": round(s8, 4), "validation_chips": len(x), "tolerance": INT8_F1_TOLERANCE}
    with atomic_output(_decision_path(package)) as tmp:  # removed with the package by a run that fails
        Path(tmp).write_text(json.dumps(decision))
    if log:
        log(f"int8 ONNX graph {'kept' if decision['int8'] else 'not used'}: validation F1 {f1_8:.4f} against "
            f"{f1_32:.4f} in float32 on {len(x)} chips (tolerance {INT8_F1_TOLERANCE}).")
    return decision


def _seconds(sessions_, x: np.ndarray) -> float:
    """Best of 3 forwards of one 256² tile laid out from the chips (speed depends on the tile size, not the chips')."""
    import time

    n, _, h, w = x.shape
    down, across = -(-256 // h), -(-256 // w)
    chips = [x[i % n] for i in range(down * across)]
    grid = np.concatenate([np.concatenate(chips[r * across:(r + 1) * across], axis=2) for r in range(down)], axis=1)
    tile = np.ascontiguousarray(grid[None, :, :256, :256], dtype=np.float32)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for session in sessions_:
            run(session, tile)
        best = min(best, time.perf_counter() - started)
    return best


def _quantize_graph(source: Path, path: Path, calibration: np.ndarray) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from ..common.outputs import atomic_output

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"x": calibration[s:s + 8]} for s in range(0, len(calibration), 8)])

        def get_next(self):
            return next(self.batches, None)

    with atomic_output(path) as tmp:  # a cache of the package: removed with it by a run that fails
        quantize_static(str(source), str(tmp), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


def _session(path: Path, threads: int | None):
    import onnxruntime as ort

    workers = threads or torch.get_num_threads()
    key = (str(path), workers)
    if key not in _SESSIONS:
        options = ort.SessionOptions()
        options.intra_op_num_threads = workers
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.enable_cpu_mem_arena = ARENA
        _SESSIONS[key] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return _SESSIONS[key]


def int8_sessions(package, threads: int | None = None) -> list | None:
    """int8 sessions when the stored decision chose them, else None (float32)."""
    decision = int8_decision(package)
    if not decision or not decision.get("int8"):
        return None
    folder = cache_folder(Path(package.path))
    digest = _package_digest(Path(package.path))
    paths = [folder / f"{digest}-member{i}.int8.onnx" for i in range(len(package.networks))]
    if not all(p.exists() for p in paths):
        return None
    return [_session(p, threads) for p in paths]
