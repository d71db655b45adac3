"""Prediction memory (issue 17): peak memory of predict must not grow with the raster.

Each size runs in a fresh Python process that reads its own peak resident set (VmHWM in /proc/self/status) at the
end; `ru_maxrss` of a child is not used because a child inherits its parent's peak across fork/exec. Both sizes use
the same cheap network (a small ResUNet, so the 20000² case runs in minutes), the same engine (ONNX Runtime when
installed), the package's tiling and batch 4. Printed: both peaks and `predict/rss-20k-vs-2k ratio`.
Throughput is measured in the inference benchmark (`make bench BENCH=inference`).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

BANDS = ["pre_VV", "post_VV", "dNDVI"]
CHEAP_MODEL = {"filters": [2, 4]}  # ResUNet: cheap enough that 400 Mpx take minutes on 2 cores
TILE, OVERLAP = 1024, 64  # the shipped defaults (models/package.PREDICTION_TILE / PREDICTION_OVERLAP)


def make_stack(path: Path, size: int, block: int = 2048) -> Path:
    """A smooth synthetic 3-band uint8 stack written window by window (content does not change the cost)."""
    from landslide_mapper.core import raster
    from rasterio.transform import from_origin

    if path.exists():
        return path
    with raster.create_raster(path, width=size, height=size, crs="EPSG:32632",
                              transform=from_origin(400000, 7000000, 10, 10), dtype="uint8",
                              descriptions=BANDS, fast=True) as dst:
        for win in raster.block_windows(size, size, block):
            rows = np.arange(win.row_off, win.row_off + win.height, dtype=np.float32)[:, None]
            cols = np.arange(win.col_off, win.col_off + win.width, dtype=np.float32)[None, :]
            base = 127 + 100 * np.sin(rows / 97.0) * np.cos(cols / 131.0)
            dst.write(np.stack([base, base * 0.5, 255 - base]).astype(np.uint8), window=win)
    return path


def make_package(path: Path) -> Path:
    import torch

    from landslide_mapper.models.package import make_manifest, write_package
    from landslide_mapper.models.registry import create_model

    torch.manual_seed(0)
    net = create_model("ResUNet", "none", len(BANDS), **CHEAP_MODEL)
    manifest = make_manifest(
        members=[{"architecture": "ResUNet", "encoder": "none", "model_kwargs": CHEAP_MODEL,
                  "weights": "weights.safetensors", "weight": 1.0}],
        input_bands=BANDS, band_stats=[{"name": b, "mean": 127.0, "std": 60.0} for b in BANDS],
        tile_size=TILE, overlap=OVERLAP, threshold=0.5, classes=[], pixel_size=(10.0, 10.0))
    return write_package(path, manifest, [net.state_dict()])


CHILD = """
import json, sys, time
from landslide_mapper.core.predict import sliding_window_predict
from landslide_mapper.models.package import read_package
pkg = read_package(sys.argv[1])
t = time.perf_counter()
r = sliding_window_predict(pkg, sys.argv[2], sys.argv[3], sys.argv[4], batch_size=4, device="cpu")
seconds = time.perf_counter() - t
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
print(json.dumps({"seconds": seconds, "hwm_mb": int(status["VmHWM"].split()[0]) / 1024, "tiles": r.tiles,
                  "tile": r.tile_size[0], "engine": r.engine}))
"""


def child_predict(package: Path, stack: Path, out: Path) -> dict:
    """Predict in a fresh Python process (the plugin importable as in bench.py); its VmHWM and timing."""
    imports = str(Path(__file__).resolve().parent.parent / ".build" / "import")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [imports, os.environ.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, "-c", CHILD, str(package), str(stack), str(out / "p.tif"),
                             str(out / "m.tif")], capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    pkg_path = make_package(out / "cheap.lmpkg")
    runs = {}
    child_predict(pkg_path, make_stack(out / "stack_2000.tif", 2000), out)  # exports the ONNX graph once
    for size in (2000, int(os.environ.get("BENCH_PREDICT_LARGE", "20000"))):
        stack = make_stack(out / f"stack_{size}.tif", size)
        runs[size] = run = child_predict(pkg_path, stack, out)
        print(f"   {size}×{size}: {run['tiles']} tiles of {run['tile']}², {size * size / 1e6:.0f} Mpx, "
              f"{run['engine']}, {run['seconds']:.0f} s, peak RSS (VmHWM) {run['hwm_mb']:.0f} MB", flush=True)
    small, large = runs.values()
    print(f"   predict/rss-20k-vs-2k ratio: {large['hwm_mb'] / small['hwm_mb']:.2f}", flush=True)
