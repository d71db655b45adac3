"""Single model vs top-K ensemble vs pixel baseline on simulated S1+S2 events (the global study's comparison).

Trains on one simulated event, picks members and thresholds on its validation chips, and scores every model on a
second, unseen simulated event (like the study's held-out Norway test):

    PYTHONPATH=.build/import .venv/bin/python scripts/compare_single_ensemble.py [--threads 1]

Prints F1 / precision / recall / MCC on the test event for the best single member, the ensemble and the
Random Forest baseline. Runs on a CPU in minutes with the default (compact) grid.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / ".build" / "import"))

BANDS = "pre_VV,post_VV,dVV,pre_VH,post_VH,dVH,dNDVI"  # preset s1_all plus dNDVI: the study's S1+S2 setting


def event_stack(folder: Path, size: int, seed: int):
    from landslide_mapper.core.simulate import simulate_event
    from landslide_mapper.core.stack import build_change_stack

    ev = simulate_event(folder / "event", width=size, height=size, seed=seed)
    stack = build_change_stack([ev.pre_s1, ev.pre_s2], [ev.post_s1, ev.post_s2], folder / "stack.tif", BANDS)
    return ev, stack


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "bench_out" / "compare_single_ensemble"))
    parser.add_argument("--train-size", type=int, default=768)
    parser.add_argument("--test-size", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--top-k", type=int, default=4)
    parser.add_argument("--architectures", default="Unet,FPN,Linknet,UnetPlusPlus")
    parser.add_argument("--losses", default="dice,bce")
    parser.add_argument("--learning-rates", default="0.001,0.003")
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    args = parser.parse_args()

    import torch

    from landslide_mapper.core.baseline import BaselineConfig, train_pixel_baseline
    from landslide_mapper.core.chips import Sampling, SplitOptions, export_chips
    from landslide_mapper.core.ensemble import EnsembleConfig, train_ensemble
    from landslide_mapper.core.metrics import evaluate_prediction
    from landslide_mapper.core.predict import sliding_window_predict
    from landslide_mapper.common.progress import PrintProgress
    from landslide_mapper.core.training import TrainConfig
    from landslide_mapper.models.package import read_package

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    train_event, train_stack = event_stack(out / "train", args.train_size, seed=21)
    test_event, test_stack = event_stack(out / "test", args.test_size, seed=22)
    chips = out / "chips"
    if not (chips / "chips.json").exists():
        export_chips(
            train_stack,
            train_event.labels_raster,
            chips,
            tile_size=64,
            progress=PrintProgress(),
            sampling=Sampling(stride=32),
            splits=SplitOptions(block=128, validation_fraction=0.25),
        )

    config = EnsembleConfig(
        architectures=args.architectures.split(","), losses=args.losses.split(","),
        learning_rates=[float(v) for v in args.learning_rates.split(",")], top_k=args.top_k,
        base=TrainConfig(encoder=args.encoder, epochs=args.epochs, patience=4, batch_size=8, seed=0),
        encoder_depth=3, decoder_width=8)
    ensemble = train_ensemble(chips, out / "ensemble.lmpkg", config, progress=PrintProgress())
    best = ensemble.rows[0]["member"]
    single = out / "ensemble.lmpkg.members" / f"{best}.lmpkg"
    baseline = train_pixel_baseline(chips, out / "random_forest.lmpkg", BaselineConfig(n_trees=50),
                                    progress=PrintProgress()).package

    results = {}
    members = [(f"  member {m}", out / "ensemble.lmpkg.members" / f"{m}.lmpkg") for m in ensemble.selected]
    for name, package in [("single (best by val F1: " + best + ")", single),
                          (f"ensemble (top {len(ensemble.selected)})", ensemble.package),
                          ("random forest (pixel baseline)", baseline)] + members:
        pkg = read_package(package)
        tag = Path(package).stem
        pred = sliding_window_predict(pkg, test_stack, out / f"{tag}_prob.tif", out / f"{tag}_mask.tif", cog=False)
        ev = evaluate_prediction(pred.mask, test_event.labels_raster)
        val = pkg.manifest["validation_metrics"]
        results[name] = {"val_f1": val.get("f1"), **{k: ev.metrics[k] for k in ("f1", "precision", "recall", "mcc")}}

    print("\nTest event (unseen simulated scene, seed 22): F1 / precision / recall / MCC; validation F1")
    for name, r in results.items():
        print(f"  {name:48s} {r['f1']:.3f} / {r['precision']:.3f} / {r['recall']:.3f} / {r['mcc']:.3f};"
              f" val {r['val_f1']:.3f}")
    names = list(results)
    gain = results[names[1]]["f1"] - results[names[0]]["f1"]
    mean_member = sum(results[n]["f1"] for n in names[3:]) / max(1, len(names) - 3)
    print(f"Ensemble − single on the test event: {gain:+.3f} F1 (the study: +0.05 for S1+S2); ensemble − mean "
          f"of its members: {results[names[1]]['f1'] - mean_member:+.3f} F1")
    print(f"({time.perf_counter() - started:.0f} s, leaderboard {ensemble.leaderboard})")
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
