"""CPU inference against the ONNX Runtime path people use today (issue 10).

Reference ("that tool"): smp Unet-resnet34 run with ONNX Runtime on a 3-band uint8 4096×4096 raster cut into
256×256 tiles at 15 % overlap (361 tiles, batch 8), centres kept as hard labels, no blending. Its forward alone
is timed here, with the whole raster already in memory — the most favourable reading of it.
Ours: the whole `sliding_window_predict` (windowed reading, normalising, blended probability COG + mask) on the
same package and raster. Equality: our ONNX Runtime path against our plain torch path on a 1024² crop.
"""
from __future__ import annotations

import resource
import time
from pathlib import Path

import numpy as np

SIZE = 4096
BANDS = ["post_B04", "post_B03", "post_B02"]


def make_raster(path: Path) -> Path:
    from rasterio.transform import from_origin

    from landslide_mapper.core import raster

    if path.exists():
        return path
    with raster.create_raster(path, width=SIZE, height=SIZE, crs="EPSG:32632", dtype="uint8",
                              transform=from_origin(400000, 7000000, 10, 10), descriptions=BANDS) as dst:
        for win in raster.block_windows(SIZE, SIZE, 1024):
            r = np.arange(win.row_off, win.row_off + win.height)[:, None]
            c = np.arange(win.col_off, win.col_off + win.width)[None, :]
            base = 127 + 60 * np.sin(r / 53.0) * np.cos(c / 71.0)
            dst.write(np.stack([base, base * 0.8, base * 0.6]).astype(np.uint8), window=win)
    return path


def make_package(path: Path, tile: int, overlap: int) -> Path:
    import torch

    from landslide_mapper.models.package import make_manifest, write_package
    from landslide_mapper.models.registry import create_model

    torch.manual_seed(0)
    net = create_model("Unet", "resnet34", 3)
    manifest = make_manifest(
        members=[{"architecture": "Unet", "encoder": "resnet34", "model_kwargs": {},
                  "weights": "weights.safetensors", "weight": 1.0}],
        input_bands=BANDS, band_stats=[{"name": b, "mean": 110.0, "std": 50.0} for b in BANDS],
        tile_size=tile, overlap=overlap, threshold=0.5, classes=[], pixel_size=(10.0, 10.0))
    return write_package(path, manifest, [net.state_dict()])


def reference_ort_seconds(package, raster_path: Path, tile: int = 256, overlap: float = 0.15,
                          batch: int = 8) -> tuple[float, int]:
    """Bare ONNX Runtime forward over the raster cut into 256² tiles at 15 % overlap (data already in memory)."""
    import rasterio

    from landslide_mapper.models import onnx_runtime

    session = onnx_runtime.sessions(package)[0]
    with rasterio.open(raster_path) as src:
        data = src.read().astype(np.float32)
    mean, std = package.normalization()
    data = (data - mean[:, None, None]) / std[:, None, None]
    stride = int(tile * (1 - overlap))
    pos = list(range(0, SIZE - tile, stride)) + [SIZE - tile]
    tiles = [data[:, r:r + tile, c:c + tile] for r in pos for c in pos]
    started = time.perf_counter()
    for s in range(0, len(tiles), batch):
        logits = onnx_runtime.run(session, np.stack(tiles[s:s + batch]))
        _ = logits[:, 0] > 0  # hard labels, as that tool keeps
    return time.perf_counter() - started, len(tiles)


def main(out: Path) -> None:
    import rasterio

    from landslide_mapper.core.predict import sliding_window_predict
    from landslide_mapper.models import onnx_runtime
    from landslide_mapper.models.package import read_package

    out.mkdir(parents=True, exist_ok=True)
    raster_path = make_raster(out / "rgb_4096.tif")
    mpx = SIZE * SIZE / 1e6
    for tile, overlap in ((2048, 64),):
        pkg = read_package(make_package(out / f"unet_r34_{tile}.lmpkg", tile, overlap))
        ref, n_ref = reference_ort_seconds(pkg, raster_path)  # also exports + caches the ONNX graph
        onnx_runtime._SESSIONS.clear()  # ours pays for building its session, as a fresh QGIS run would
        started = time.perf_counter()
        ours = sliding_window_predict(pkg, raster_path, out / "p.tif", out / "m.tif", batch_size=1, device="cpu")
        seconds = time.perf_counter() - started
        print(f"   reference ORT 256 px @ 15 %: {n_ref} tiles, {mpx / ref:.3f} Mpx/s", flush=True)
        print(f"   predict ({ours.engine}, tiles {ours.tile_size[0]}×{ours.tile_size[1]}, min overlap {overlap}, "
              f"{ours.tiles} tiles, blended COG + mask): {mpx / seconds:.3f} Mpx/s", flush=True)
        print(f"   predict/ort-256-15% ratio: {ref / seconds:.2f}", flush=True)
        crop = (400000, 7000000 - 10240, 410240, 7000000)  # 1024² px
        a = sliding_window_predict(pkg, raster_path, out / "a.tif", extent=crop, engine="onnx", batch_size=1)
        b = sliding_window_predict(pkg, raster_path, out / "b.tif", extent=crop, engine="torch", batch_size=1)
        with rasterio.open(a.probability) as pa, rasterio.open(b.probability) as pb:
            diff = float(np.nanmax(np.abs(pa.read(1) - pb.read(1))))
        print(f"   max |p_onnx − p_torch| on a 1024² crop: {diff:.2e} ({'ok' if diff <= 1e-3 else 'TOO LARGE'})")
    print(f"   peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB", flush=True)
