"""`make demo`: the whole chain on a simulated event, through the plugin's Processing algorithms, headless.

Simulate a ~2,000×2,000 px storm event → change stack (setting2: pre_VV, post_VV, dNDVI) → chips from the western
half → train a U-Net → predict the eastern half it never saw → evaluate against the known truth → quick-look PNG.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / ".build" / "import"))
sys.path.append("/usr/share/qgis/python/plugins")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def start_qgis():
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    from processing.core.Processing import Processing

    Processing.initialize()
    from landslide_mapper.processing_provider.provider import LandslideMapperProvider

    provider = LandslideMapperProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    return app, provider


class Feedback:
    """Processing feedback that prints log lines and a coarse progress bar to the terminal."""

    def __new__(cls):
        from qgis.core import QgsProcessingFeedback

        class _Printing(QgsProcessingFeedback):
            def pushInfo(self, info):  # noqa: N802
                print(f"    {info}", flush=True)

            def reportError(self, error, fatalError=False):  # noqa: N802,N803
                print(f"    ERROR: {error}", flush=True)

        return _Printing()


def step(title: str, alg: str, params: dict) -> dict:
    import processing

    print(f"\n== {title} ({alg})", flush=True)
    started = time.perf_counter()
    result = processing.run(f"landslide_mapper:{alg}", params, feedback=Feedback())
    print(f"   done in {time.perf_counter() - started:.1f} s", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="demo_out", help="output folder (replaced)")
    parser.add_argument("--size", type=int, default=2000, help="scene width and height in pixels")
    parser.add_argument("--seed", type=int, default=2018)
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()

    started = time.perf_counter()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    app, _provider = start_qgis()
    import rasterio

    from landslide_mapper.core.metrics import format_metrics, plot_confusion_map

    event = step("Simulate a storm event with known landslides", "simulate_event",
                 {"WIDTH": args.size, "HEIGHT": args.size, "SEED": args.seed, "OUTPUT_FOLDER": str(out / "event")})
    stack = step("Build the change stack (setting2: pre_VV, post_VV, dNDVI)", "change_stack",
                 {"PRE": [event["PRE_S1"], event["PRE_S2"]], "POST": [event["POST_S1"], event["POST_S2"]],
                  "PRESET": 1, "OUTPUT": str(out / "stack.tif")})["OUTPUT"]
    with rasterio.open(stack) as src:
        left, bottom, right, top = src.bounds
        crs = src.crs.to_string()
    middle = (left + right) / 2
    west = f"{left},{middle},{bottom},{top} [{crs}]"  # QGIS extent strings are xmin,xmax,ymin,ymax [crs]
    east = f"{middle},{right},{bottom},{top} [{crs}]"
    chips = step("Export training chips from the western half", "export_chips",
                 {"INPUT": stack, "LABELS": event["LABELS_VECTOR"], "CLASS_FIELD": "class", "TILE_SIZE": 128,
                  "STRIDE": 96, "SPLIT_BLOCK": 384, "VALIDATION_FRACTION": 0.2, "EXTENT": west,
                  "OUTPUT_FOLDER": str(out / "chips")})
    model = step("Train a U-Net on the western chips", "train",
                 {"CHIPS": chips["OUTPUT_FOLDER"], "ARCHITECTURE": 0, "ENCODER": "resnet18", "EPOCHS": args.epochs,
                  "BATCH_SIZE": 8, "LEARNING_RATE": 2e-3, "PATIENCE": 4, "ENCODER_DEPTH": 4,
                  "DECODER_CHANNELS": "64,32,16,16", "OUTPUT": str(out / "model.lmpkg")})
    pred = step("Map landslides in the unseen eastern half", "predict",
                {"PACKAGE": model["OUTPUT"], "INPUT": stack, "EXTENT": east,
                 "OUTPUT_PROBABILITY": str(out / "probability_east.tif"), "OUTPUT_MASK": str(out / "mask_east.tif")})
    ev = step("Check the map against the known truth", "evaluate",
              {"PREDICTION": pred["OUTPUT_MASK"], "TRUTH": event["LABELS_VECTOR"],
               "OUTPUT_CONFUSION": str(out / "confusion_east.tif"), "OUTPUT_REPORT": str(out / "metrics_east.json")})
    metrics = json.loads(Path(ev["OUTPUT_REPORT"]).read_text())["metrics"]
    png = plot_confusion_map(ev["OUTPUT_CONFUSION"], out / "confusion_east.png", metrics,
                             title="Unseen eastern half: TP green, FP red, FN blue")

    elapsed = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("\n== Result on the unseen eastern half")
    print(f"   {format_metrics(metrics)}")
    print(f"   validation F1 during training {model['F1']:.3f}, threshold {model['THRESHOLD']:.2f}")
    print(f"   outputs in {out}: stack.tif, model.lmpkg, probability_east.tif, confusion_east.tif, {png.name}")
    print(f"   runtime {elapsed / 60:.1f} min, peak RSS {peak_mb:.0f} MB")
    app.exitQgis()
    f1 = metrics["f1"] or 0.0
    if f1 < 0.8:
        print(f"   F1 {f1:.3f} is below the 0.8 the simulated event should reach: something is wrong.")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
