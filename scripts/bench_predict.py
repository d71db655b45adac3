"""Prediction benchmarks (issue 7): throughput against a bare batched forward, and peak memory vs raster size.

1. Throughput: `sliding_window_predict` (reading, normalising, blending, writing a COG probability and a mask)
   against a bare batched forward of the same network with the same engine over the same raster cut into
   non-overlapping tiles, data prepared in memory beforehand. Printed as `predict/forward ratio`.
2. Memory: peak RSS of a child process predicting a 2k×2k and a 20k×20k stack with the same model; memory must
   not grow with the raster (`rss 20k/2k ratio`).
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BANDS = ["pre_VV", "post_VV", "dNDVI"]
DEMO_MODEL = {"encoder_depth": 4, "decoder_channels": [64, 32, 16, 16]}  # what `make demo` trains
TINY_MODEL = {"encoder_depth": 3, "decoder_channels": [16, 8, 8]}


def make_stack(path: Path, size: int, block: int = 2048) -> Path:
    """A smooth synthetic 3-band stack written window by window (content does not change the cost)."""
    from landslide_mapper.core import raster
    from rasterio.transform import from_origin

    if path.exists():
        return path
    with raster.create_raster(path, width=size, height=size, crs="EPSG:32632",
                              transform=from_origin(400000, 7000000, 10, 10), dtype="float32",
                              descriptions=BANDS, nodata=np.nan) as dst:
        for win in raster.block_windows(size, size, block):
            rows = np.arange(win.row_off, win.row_off + win.height, dtype=np.float32)[:, None]
            cols = np.arange(win.col_off, win.col_off + win.width, dtype=np.float32)[None, :]
            base = np.sin(rows / 97.0) * np.cos(cols / 131.0)
            dst.write(np.stack([base - 8, base * 2 - 8, base * 0.3]).astype(np.float32), window=win)
    return path


def make_package(path: Path, model_kwargs: dict, tile: int, overlap: int) -> Path:
    import torch

    from landslide_mapper.models.package import make_manifest, write_package
    from landslide_mapper.models.registry import create_model

    torch.manual_seed(0)
    net = create_model("Unet", "resnet18", len(BANDS), **model_kwargs)
    manifest = make_manifest(
        members=[{"architecture": "Unet", "encoder": "resnet18", "model_kwargs": model_kwargs,
                  "weights": "weights.safetensors", "weight": 1.0}],
        input_bands=BANDS, band_stats=[{"name": b, "mean": 0.0, "std": 1.0} for b in BANDS],
        tile_size=tile, overlap=overlap, threshold=0.5, classes=[], pixel_size=(10.0, 10.0))
    return write_package(path, manifest, [net.state_dict()])


def bare_forward_seconds(package, stack: Path, tile: int, batch: int, engine: str) -> float:
    """Time of the plain reference: batched forward over non-overlapping tiles already in memory, same engine."""
    import rasterio
    import torch

    from landslide_mapper.models import onnx_runtime

    with rasterio.open(stack) as src:
        data = src.read().astype(np.float32)
    c, h, w = data.shape
    ph, pw = -(-h // tile) * tile, -(-w // tile) * tile
    padded = np.zeros((c, ph, pw), np.float32)
    padded[:, :h, :w] = data
    tiles = [padded[:, r:r + tile, q:q + tile] for r in range(0, ph, tile) for q in range(0, pw, tile)]
    if engine == "onnx":
        session = onnx_runtime.sessions(package)[0]
        forward = lambda x: onnx_runtime.run(session, x)  # noqa: E731
    else:
        model = package.members("cpu")[0][0]

        def forward(x):
            with torch.inference_mode():
                return torch.sigmoid(model(torch.from_numpy(x))).numpy()
    started = time.perf_counter()
    for s in range(0, len(tiles), batch):
        forward(np.stack(tiles[s:s + batch]))
    return time.perf_counter() - started


CHILD = """
import json, resource, sys, time
from landslide_mapper.core.predict import sliding_window_predict
from landslide_mapper.models.package import read_package
pkg = read_package(sys.argv[1])
t = time.perf_counter()
sliding_window_predict(pkg, sys.argv[2], sys.argv[3], sys.argv[4], batch_size=4, device="cpu")
print(json.dumps({"seconds": time.perf_counter() - t,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def child_predict(package: Path, stack: Path, out: Path) -> dict:
    import os

    env = dict(os.environ)
    result = subprocess.run([sys.executable, "-c", CHILD, str(package), str(stack), str(out / "p.tif"),
                             str(out / "m.tif")], capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    throughput(out)
    memory(out)


def throughput(out: Path) -> None:
    from landslide_mapper.core.predict import fit_tile, sliding_window_predict
    from landslide_mapper.models import onnx_runtime
    from landslide_mapper.models.package import read_package

    # 1. Throughput on a 4096² stack with the demo's network, for each inference engine. The ONNX session is
    #    built before timing (both runs use it); the bare forward runs first so neither gets a warmer cache.
    size = 4096
    stack = make_stack(out / f"stack_{size}.tif", size)
    mpx = size * size / 1e6
    pkg = read_package(make_package(out / "demo_1024.lmpkg", DEMO_MODEL, 1024, 64))
    onnx_runtime.sessions(pkg)
    seconds = {}
    for engine in ("onnx", "torch"):
        tile = fit_tile(size, 1024, 64)
        bare = bare_forward_seconds(pkg, stack, tile, batch=1, engine=engine)
        started = time.perf_counter()
        result = sliding_window_predict(pkg, stack, out / "p.tif", out / "m.tif", batch_size=1, device="cpu",
                                        engine=engine)
        ours = time.perf_counter() - started
        print(f"   {result.engine}: predict {mpx / ours:.2f} Mpx/s ({result.tiles} tiles of "
              f"{result.tile_size[0]}×{result.tile_size[1]}, min overlap 64, COG + mask), bare forward "
              f"{mpx / bare:.2f} Mpx/s → predict/forward ratio ({engine}): {bare / ours:.2f}", flush=True)
        seconds[engine] = (bare, ours)
    # What a user gets by default (ONNX Runtime when installed) against a plain PyTorch forward of the network.
    print(f"   predict (default engine)/bare torch forward ratio: {seconds['torch'][0] / seconds['onnx'][1]:.2f}",
          flush=True)


def memory(out: Path) -> None:
    # 2. Peak memory: the same tiny model on 2k² and 20k² stacks, each in a fresh process.
    pkg_path = make_package(out / "tiny.lmpkg", TINY_MODEL, 512, 32)
    runs = {}
    for size in (2000, 20000):
        stack = make_stack(out / f"stack_{size}.tif", size)
        runs[size] = child_predict(pkg_path, stack, out)
        print(f"   {size}×{size}: {size * size / 1e6 / runs[size]['seconds']:.1f} Mpx/s, "
              f"peak RSS {runs[size]['rss_mb']:.0f} MB", flush=True)
    print(f"   rss 20k/2k ratio: {runs[20000]['rss_mb'] / runs[2000]['rss_mb']:.2f}", flush=True)
