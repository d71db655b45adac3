"""`make bench`: speed and memory benchmarks, each printed as a ratio against a plain reference run in-process, and
`make bench BENCH=accuracy`: test F1 of the training defaults against a hand-written training loop on real data.

Every `scripts/bench_<area>.py` module exposes `main(out: Path)`; run all with `make bench`, or some with
`make bench BENCH="predict chips"`. Results are printed; scratch data goes to bench_out/ (git-ignored).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / ".build" / "import"))
sys.path.insert(0, str(HERE))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def available() -> list[str]:
    return sorted(p.stem[len("bench_"):] for p in HERE.glob("bench_*.py"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("areas", nargs="*", help=f"which benchmarks (default all): {', '.join(available())}")
    parser.add_argument("--out", default=str(ROOT / "bench_out"))
    args = parser.parse_args()
    areas = args.areas or available()
    unknown = sorted(set(areas) - set(available()))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(available())}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failed = []
    for area in areas:
        print(f"\n== bench {area}", flush=True)
        started = time.perf_counter()
        try:
            importlib.import_module(f"bench_{area}").main(out / area)
        except Exception as exc:  # noqa: BLE001 - report and go on with the other benchmarks
            failed.append(area)
            print(f"   FAILED: {type(exc).__name__}: {exc}", flush=True)
        print(f"   ({time.perf_counter() - started:.0f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
