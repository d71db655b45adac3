"""CPU inference: predict at the shipped defaults against the ONNX Runtime path people use today (issue 17).

Network: smp Unet-resnet34 (random weights, fixed seed), 3-band uint8 raster of SIZE² px (4096 unless the
environment variable BENCH_INFERENCE_SIZE says otherwise), same process, same threads for every side.

- `inference/defaults-vs-ort256 ratio`: the whole `sliding_window_predict` (windowed reading, normalising, blended
  probability COG + mask) with the package's shipped tiling (PREDICTION_TILE / PREDICTION_OVERLAP) against a bare
  ONNX Runtime forward over 256² tiles at 15 % overlap (that tool), the data already normalised in memory.
- `inference/same-tiles-vs-bare ratio`: predict against a bare forward of the same engine over exactly the tiles
  predict computes (same grid, same batch), data in memory; measured at the default tiling and at 256 px / 15 %,
  the line shows the smaller of the two.
- `inference/int8-vs-float32 ratio`: bare forward of the int8 graph against the float32 graph over the default
  tiles (speed only: the bench network is untrained; F1 is checked where predict decides, see the tests).

Every side is warmed up first (sessions built, each tile shape run once); then the sides alternate for ROUNDS
rounds and the medians are compared. Larger ratios mean predict is faster.
"""
from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import numpy as np

