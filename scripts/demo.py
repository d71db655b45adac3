"""`make demo`: the whole chain on a simulated event, through the plugin's Processing algorithms, headless.

Simulate a ~2,000×2,000 px storm event → change stack (setting2: pre_VV, post_VV, dNDVI) → chips from the western
half → train a U-Net → predict the eastern half it never saw → evaluate against the known truth → quick-look PNG.
"""
from __future__ import annotations

import argparse
import json
import os
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


CLOCK = {"start": time.perf_counter(), "phase": 0, "phases": 0}


def phase(title: str) -> None:
    """Print a numbered phase header with the time since the demo started."""
    CLOCK["phase"] += 1
    total = f"/{CLOCK['phases']}" if CLOCK["phases"] else ""
    print(f"\n== [{CLOCK['phase']}{total}] {title}   (elapsed {clock()})", flush=True)


def clock() -> str:
    """Time since the demo started, as m:ss."""
    seconds = int(time.perf_counter() - CLOCK["start"])
    return f"{seconds // 60}:{seconds % 60:02d}"


def step(title: str, alg: str, params: dict) -> dict:
    import processing

    from qgis.core import QgsProcessingException

    phase(f"{title} ({alg})")
    started = time.perf_counter()
    try:
        result = processing.run(f"landslide_mapper:{alg}", params, feedback=Feedback())
    except QgsProcessingException as exc:  # a message for a person, not a traceback
        print(f"\n   {alg} failed: {exc}\n   The demo stops here (elapsed {clock()}).", file=sys.stderr, flush=True)
        sys.exit(1)
    print(f"   done in {time.perf_counter() - started:.1f} s", flush=True)
    return result


