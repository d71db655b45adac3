"""Chip export throughput on a large generated stack, against plain references run in the same process.

Stack: 8000×8000×3 float32 (tiled 256, uncompressed GeoTIFF, NaN nodata) + a UInt8 label raster. Throughput is
stack pixels processed per second (Mpx/s). References: a raw windowed read of the same stack (the read floor); a
plain exporter that reads the same windows and np.save()s the same chips (one file per image and per label chip);
and the file-creation floor: only creating as many files of our chips' sizes, bytes ready in memory. File creation
speed swings with the file system's state (see main), so the headline export runs CHIPS_BENCH_ROUNDS times (3),
each beside a floor run. Every timing runs in a fresh Python process (cold GDAL block cache, as in a new QGIS
session; the OS file cache is warm for all alike). Set CHIPS_BENCH_SIZE for a smaller stack (e.g. 4000),
CHIPS_BENCH_DEFLATE=1 to add a DEFLATE-compressed stack (the change_stack output format), CHIPS_BENCH_RUNS to write
the chips elsewhere (a RAM disk such as /dev/shm/chips shows the exporter without the disk).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

from landslide_mapper.core import raster
from landslide_mapper.core.chips import export_chips

BANDS = ["pre_VV", "post_VV", "dNDVI"]
ROUNDS = int(os.environ.get("CHIPS_BENCH_ROUNDS", 3))


def make_stack(folder: Path, size: int, compress: str | None = None) -> tuple[Path, Path]:
    """Smooth fields + noise, a nodata patch, landslide blobs (~0.5 % of pixels) in a separate label raster."""
    suffix = "" if compress is None else f"_{compress}"
    stack, labels = folder / f"stack{size}{suffix}.tif", folder / f"labels{size}.tif"
    if stack.exists() and labels.exists():
        return stack, labels
    rng = np.random.default_rng(0)
    common = dict(driver="GTiff", width=size, height=size, crs="EPSG:32632",
                  transform=from_origin(400000, 6900000, 10, 10), tiled=True, blockxsize=256, blockysize=256)
    extra = {} if compress is None else dict(compress=compress, predictor=3)
    with rasterio.open(stack, "w", count=3, dtype="float32", nodata=np.nan, **common, **extra) as dst, \
            rasterio.open(labels, "w", count=1, dtype="uint8", compress="deflate", **common) as lab:
        for i, name in enumerate(BANDS, start=1):
            dst.set_band_description(i, name)
        for w in raster.block_windows(size, size, 1024):
            h, wd = int(w.height), int(w.width)
            yy, xx = np.mgrid[w.row_off:w.row_off + h, w.col_off:w.col_off + wd].astype(np.float32)
            base = np.sin(xx / 53) + np.cos(yy / 71)
            blobs = (np.sin(xx / 37) * np.sin(yy / 23)) > 0.985
            data = np.stack([base + rng.normal(0, .3, (h, wd)), base * .5 + 3 * blobs + rng.normal(0, .3, (h, wd)),
                             0.1 * base - 0.5 * blobs]).astype(np.float32)
            if w.row_off == 0 and w.col_off == 0:
                data[:, :300, :300] = np.nan
            dst.write(data, window=w)
            lab.write(blobs.astype(np.uint8)[None], window=w)
    return stack, labels


def raw_read(stack: Path, rows: int = 256) -> float:
    """Seconds to read the whole stack in full-width windows: no export can be faster than this."""
    started = time.perf_counter()
    with rasterio.open(stack) as src:
        for r in range(0, src.height, rows):
            src.read(window=Window(0, r, src.width, min(rows, src.height - r)), out_dtype="float32")
    return time.perf_counter() - started


def plain_npy_export(stack: Path, labels: Path, out: Path, tile: int) -> float:
    """Seconds for a plain exporter: same windowed reads, every tile np.save()d as image + label files."""
    out = Path(out)
    shutil.rmtree(out, ignore_errors=True)
    (out / "images").mkdir(parents=True)
    (out / "labels").mkdir()
    started = time.perf_counter()
    k = 0
    with rasterio.open(stack) as src, rasterio.open(labels) as lab:
        for r in range(0, src.height - tile + 1, tile):
            window = Window(0, r, src.width, tile)
            data = src.read(window=window, out_dtype="float32")
            codes = lab.read(1, window=window)
            for c in range(0, src.width - tile + 1, tile):
                np.save(out / "images" / f"{k:06d}.npy", data[:, :, c:c + tile])
                np.save(out / "labels" / f"{k:06d}.npy", codes[:, c:c + tile])
                k += 1
    return time.perf_counter() - started


def write_floor(out: Path, n_files: int, image_bytes: int, label_bytes: int, threads: int = 2) -> float:
    """Seconds to only create the export's files: `n_files` image + label files of the chip sizes, bytes ready in
    memory, written from `threads` threads (no reading, no cutting). On this disk this is the floor for any
    exporter that writes one file per chip."""
    from concurrent.futures import ThreadPoolExecutor

    out = Path(out)
    shutil.rmtree(out, ignore_errors=True)
    (out / "images").mkdir(parents=True)
    (out / "labels").mkdir()
    image, label = np.random.default_rng(0).bytes(image_bytes), bytes(label_bytes)

    def write(k: int) -> None:
        for sub, data in (("images", image), ("labels", label)):
            fd = os.open(out / sub / f"{k:06d}.tif", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(write, range(n_files), chunksize=64))
    return time.perf_counter() - started


def timed_export(stack: Path, labels: Path, out: Path, **kwargs) -> tuple[float, dict]:
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    result = export_chips(stack, labels, out, **kwargs)
    return time.perf_counter() - started, result.counts


def fresh(function: str, *args, **kwargs):
    """Run one of this module's timing functions in a new Python process and return its result.

    Earlier writes are flushed first, and outputs are only deleted at the end: a run must not pay for the
    write-back or the deletion of the one before.
    """
    os.sync()
    here = Path(__file__).resolve().parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(here.parent / ".build" / "import"), str(here)]))
    code = (f"import json, sys, bench_chips; a, k = json.loads(sys.argv[1]); "
            f"print(json.dumps(bench_chips.{function}(*a, **k)))")
    arguments = json.dumps([[str(a) if isinstance(a, Path) else a for a in args], kwargs])
    done = subprocess.run([sys.executable, "-c", code, arguments], env=env, capture_output=True, text=True,
                          check=False)
    if done.returncode:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(out: Path) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    size = int(os.environ.get("CHIPS_BENCH_SIZE", 8000))
    mpx = size * size / 1e6
    started = time.perf_counter()
    stack, labels = make_stack(out, size)
    print(f"   stack {size}×{size}×3 float32, tiled, uncompressed ({mpx:.0f} Mpx), made in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    fresh("raw_read", stack)  # warms the OS file cache for every run below
    read_s = fresh("raw_read", stack)
    print(f"   reference raw windowed read: {mpx / read_s:.0f} Mpx/s", flush=True)
    runs = Path(os.environ.get("CHIPS_BENCH_RUNS", out / "runs"))  # /dev/shm/…: no disk
    shutil.rmtree(runs, ignore_errors=True)
    plain_s = fresh("plain_npy_export", stack, labels, runs / "plain", 128)
    print(f"   reference plain np.save export (128 px tiles, stride 128): {mpx / plain_s:.1f} Mpx/s", flush=True)
    common = dict(validation_fraction=0.2, split_block=1024)
    # Creating ~8,000 files costs as much as the cutting here, and it swings several-fold from run to run: on this
    # VM fresh memory (page cache) costs ~2 s/GB, and ext4 scans past recently deleted inodes on every new file.
    # So the headline runs are repeated, each export beside a file-creation floor run: median and best.
    grid, floor = [], []
    for r in range(ROUNDS):
        seconds, counts = fresh("timed_export", stack, labels, runs / f"grid128_{r}", tile_size=128, stride=128,
                                **common)
        chips = sum(c["chips"] for c in counts.values())
        sizes = [(runs / f"grid128_{r}" / kind / "000000.tif").stat().st_size for kind in ("images", "labels")]
        grid.append(seconds)
        floor.append(fresh("write_floor", runs / f"floor_{r}", chips, *sizes))
        print(f"   round {r + 1}: grid 128/128 native export {chips} chips in {seconds:.2f} s = "
              f"{mpx / seconds:.1f} Mpx/s; file-creation floor ({chips} image + label files of {sizes[0]} + "
              f"{sizes[1]} bytes, bytes ready in memory, 2 threads) {mpx / floor[-1]:.1f} Mpx/s", flush=True)
    grid_s, floor_s = float(np.median(grid)), float(np.median(floor))
    print(f"chips throughput: {mpx / grid_s:.1f} Mpx/s (median of {ROUNDS}; best {mpx / min(grid):.1f})")
    print(f"chips/plain-np.save ratio: {plain_s / grid_s:.2f}")
    print(f"chips/raw-read ratio: {read_s / grid_s:.2f}")
    print(f"chips/file-creation-floor ratio: {floor_s / grid_s:.2f} (median; best/best {min(floor) / min(grid):.2f})")
    for label, kwargs in [("grid 256/256 native", dict(tile_size=256, stride=256)),
                          ("grid 128/64 native (Jølster)", dict(tile_size=128, stride=64)),
                          ("grid 128/128 ArcGIS Classified Tiles", dict(tile_size=128, stride=128, layout="arcgis")),
                          ("positive-biased 2000 chips of 128", dict(tile_size=128, sampling="positive",
                                                                     n_chips=2000, positive_fraction=0.5))]:
        seconds, counts = fresh("timed_export", stack, labels, runs / label.split(" (")[0].replace(" ", "_")
                                .replace("/", "-"), **kwargs, **common)
        chips = sum(c["chips"] for c in counts.values())
        print(f"   {label}: {chips} chips in {seconds:.1f} s = {mpx / seconds:.1f} Mpx/s of stack", flush=True)
    if os.environ.get("CHIPS_BENCH_DEFLATE"):
        zstack, _ = make_stack(out, size, compress="deflate")
        zread = fresh("raw_read", zstack)
        seconds, _ = fresh("timed_export", zstack, labels, runs / "deflate", tile_size=128, stride=128, **common)
        print(f"   deflate-compressed stack: raw read {mpx / zread:.1f} Mpx/s, grid 128/128 export "
              f"{mpx / seconds:.1f} Mpx/s (ratio {zread / seconds:.2f})", flush=True)
    shutil.rmtree(runs, ignore_errors=True)
