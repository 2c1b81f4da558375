"""The table of `benchmarks/engine_accuracy.sh`: per seed, both engines, and how far apart they are.

python benchmarks/engine_accuracy_report.py WORK_DIR SEED [SEED ...]
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path

ENGINES = ("reference", "batched")
CONTROL = "reference-avx2"  # the reference again with AVX2 instead of AVX-512 kernels: rounding only
MODES = ("inductive", "transductive")


def load(work: Path, seed: str, engine: str) -> dict:
    run = work / f"seed{seed}" / engine
    out = {"seconds": json.loads((run / "done.json").read_text())["train_seconds"]}
    for mode in MODES:
        r = json.loads((run / f"test-{mode}.json").read_text())
        out[mode] = (r["accuracy"], r["ci95"])
    return out


def report(work: Path, seeds: list[str]) -> list[str]:
    rows = [
        "| seed | engine | meta-training s | test 5w1s inductive | test 5w1s transductive "
        "| minus reference (inductive) | mean inside the reference's interval |",
        "|---|---|---|---|---|---|---|",
    ]
    results = {s: {e: load(work, s, e) for e in ENGINES} for s in seeds}
    for s in seeds:
        if (work / f"seed{s}" / CONTROL / "test-transductive.json").exists():
            results[s][CONTROL] = load(work, s, CONTROL)
    for seed, by in results.items():
        ref = by["reference"]["inductive"]
        for engine in by:
            r = by[engine]
            own = r["inductive"]
            cells = [f"{r[m][0]:.2f} ± {r[m][1]:.2f}" for m in MODES]
            extra = ["", ""]
            if engine != "reference":
                # Two independent 1,000-episode estimates: the interval of their difference.
                diff_ci = math.hypot(ref[1], own[1])
                inside = abs(own[0] - ref[0]) <= ref[1]
                extra = [f"{own[0] - ref[0]:+.2f} (± {diff_ci:.2f})", "yes" if inside else "no"]
            rows.append(
                f"| {seed} | {engine} | {r['seconds']:.1f} | {cells[0]} | {cells[1]} | {extra[0]} | {extra[1]} |"
            )
    if len(seeds) > 1:
        for engine in [e for e in (*ENGINES, CONTROL) if all(e in results[s] for s in seeds)]:
            accs = [results[s][engine]["inductive"][0] for s in seeds]
            rows.append(
                f"| mean of {len(seeds)} seeds | {engine} | | {statistics.mean(accs):.2f} "
                f"(seed-to-seed sd {statistics.stdev(accs):.2f}) | | | |"
            )
    return rows


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    print("\n".join(report(Path(sys.argv[1]), sys.argv[2:])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
