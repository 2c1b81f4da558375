"""Pre-training speed, float32 against `pretrain --compute bfloat16`, on the real training step.

    python benchmarks/pretrain_speed.py --data-root ../shared/data/omniglot [--split-scheme lake]
        [--hidden 64,128,256] [--steps 10] [--device cpu]

Both float types run the same pre-training steps (the engine's own `train_step`, same data, seed and
batch) in the same run, interleaved step by step so that other load on the machine hits both alike.
Prints a Markdown table: seconds per step (median), images per second, and the speed-up.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anil_engine.config import PRETRAIN_COMPUTE, PretrainConfig  # noqa: E402
from anil_engine.environment import machine_description  # noqa: E402
from anil_engine.meta.pretraining import _Pretraining  # noqa: E402

WARMUP = 2


def step_times(configs: list[PretrainConfig], steps: int) -> list[list[float]]:
    """Seconds of each of `steps` training steps, per config, the configs taking turns."""
    with tempfile.TemporaryDirectory() as tmp:
        runs = [_Pretraining(c, Path(tmp) / f"{i}.pt") for i, c in enumerate(configs)]
        times: list[list[float]] = [[] for _ in runs]
        for n in range(WARMUP + steps):
            for run, seen in zip(runs, times, strict=True):
                if run.step_in_epoch >= run.steps_per_epoch:
                    run.step_in_epoch = 0
                start = time.perf_counter()
                run.train_step()
                if n >= WARMUP:
                    seen.append(time.perf_counter() - start)
        return times


def table(args: argparse.Namespace) -> list[str]:
    rows = [
        "| trunk | batch | float32 s/step | bfloat16 s/step | float32 img/s | bfloat16 img/s | speed-up |",
        "|---|---|---|---|---|---|---|",
    ]
    for hidden in (int(h) for h in args.hidden.split(",")):
        configs = [
            PretrainConfig(
                args.dataset,
                args.data_root,
                args.split_scheme,
                batch_size=args.batch_size,
                hidden_size=hidden,
                input_size=args.input_size,
                device=args.device,
                compute=compute,
            )  # fmt: skip
            for compute in PRETRAIN_COMPUTE
        ]
        fp32, bf16 = (statistics.median(t) for t in step_times(configs, args.steps))
        b = args.batch_size
        rows.append(
            f"| CNN4-{hidden}, {args.input_size}x{args.input_size} | {b} | {fp32:.3f} | {bf16:.3f} | "
            f"{b / fp32:,.0f} | {b / bf16:,.0f} | {fp32 / bf16:.2f}x |"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="omniglot")
    p.add_argument("--data-root", required=True)
    p.add_argument("--split-scheme", default="lake")
    p.add_argument("--hidden", default="64,128,256", help="CNN4 channels, comma-separated")
    p.add_argument("--input-size", type=int, default=28)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=10, help="timed steps per float type (after 2 warm-up steps)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    print(f"Pre-training steps on {machine_description(args.device)}, {args.steps} timed steps each:\n")
    print("\n".join(table(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
