"""Run every benchmark with modest sizes (2-core friendly) and print one summary table.

Each benchmark compares against a reference run in the same process and writes
``benchmarks/results/<name>.json``; this script only orchestrates and summarises.
Use the individual scripts' flags for full-size runs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# (script, quick args) — quick args keep the whole set to a few minutes on 2 cores.
BENCHMARKS = [
    ("bench_collator.py", []),
    ("bench_training_loop.py", []),
    ("bench_corpus_build.py", ["--mb", "20"]),
    ("bench_encoder.py", []),
    ("bench_distill_speed.py", ["--steps", "15", "--repeats", "1"]),
    ("bench_hub_upload.py", ["--mb", "100"]),
    ("bench_release.py", []),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="benchmark script names to run (default: all)")
    args = parser.parse_args()
    failures = 0
    for script, quick in BENCHMARKS:
        if args.only and script not in args.only and script.removesuffix(".py") not in args.only:
            continue
        path = HERE / script
        if not path.exists():
            print(f"[skip] {script}: not present")
            continue
        print(f"\n=== {script} {' '.join(quick)}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, str(path), *quick])
        print(f"=== {script}: exit {rc} in {time.perf_counter() - t0:.1f}s", flush=True)
        failures += rc != 0
    results = HERE / "results"
    if results.is_dir():
        print("\nresults:")
        for f in sorted(results.glob("*.json")):
            print(f"  {f.name}: {json.dumps(json.loads(f.read_text()), default=str)[:300]}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
