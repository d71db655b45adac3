"""Evaluation benchmarks (issue 8): pixel-metric throughput against plain numpy over the same windows.

On a generated 8000×8000 pair (tiled, DEFLATE GeoTIFFs as the plugin writes them: uint8 truth and mask, float32
probability), times `evaluate_prediction`
  - pixel metrics only (no confusion map, no objects, no sweep), mask and probability input,
  - with the confusion map written, with the threshold sweep, with object metrics,
against a plain reference that reads the same strips with rasterio and counts TP/FP/FN/TN with numpy boolean sums.
Prints Mpx/s (pixel metrics and reference: best of 3 runs), `metrics/reference ratio` (> 1: faster than the
reference) and whether the 100 Mpx/s target is met, plus the peak numpy memory of one full evaluation (bounded by
a strip, not by the raster).
"""
from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import numpy as np

SIZE = 8000
TARGET_MPX_S = 100.0
REPEAT = 3  # pixel-metric timings: best of 3


def make_pair(out: Path, size: int) -> dict:
    """Truth (uint8, 255 = nodata), a mask and a probability (NaN = nodata) with smooth blobs and a cloud."""
    from rasterio.transform import from_origin

    from landslide_mapper.core import raster

    paths = {k: out / f"{k}_{size}.tif" for k in ("truth", "mask", "probability")}
    if all(p.exists() for p in paths.values()):
        return paths
    rng = np.random.default_rng(0)
    grid = dict(width=size, height=size, crs="EPSG:32632", transform=from_origin(400000, 7000000, 10, 10), fast=True)
    with raster.create_raster(paths["truth"], dtype="uint8", descriptions=["label"], nodata=255, **grid) as t, \
            raster.create_raster(paths["mask"], dtype="uint8", descriptions=["mask"], nodata=255, **grid) as m, \
            raster.create_raster(paths["probability"], dtype="float32", descriptions=["landslide_probability"],
                                 nodata=np.nan, **grid) as p:
        for w in raster.block_windows(size, size, 2048):
            rows = np.arange(w.row_off, w.row_off + w.height, dtype=np.float32)[:, None]
            cols = np.arange(w.col_off, w.col_off + w.width, dtype=np.float32)[None, :]
            field = np.sin(rows / 37.0) * np.cos(cols / 53.0) + 0.3 * np.sin((rows + cols) / 11.0)
            truth = (field > 0.8).astype(np.uint8)
            prob = 1.0 / (1.0 + np.exp(-8.0 * (field - 0.75 + rng.normal(0, 0.05, field.shape))))
            prob = prob.astype(np.float32)
            cloud = (rows - size * 0.3) ** 2 + (cols - size * 0.6) ** 2 < (size * 0.05) ** 2
            prob[cloud] = np.nan
            mask = np.where(cloud, 255, prob >= 0.5).astype(np.uint8)
            t.write(truth[None], window=w)
            m.write(mask[None], window=w)
            p.write(prob[None], window=w)
    return paths


def reference_seconds(prediction: Path, truth: Path, probability: bool) -> tuple[float, tuple]:
    """Plain rasterio + numpy over the same strips: read both, mask nodata, count the four cells."""
    import rasterio

    from landslide_mapper.core.metrics import strip_windows
    from rasterio.windows import Window

    started = time.perf_counter()
    counts = np.zeros(4, dtype=np.int64)
    with rasterio.open(prediction) as p, rasterio.open(truth) as t:
        for w in strip_windows(Window(0, 0, p.width, p.height)):
            pred, lab = p.read(1, window=w), t.read(1, window=w)
            if probability:
                valid = np.isfinite(pred) & (lab != 255)
                pred = pred >= 0.5
            else:
                valid = (pred != 255) & (lab != 255)
                pred = pred == 1
            lab = lab == 1
            counts += [(pred & lab & valid).sum(), (pred & ~lab & valid).sum(), (~pred & lab & valid).sum(),
                       (~pred & ~lab & valid).sum()]
    return time.perf_counter() - started, tuple(int(c) for c in counts)


def timed(fn, *args, repeat: int = 1, **kwargs):
    """Best of `repeat` runs (the machine is shared: the fastest run is the least disturbed)."""
    best = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn(*args, **kwargs)
        seconds = time.perf_counter() - started
        best = seconds if best is None else min(best, seconds)
    return best, result


def main(out: Path, size: int = SIZE) -> None:
    from landslide_mapper.core.metrics import ObjectRule, evaluate_prediction

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    paths = make_pair(out, size)
    mpx = size * size / 1e6
    print(f"   {size}×{size} = {mpx:.0f} Mpx pair ready ({time.perf_counter() - t0:.0f} s)", flush=True)

    def line(label, seconds):
        print(f"   {label:46s} {seconds:6.2f} s {mpx / seconds:7.0f} Mpx/s", flush=True)
        return mpx / seconds

    for kind, prediction in (("mask", paths["mask"]), ("probability", paths["probability"])):
        is_prob = kind == "probability"
        evaluate_prediction(prediction, paths["truth"], objects=None, sweep=False)  # warm the file cache
        ref, ref_counts = min(reference_seconds(prediction, paths["truth"], is_prob) for _ in range(REPEAT))
        line(f"reference numpy ({kind})", ref)
        ours, ev = timed(evaluate_prediction, prediction, paths["truth"], objects=None, sweep=False, repeat=REPEAT)
        m = ev.metrics
        assert (m["tp"], m["fp"], m["fn"], m["tn"]) == ref_counts, "evaluate and the reference disagree"
        speed = line(f"evaluate {kind}: pixel metrics", ours)
        print(f"   metrics/reference ratio ({kind}): {ref / ours:.2f}", flush=True)
        print(f"   target ≥ {TARGET_MPX_S:.0f} Mpx/s for pixel metrics ({kind}): "
              f"{'met' if speed >= TARGET_MPX_S else 'NOT met'}", flush=True)
        with_map, _ = timed(evaluate_prediction, prediction, paths["truth"], out / "confusion.tif", objects=None,
                            sweep=False, repeat=REPEAT)
        line(f"evaluate {kind}: + confusion map", with_map)
        print(f"   metrics+map/reference ratio ({kind}): {ref / with_map:.2f}", flush=True)
        if is_prob:
            line(f"evaluate {kind}: + threshold sweep", timed(evaluate_prediction, prediction, paths["truth"],
                                                             objects=None, sweep=True)[0])
        else:
            line(f"evaluate {kind}: + object metrics", timed(evaluate_prediction, prediction, paths["truth"],
                                                            objects=ObjectRule(), sweep=False)[0])
    tracemalloc.start()
    seconds, ev = timed(evaluate_prediction, paths["probability"], paths["truth"], out / "confusion.tif",
                        out / "report" / "report.json", objects=ObjectRule())
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    line("full evaluation (map, sweep, objects, report)", seconds)
    whole = size * size * (4 + 1 + 1) / 2**20
    print(f"   peak numpy memory {peak:.0f} MB (whole rasters would be {whole:.0f} MB); "
          f"landslides {ev.objects['landslides']}, detected {ev.objects['detected']}, "
          f"best threshold {ev.best['best_f1']['threshold']:.2f}", flush=True)


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / ".build" / "import"))
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("bench_out/metrics"))
