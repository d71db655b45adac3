"""`make demo-geology`: multi-class geological mapping end to end, through the plugin's Processing algorithms.

Simulate a scene with bedrock outcrops, wetlands, sharp and smooth ravines and landslide scars → terrain (the
thesis's bands) → s2_terrain stack (optical + terrain) → multi-class chips from the western half → a U-Net with one
softmax channel per class → class map of the unseen eastern half → per-class evaluation against the known truth.
Prints one line `geology macro F1: X` and the per-class table.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo import CLOCK, clock, phase, start_qgis, step  # noqa: E402  (sets up sys.path for the plugin)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="demo_out/geology",
                        help="output folder, created if missing; the demo's own files in it are rewritten")
    parser.add_argument("--size", type=int, default=512, help="scene width and height in pixels")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()

    started = time.perf_counter()
    CLOCK.update(start=started, phase=0, phases=9)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    print(f"Landslide Mapper geology demo: {args.size}×{args.size} px simulated scene, {args.epochs} epochs, outputs "
          f"in {out}", flush=True)
    phase("Start QGIS and the Processing framework")
    _app, _provider = start_qgis()
    import rasterio

    from landslide_mapper.core.metrics import format_class_table

    scene = step("Simulate bedrock, wetlands, ravines and landslide scars", "simulate_geology",
                 {"WIDTH": args.size, "HEIGHT": args.size, "SEED": args.seed, "OUTPUT_FOLDER": str(out / "scene")})
    terrain = step("Terrain bands of the thesis (relative relief, TPI 3/9, valley depth …)", "terrain",
                   {"INPUT": scene["DEM"], "OUTPUT": str(out / "terrain.tif")})["OUTPUT"]
    stack = step("Optical + terrain stack (preset s2_terrain)", "change_stack",
                 {"PRE": [scene["OPTICAL"]], "POST": [scene["OPTICAL"]], "TERRAIN": [terrain],
                  "PRESET": "s2_terrain", "OUTPUT": str(out / "stack.tif")})["OUTPUT"]
    with rasterio.open(stack) as src:
        left, bottom, right, top = src.bounds
        crs = src.crs.to_string()
    middle = (left + right) / 2
    west = f"{left},{middle},{bottom},{top} [{crs}]"  # QGIS extent strings are xmin,xmax,ymin,ymax [crs]
    east = f"{middle},{right},{bottom},{top} [{crs}]"
    chips = step("Multi-class chips from the western half", "export_chips",
                 {"INPUT": stack, "LABELS": scene["LABELS_RASTER"], "TILE_SIZE": 64, "STRIDE": 32,
                  "SPLIT_BLOCK": 128, "VALIDATION_FRACTION": 0.2, "EXTENT": west,
                  "OUTPUT_FOLDER": str(out / "chips")})
    model = step("Train a multi-class U-Net (softmax, cross-entropy + Dice)", "train",
                 {"CHIPS": chips["OUTPUT_FOLDER"], "TASK": "multiclass", "LOSS": "ce_dice", "ARCHITECTURE": "Unet",
                  "ENCODER": "resnet18", "ENCODER_DEPTH": 3, "DECODER_CHANNELS": "32,16,16", "EPOCHS": args.epochs,
                  "BATCH_SIZE": 8, "LEARNING_RATE": 2e-3, "PATIENCE": 6, "SEED": args.seed,
                  "OUTPUT": str(out / "geology.lmpkg")})
    pred = step("Class map of the unseen eastern half", "predict",
                {"PACKAGE": model["OUTPUT"], "INPUT": stack, "EXTENT": east,
                 "OUTPUT_PROBABILITY": str(out / "class_probability_east.tif"),
                 "OUTPUT_MASK": str(out / "class_map_east.tif"),
                 "OUTPUT_POLYGONS": str(out / "class_polygons_east.gpkg")})
    ev = step("Per-class check against the known truth", "evaluate",
              {"PREDICTION": pred["OUTPUT_MASK"], "TRUTH": scene["LABELS_RASTER"], "CONFUSION_CLASS": "landslide",
               "OUTPUT_CONFUSION": str(out / "confusion_landslide_east.tif"),
               "OUTPUT_REPORT": str(out / "metrics_east.json")})
    metrics = json.loads(Path(ev["OUTPUT_REPORT"]).read_text())["metrics"]

    print("\n== Result on the unseen eastern half")
    print(f"geology macro F1: {metrics['macro_f1']:.3f}")
    print(format_class_table(metrics))
    print(f"   validation macro F1 during training {model['F1']:.3f}; report {Path(ev['OUTPUT_HTML']).name}, heat map "
          f"{Path(ev['OUTPUT_MATRIX_PLOT']).name}, class map {Path(pred['OUTPUT_MASK']).name} in {out}")
    print(f"   runtime {(time.perf_counter() - started) / 60:.1f} min (elapsed {clock()}); the runtime depends on the "
          f"CPU and on what else runs on it, the scores on the seed and epochs.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