SIZE = int(os.environ.get("BENCH_INFERENCE_SIZE", "4096"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
BANDS = ["post_B04", "post_B03", "post_B02"]
BATCH = 4  # predict's default (the Processing algorithm's BATCH_SIZE default)


def make_raster(path: Path, size: int = SIZE) -> Path:
    from rasterio.transform import from_origin

    from landslide_mapper.core import raster

    if path.exists():
        return path
    with raster.create_raster(path, width=size, height=size, crs="EPSG:32632", dtype="uint8",
                              transform=from_origin(400000, 7000000, 10, 10), descriptions=BANDS) as dst:
        for win in raster.block_windows(size, size, 1024):
            r = np.arange(win.row_off, win.row_off + win.height)[:, None]
            c = np.arange(win.col_off, win.col_off + win.width)[None, :]
            base = 127 + 60 * np.sin(r / 53.0) * np.cos(c / 71.0)
            dst.write(np.stack([base, base * 0.8, base * 0.6]).astype(np.uint8), window=win)
    return path


def make_package(path: Path) -> Path:
    """Unet-resnet34 with the tiling and overlap new packages ship with."""
    import torch

    from landslide_mapper.models.package import PREDICTION_OVERLAP, PREDICTION_TILE, make_manifest, write_package
    from landslide_mapper.models.registry import create_model

    torch.manual_seed(0)
    net = create_model("Unet", "resnet34", 3)
    manifest = make_manifest(
        members=[{"architecture": "Unet", "encoder": "resnet34", "model_kwargs": {},
                  "weights": "weights.safetensors", "weight": 1.0}],
        input_bands=BANDS, band_stats=[{"name": b, "mean": 110.0, "std": 50.0} for b in BANDS],
        tile_size=PREDICTION_TILE, overlap=PREDICTION_OVERLAP, threshold=0.5, classes=[], pixel_size=(10.0, 10.0))
    return write_package(path, manifest, [net.state_dict()])


def grid(size: int, tile: int, overlap: int) -> tuple[int, list[int]]:
    """(tile side, offsets) predict uses along one axis of a size-px raster for a tile maximum and overlap."""
    from landslide_mapper.core.predict import fit_tile, tile_positions

    side = fit_tile(size, tile, overlap)
    return side, tile_positions(size, side, overlap)


def bare_forward(session, data: np.ndarray, side: int, offsets: list[int], batch: int) -> tuple[float, int, int]:
    """Seconds, tiles and pixels of a plain batched forward over side² tiles at offsets² (data in memory)."""
    from landslide_mapper.models import onnx_runtime

    _, h, w = data.shape
    if h < side or w < side:
        data = np.pad(data, ((0, 0), (0, max(0, side - h)), (0, max(0, side - w))))
    tiles = [(r, q) for r in offsets for q in offsets]
    started = time.perf_counter()
    for s in range(0, len(tiles), batch):
        x = np.stack([data[:, r:r + side, q:q + side] for r, q in tiles[s:s + batch]])
        logits = onnx_runtime.run(session, x)
        _ = logits[:, 0] > 0  # hard labels, as that tool keeps
    return time.perf_counter() - started, len(tiles), len(tiles) * side * side


def main(out: Path) -> None:
    import rasterio
    import torch

    from landslide_mapper.core.predict import sliding_window_predict
    from landslide_mapper.models import onnx_runtime
    from landslide_mapper.models.package import read_package

    out.mkdir(parents=True, exist_ok=True)
    raster_path = make_raster(out / f"rgb_{SIZE}.tif")
    pkg = read_package(make_package(out / "unet_r34.lmpkg"))
    session = onnx_runtime.sessions(pkg)[0]  # exports and caches the graph, builds the session
    with rasterio.open(raster_path) as src:
        data = src.read().astype(np.float32)
    mean, std = pkg.normalization()
    data = (data - mean[:, None, None]) / std[:, None, None]
    settings = {"default": (pkg.tile_size, int(pkg.manifest["overlap"])), "256/15%": (256, round(256 * 0.15))}
    grids = {k: grid(SIZE, t, o) for k, (t, o) in settings.items()}

    def run_predict(key):
        tile, overlap = settings[key]
        started = time.perf_counter()
        result = sliding_window_predict(pkg, raster_path, out / "p.tif", out / "m.tif", tile_size=tile,
                                        overlap=overlap, batch_size=BATCH, device="cpu")
        seconds = time.perf_counter() - started
        assert result.tile_size == (grids[key][0],) * 2 and result.tiles == len(grids[key][1]) ** 2
        return seconds, result.tiles, result.tiles * result.tile_size[0] * result.tile_size[1]

    def run_bare(key):
        side, offsets = grids[key]
        return bare_forward(session, data, side, offsets, BATCH)

    # Warm-up: every side once on a crop two tiles wide (sessions built, each tile shape seen once).
    for key, (tile, overlap) in settings.items():
        side, _ = grids[key]
        crop_px = min(SIZE, 2 * side - overlap)
        crop = (400000, 7000000 - 10 * crop_px, 400000 + 10 * crop_px, 7000000)
        sliding_window_predict(pkg, raster_path, out / "w.tif", out / "wm.tif", extent=crop, tile_size=tile,
                               overlap=overlap, batch_size=BATCH, device="cpu")
        bare_forward(session, data[:, :crop_px, :crop_px], side, grid(crop_px, tile, overlap)[1], BATCH)
    sides = [("predict", "default"), ("bare", "default"), ("predict", "256/15%"), ("bare", "256/15%")]
    times: dict[tuple, list[float]] = {s: [] for s in sides}
    work = {}
    for round_ in range(ROUNDS):
        for side in (sides if round_ % 2 == 0 else sides[::-1]):  # alternate the order between rounds
            seconds, tiles, pixels = (run_predict if side[0] == "predict" else run_bare)(side[1])
            times[side].append(seconds)
            work[side] = (tiles, pixels)
    med = {s: statistics.median(v) for s, v in times.items()}
    mpx = SIZE * SIZE / 1e6
    print(f"   {SIZE}×{SIZE} 3-band uint8, Unet-resnet34, ONNX Runtime, {torch.get_num_threads()} threads, batch "
          f"{BATCH}, medians of {ROUNDS} alternating rounds after a warm-up", flush=True)
    for (who, key), seconds in med.items():
        tiles, pixels = work[(who, key)]
        side, _ = grids[key]
        what = ("predict (read, normalise, blend, COG probability + mask)" if who == "predict"
                else "bare forward (data in memory)")
        print(f"   {what}, {key} tiling: {tiles} tiles of {side}², {pixels / 1e6:.1f} Mpx computed, "
              f"{seconds:.1f} s, {mpx / seconds:.3f} Mpx/s of raster "
              f"(rounds: {', '.join(f'{t:.1f}' for t in times[(who, key)])} s)", flush=True)
    ratio_default = med[("bare", "default")] / med[("predict", "default")]
    ratio_256 = med[("bare", "256/15%")] / med[("predict", "256/15%")]
    print(f"   same tiles, predict vs bare: default tiling {ratio_default:.2f}, 256/15% {ratio_256:.2f}", flush=True)
    print(f"   inference/defaults-vs-ort256 ratio: {med[('bare', '256/15%')] / med[('predict', 'default')]:.2f}",
          flush=True)
    print(f"   inference/same-tiles-vs-bare ratio: {min(ratio_default, ratio_256):.2f}", flush=True)
    int8_ratio(pkg, data, grids["default"], out)


def int8_ratio(pkg, data: np.ndarray, default_grid, out: Path) -> None:
    """Bare forward of the int8 graph against the float32 graph over the default tiles (speed only).

    The bench network has random weights and no chips, so the int8 graph is calibrated on 16 crops of the raster
    and its F1 is not scored here (predict chooses int8 only from the validation-F1 decision; see the tests).
    """
    from landslide_mapper.models import onnx_runtime

    folder = onnx_runtime.cache_folder(Path(pkg.path))
    digest = onnx_runtime._package_digest(Path(pkg.path))
    path8 = folder / f"{digest}-member0.int8.onnx"
    if not path8.exists():
        crops = np.stack([data[:, r:r + 256, c:c + 256] for r in (0, 700, 1400, 1792) for c in (0, 600, 1200, 1792)
                          if r + 256 <= data.shape[1] and c + 256 <= data.shape[2]])
        onnx_runtime._quantize_graph(folder / f"{digest}-member0.onnx", path8, crops.astype(np.float32))
    session8 = onnx_runtime._session(path8, None)
    session32 = onnx_runtime.sessions(pkg)[0]
    side, offsets = default_grid
    for session in (session8, session32):  # warm-up
        bare_forward(session, data[:, :side, :side], side, [0], BATCH)
    t8, t32 = [], []
    for round_ in range(ROUNDS):
        for which in (("8", "32") if round_ % 2 == 0 else ("32", "8")):
            seconds = bare_forward(session8 if which == "8" else session32, data, side, offsets, BATCH)[0]
            (t8 if which == "8" else t32).append(seconds)
    print(f"   bare forward over {len(offsets) ** 2} tiles of {side}²: int8 (static QDQ) "
          f"{statistics.median(t8):.1f} s, float32 {statistics.median(t32):.1f} s", flush=True)
    print(f"   inference/int8-vs-float32 ratio: {statistics.median(t32) / statistics.median(t8):.2f}", flush=True)