def fingerprint(settings: dict) -> str:
    """What the trained model depends on: the demo's settings and the code that simulates, stacks, chips and
    trains (a changed plugin retrains)."""
    import hashlib

    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for folder in ("core", "models"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            digest.update(path.relative_to(ROOT).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def reusable_model(out: Path, key: str) -> dict | None:
    """The earlier run's training results when its model is still there and was trained with `key`."""
    record = out / "model.lmpkg.demo.json"
    try:
        saved = json.loads(record.read_text())
    except (OSError, ValueError):
        return None
    if saved.get("fingerprint") != key or not (out / "model.lmpkg").is_file():
        return None
    return saved


def clear_stale(out: Path) -> list[str]:
    """Remove what an earlier demo run left that the new model makes stale: the ONNX cache of the old model."""
    import shutil

    removed = []
    cache = out / "model.lmpkg.onnx"
    if cache.is_dir():
        shutil.rmtree(cache)
        removed.append(cache.name)
    return removed


def peak_rss_mb() -> float | None:
    """This process's own peak resident memory (VmHWM, Linux), None where /proc does not say."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="demo_out",
                        help="output folder, created if missing; the demo's own files in it are rewritten, other "
                             "files are left alone; a model trained by an earlier run with the same settings and "
                             "code is reused (delete model.lmpkg to retrain)")
    parser.add_argument("--retrain", action="store_true", help="train again even when the model could be reused")
    parser.add_argument("--size", type=int, default=2000, help="scene width and height in pixels")
    parser.add_argument("--seed", type=int, default=2018)
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()

    started = time.perf_counter()
    CLOCK.update(start=started, phase=0, phases=8)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    print(f"Landslide Mapper demo: {args.size}×{args.size} px simulated event, {args.epochs} epochs, outputs in {out}",
          flush=True)
    phase("Start QGIS and the Processing framework")
    app, _provider = start_qgis()
    import rasterio

    from landslide_mapper.core.metrics import format_metrics, plot_confusion_map

    event = step("Simulate a storm event with known landslides", "simulate_event",
                 {"WIDTH": args.size, "HEIGHT": args.size, "SEED": args.seed, "OUTPUT_FOLDER": str(out / "event")})
    stack = step("Build the change stack (setting2: pre_VV, post_VV, dNDVI)", "change_stack",
                 {"PRE": [event["PRE_S1"], event["PRE_S2"]], "POST": [event["POST_S1"], event["POST_S2"]],
                  "PRESET": "setting2", "OUTPUT": str(out / "stack.tif")})["OUTPUT"]
    with rasterio.open(stack) as src:
        left, bottom, right, top = src.bounds
        crs = src.crs.to_string()
    middle = (left + right) / 2
    west = f"{left},{middle},{bottom},{top} [{crs}]"  # QGIS extent strings are xmin,xmax,ymin,ymax [crs]
    east = f"{middle},{right},{bottom},{top} [{crs}]"
    chip_params = {"INPUT": stack, "LABELS": event["LABELS_VECTOR"], "CLASS_FIELD": "class", "TILE_SIZE": 128,
                   "STRIDE": 96, "SPLIT_BLOCK": 384, "VALIDATION_FRACTION": 0.2, "EXTENT": west,
                   "OUTPUT_FOLDER": str(out / "chips")}
    train_params = {"ARCHITECTURE": "Unet", "ENCODER": "resnet18", "EPOCHS": args.epochs, "BATCH_SIZE": 8,
                    "LEARNING_RATE": 2e-3, "PATIENCE": 4, "ENCODER_DEPTH": 4, "DECODER_CHANNELS": "64,32,16,16",
                    "OUTPUT": str(out / "model.lmpkg")}
    key = fingerprint({"size": args.size, "seed": args.seed, "chips": {k: v for k, v in chip_params.items()
                                                                        if k not in ("INPUT", "LABELS")},
                       "train": train_params})
    model = None if args.retrain else reusable_model(out, key)
    if model is not None:
        CLOCK["phase"] += 2
        print(f"\n== [{CLOCK['phase'] - 1}–{CLOCK['phase']}/{CLOCK['phases']}] Chips and training skipped   "
              f"(elapsed {clock()})\n   Reusing {out / 'model.lmpkg'}: it was trained on this event with these chip "
              f"and training settings and this plugin code (--retrain or deleting it trains again).", flush=True)
    else:
        removed = clear_stale(out)
        if removed:
            print(f"   cleared what belonged to the earlier model: {', '.join(removed)}", flush=True)
        (out / "model.lmpkg.demo.json").unlink(missing_ok=True)
        chips = step("Export training chips from the western half", "export_chips", chip_params)
        model = step("Train a U-Net on the western chips", "train", {"CHIPS": chips["OUTPUT_FOLDER"], **train_params})
        (out / "model.lmpkg.demo.json").write_text(json.dumps(
            {"fingerprint": key, "OUTPUT": model["OUTPUT"], "F1": model["F1"], "THRESHOLD": model["THRESHOLD"]},
            indent=1))
    pred = step("Map landslides in the unseen eastern half", "predict",
                {"PACKAGE": model["OUTPUT"], "INPUT": stack, "EXTENT": east,
                 "OUTPUT_PROBABILITY": str(out / "probability_east.tif"), "OUTPUT_MASK": str(out / "mask_east.tif")})
    ev = step("Check the map against the known truth", "evaluate",
              {"PREDICTION": pred["OUTPUT_MASK"], "TRUTH": event["LABELS_VECTOR"],
               "OUTPUT_CONFUSION": str(out / "confusion_east.tif"), "OUTPUT_REPORT": str(out / "metrics_east.json")})
    phase("Quick-look of the confusion map")
    metrics = json.loads(Path(ev["OUTPUT_REPORT"]).read_text())["metrics"]
    png = plot_confusion_map(ev["OUTPUT_CONFUSION"], out / "confusion_east.png", metrics,
                             title="Unseen eastern half: TP green, FP red, FN blue")

    elapsed = time.perf_counter() - started
    peak_mb = peak_rss_mb()
    print("\n== Result on the unseen eastern half")
    print(f"   {format_metrics(metrics)}")
    print(f"   validation F1 during training {model['F1']:.3f}, threshold {model['THRESHOLD']:.2f}")
    print(f"   outputs in {out}: stack.tif, model.lmpkg, probability_east.tif, confusion_east.tif, {png.name}")
    print(f"   runtime {elapsed / 60:.1f} min, peak RSS "
          f"{f'{peak_mb:.0f} MB' if peak_mb is not None else 'not known here (no /proc)'}")
    print("   the runtime depends on the CPU and on what else runs on it; the scores on the seed and epochs.")
    app.exitQgis()
    f1 = metrics["f1"] or 0.0
    if f1 < 0.8:
        print(f"   F1 {f1:.3f} is below the 0.8 the simulated event should reach: something is wrong.")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
