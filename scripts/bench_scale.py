"""Prediction on Dask (issue 19): a LocalCluster of 2 single-thread worker processes against the in-process run with
2 threads, on the same stack, package (the cheap ResUNet of the memory benchmark, shipped 1024 px tiles) and engine.

Both sides are timed end to end (the cluster side includes starting the cluster, the strips' files and assembling
the COG and mask). Printed: `scale/local-2-workers-vs-inprocess ratio` (throughput of the cluster over the in-process
run; 1.0 = distribution costs nothing), `scale/identical` (probability bits and mask equal), and the per-worker
throughput and assembly rate the README's sizing table is computed from. BENCH_SCALE_SIZE sets the side (8192).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

SIZE = int(os.environ.get("BENCH_SCALE_SIZE", "8192"))


def _identical(a: Path, b: Path, rows: int = 1024) -> bool:
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(a) as x, rasterio.open(b) as y:
        if (x.width, x.height, x.transform) != (y.width, y.height, y.transform):
            return False
        for r in range(0, x.height, rows):  # bounded memory
            w = Window(0, r, x.width, min(rows, x.height - r))
            if not np.array_equal(x.read(1, window=w).view(np.uint8), y.read(1, window=w).view(np.uint8)):
                return False
    return True


def main(out: Path) -> None:
    import torch
    from bench_predict import OVERLAP, TILE, make_package, make_stack
    from rasterio.windows import Window

    from landslide_mapper.core.predict import TileGrid, distributed, sliding_window_predict
    from landslide_mapper.models.package import read_package

    out.mkdir(parents=True, exist_ok=True)
    stack = make_stack(out / f"stack{SIZE}.tif", SIZE)
    package = read_package(make_package(out / "cheap.lmpkg"))
    for p in out.glob("[ld]-*.tif"):
        p.unlink()
    mpx = SIZE * SIZE / 1e6

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        started = time.perf_counter()
        local = sliding_window_predict(package, stack, out / "l-p.tif", out / "l-m.tif", device="cpu")
        t_local = time.perf_counter() - started
    finally:
        torch.set_num_threads(before)

    assembly = []
    assemble = distributed._assemble

    def timed_assemble(*args, **kwargs):
        t = time.perf_counter()
        assemble(*args, **kwargs)
        assembly.append(time.perf_counter() - t)

    distributed._assemble = timed_assemble
    try:
        started = time.perf_counter()
        dist = sliding_window_predict(package, stack, out / "d-p.tif", out / "d-m.tif", device="cpu", workers=2)
        t_dist = time.perf_counter() - started
    finally:
        distributed._assemble = assemble
    identical = _identical(out / "l-p.tif", out / "d-p.tif") and _identical(out / "l-m.tif", out / "d-m.tif")
    grid = TileGrid.fit(Window(0, 0, SIZE, SIZE), TILE, OVERLAP)
    k, strips = len(grid.rows), distributed.even_strips(grid, 2)
    halo = (k + len(strips) - 1) / k  # tile rows computed on the cluster over those of one whole run
    per_worker = mpx * halo / ((t_dist - assembly[0]) * 2)
    print(f"   {SIZE}×{SIZE} 3-band uint8 ({mpx:.0f} Mpx), ResUNet {local.tile_size[0]} px tiles, {local.engine}: "
          f"in-process 2 threads {t_local:.1f} s ({mpx / t_local:.2f} Mpx/s); LocalCluster 2×1 thread "
          f"{t_dist:.1f} s ({mpx / t_dist:.2f} Mpx/s) in {len(strips)} strips ({k} tile rows, halo "
          f"×{halo:.2f}), of which assembly {assembly[0]:.1f} s ({mpx / assembly[0]:.1f} Mpx/s)")
    print(f"   scale/per-worker Mpx/s: {per_worker:.3f}")
    print(f"   scale/assembly Mpx/s: {mpx / assembly[0]:.1f}")
    print(f"   scale/local-2-workers-vs-inprocess ratio: {t_local / t_dist:.2f}")
    print(f"   scale/identical: {'yes' if identical else 'no'}")
    for p in out.glob("[ld]-*.tif"):
        p.unlink()
    shipped_network_per_worker(out)


def shipped_network_per_worker(out: Path, size: int = 2048) -> None:
    """Mpx/s of one single-thread LocalCluster worker with the shipped network (Unet-resnet34, 1024 px tiles), end
    to end: what the README's sizing table multiplies by the number of workers."""
    from bench_inference import make_package, make_raster
    from distributed import LocalCluster

    from landslide_mapper.core.predict import sliding_window_predict
    from landslide_mapper.models.package import read_package

    stack = make_raster(out / f"rgb{size}.tif", size)
    package = read_package(make_package(out / "unet34.lmpkg"))
    with LocalCluster(n_workers=1, threads_per_worker=1, host="127.0.0.1", dashboard_address=None) as cluster:
        started = time.perf_counter()
        sliding_window_predict(package, stack, out / "u-p.tif", out / "u-m.tif", device="cpu",
                               dask_scheduler=cluster.scheduler_address)
        seconds = time.perf_counter() - started
    print(f"   scale/per-worker-unet-resnet34 Mpx/s: {size * size / 1e6 / seconds:.3f} ({size}² in {seconds:.1f} s, "
          f"one single-thread worker, end to end)")
    for p in out.glob("u-*.tif"):
        p.unlink()
