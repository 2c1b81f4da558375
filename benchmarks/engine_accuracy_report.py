"""The table of `benchmarks/engine_accuracy.sh`: per seed, both engines, and how far apart they are.

Besides the test accuracies, each run's final weights are compared with the reference run's of the same
seed: the largest relative difference, max |w - w_ref| / max |w_ref| over each tensor, over all weights
and BatchNorm statistics except the convolution biases. A convolution bias feeds a training-mode
BatchNorm, which subtracts it again: its gradient is zero up to rounding. In float32 that rounding
noise (around 1e-8) is as large as Adam's eps, so Adam moves the biases in steps of about the learning
rate in random directions, differently in every run; in float64 they stay near their initial zero.
The running means follow those biases, so they are compared on the activations' scale,
max |w_ref| + max sqrt(running_var).

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


def weight_difference(run: Path, reference: Path) -> float | None:
    """Largest relative difference between the two runs' final weights (see above); None without both."""
    if not ((run / "last.pt").is_file() and (reference / "last.pt").is_file()):
        return None
    import torch

    a, b = (torch.load(r / "last.pt", weights_only=True)["state_dict"] for r in (run, reference))
    worst = 0.0
    for name, ref in b.items():
        if not ref.is_floating_point() or name.endswith("conv.bias"):
            continue
        scale = ref.double().abs().max()
        if name.endswith("running_mean"):
            scale = scale + b[name.replace("mean", "var")].double().sqrt().max()
        worst = max(worst, float((a[name].double() - ref.double()).abs().max() / scale.clamp_min(1e-30)))
    return worst


def load(work: Path, seed: str, engine: str) -> dict:
    run = work / f"seed{seed}" / engine
    config = run / "config.json"
    out = {
        "seconds": json.loads((run / "done.json").read_text())["train_seconds"],
        # Runs from before the setting existed trained in float32.
        "precision": json.loads(config.read_text()).get("precision", "float32") if config.is_file() else "float32",
        "weights": None if engine == "reference" else weight_difference(run, run.parent / "reference"),
    }
    for mode in MODES:
        r = json.loads((run / f"test-{mode}.json").read_text())
        out[mode] = (r["accuracy"], r["ci95"])
    return out


def report(work: Path, seeds: list[str]) -> list[str]:
    rows = [
        "| seed | engine | precision | meta-training s | test 5w1s inductive | test 5w1s transductive "
        "| minus reference (inductive) | mean inside the reference's interval | weights: max relative difference |",
        "|---|---|---|---|---|---|---|---|---|",
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
            extra = ["", "", ""]
            if engine != "reference":
                # Two independent 1,000-episode estimates: the interval of their difference.
                diff_ci = math.hypot(ref[1], own[1])
                inside = abs(own[0] - ref[0]) <= ref[1]
                weights = "" if r["weights"] is None else f"{r['weights']:.1e}"
                extra = [f"{own[0] - ref[0]:+.2f} (± {diff_ci:.2f})", "yes" if inside else "no", weights]
            rows.append(
                f"| {seed} | {engine} | {r['precision']} | {r['seconds']:.1f} | {cells[0]} | {cells[1]} "
                f"| {' | '.join(extra)} |"
            )
    if len(seeds) > 1:
        for engine in [e for e in (*ENGINES, CONTROL) if all(e in results[s] for s in seeds)]:
            accs = [results[s][engine]["inductive"][0] for s in seeds]
            rows.append(
                f"| mean of {len(seeds)} seeds | {engine} | | | {statistics.mean(accs):.2f} "
                f"(seed-to-seed sd {statistics.stdev(accs):.2f}) | | | | |"
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
