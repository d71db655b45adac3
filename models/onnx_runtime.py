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


def available() -> bool:
    try:
        import onnxruntime  # noqa: F401 - only whether it imports matters
    except ImportError:
        return False
    return True


def _package_digest(path: Path) -> str:
    """Cache key: the package bytes, the exporter, and the code that builds the networks (models/*.py)."""
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
    from ..core.outputs import atomic_output

    model = model.to("cpu").eval()
    example = torch.zeros(1, in_channels, 64, 64)
    dims = {0: "batch", 2: "height", 3: "width"}
    # a cache: kept even when the prediction that made it fails later
    with atomic_output(path, undo_with_run=False) as tmp, torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(model, example, str(tmp), input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": dims, "logits": dims}, opset_version=OPSET, dynamo=False)
    return path


_SESSIONS: dict[tuple, object] = {}  # kept per process: building a session costs about a second


def sessions(package, threads: int | None = None, log=None) -> list:
    """One session per ensemble member (exporting any that are not cached yet), reused within the process."""
    import warnings

    import onnxruntime as ort

    folder = cache_folder(Path(package.path))
    folder.mkdir(parents=True, exist_ok=True)
    digest = _package_digest(Path(package.path))
    workers = threads or torch.get_num_threads()
    out = []
    for i, (model, _) in enumerate(package.members("cpu")):
        path = folder / f"{digest}-member{i}.onnx"
        if not path.exists():
            if log:
                log(f"Exporting network {i + 1} to ONNX for faster CPU inference (once): {path}")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                export(model, len(package.input_bands), path)
        key = (str(path), workers)
        if key not in _SESSIONS:
            options = ort.SessionOptions()
            options.intra_op_num_threads = workers
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            _SESSIONS[key] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        out.append(_SESSIONS[key])
    return out


def run(session, x: np.ndarray) -> np.ndarray:
    """Logits (N, 1, H, W) for normalised tiles (N, C, H, W)."""
    return session.run(None, {"x": np.ascontiguousarray(x, dtype=np.float32)})[0]
