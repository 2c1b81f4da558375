"""Meta-training speed: learn2learn's per-task loop ("reference") and the batched engine, side by side.

    python benchmarks/meta_train_speed.py [--iterations 5] [--device cpu|cuda] [--configs omniglot,cifar,...]

Both engines run in the same invocation, each (configuration, engine) in its own
subprocess (so peak memory is per measurement), on the same synthetic images
(speed does not depend on the pixels). One meta-iteration = sample the
meta-batch + forward + inner loops + backward + Adam step, exactly as
`anil-studio train` does it; the sampler's share is also timed alone. Prints a
Markdown table (and `--json` writes the raw numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# name: (channels, size, hidden, ways, shots, query, meta_batch)
CONFIGS = {
    "omniglot-20w1s": (1, 28, 64, 20, 1, 1, 32),
    "cifar-5w5s": (3, 32, 64, 5, 5, 5, 32),
    "84px-5w5s-cnn4-32": (3, 84, 32, 5, 5, 5, 32),
    "84px-5w5s-cnn4-64": (3, 84, 64, 5, 5, 5, 32),
}
ENGINES = ("reference", "batched")
# Also measurable on a GPU: the batched engine with its trunk run once per task (the CPU layout), and with
# the Triton kernels for BatchNorm -> max-pool -> ReLU (anil_engine.meta.fused_gpu, ANIL_TRITON=1).
EXTRA_ENGINES = ("batched-per-task", "batched-triton")


@dataclass(frozen=True)
class Measurement:
    config: str
    engine: str
    seconds_per_iteration: float  # median
    sampling_seconds: float  # per meta-batch, median
    peak_memory_mib: float  # above the process's footprint before the first iteration
    device: str
    times: tuple[float, ...] = ()  # every timed iteration
    round_medians: tuple[float, ...] = ()  # one median per round (one process each)
    profile: str = ""  # with --profile: torch.profiler's table of the timed iterations


def _rss_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(name: str, engine_name: str, iterations: int, device: str, profile: bool = False) -> Measurement:
    import contextlib

    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as profiler

    from anil_engine.config import ModelConfig, Preprocessing, TaskSpec
    from anil_engine.datasets.base import ImageTensorDataset
    from anil_engine.meta.engines import MetaEngine
    from anil_engine.models import AnilModel

    channels, size, hidden, ways, shots, query, meta_batch = CONFIGS[name]
    if engine_name == "batched-triton":
        os.environ["ANIL_TRITON"] = "1"
    torch.manual_seed(0)
    n_classes, per_class = 64, 20
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n_classes * per_class, channels, size, size), dtype=torch.uint8, generator=g)
    data = ImageTensorDataset(images, torch.arange(n_classes).repeat_interleave(per_class), [""] * n_classes)
    pre = Preprocessing(size, channels, (0.5,) * channels, (0.25,) * channels)
    model = AnilModel(ModelConfig(hidden, 4, channels, size, ways), pre)
    task = TaskSpec(ways, shots, query)
    engine = MetaEngine(engine_name.split("-")[0], model, data, task, 0, device, 0.1, 5, False)
    if engine_name == "batched-per-task":
        engine.one_pass = False
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    def iteration() -> None:
        tasks = engine.sample(meta_batch)
        optimizer.zero_grad(set_to_none=True)
        engine.step(tasks)
        optimizer.step()

    iteration()  # warm-up (allocator, kernels)
    sync()
    start_rss = _rss_mib("VmRSS")
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        start_cuda = torch.cuda.memory_allocated()
    times, sampling = [], []
    activities = [ProfilerActivity.CPU] + [ProfilerActivity.CUDA] * (device == "cuda")
    with profiler(activities=activities) if profile else contextlib.nullcontext() as prof:
        for _ in range(iterations):
            t0 = time.perf_counter()
            iteration()
            sync()
            times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            engine.sample(meta_batch)
            sync()
            sampling.append(time.perf_counter() - t0)
    table = ""
    if profile:
        key = "self_cuda_time_total" if device == "cuda" else "self_cpu_time_total"
        table = prof.key_averages().table(sort_by=key, row_limit=15)
    if engine_name == "batched-triton":
        from anil_engine.meta import fused_gpu

        if fused_gpu.calls == 0:  # it fell back to PyTorch's ops: this would time the wrong thing
            raise SystemExit(f"the Triton kernels did not run: {fused_gpu._failed or 'not on a GPU'}")
    if device == "cuda":
        peak = (torch.cuda.max_memory_allocated() - start_cuda) / 2**20
    else:
        peak = _rss_mib("VmHWM") - start_rss
    return Measurement(
        name, engine_name, statistics.median(times), statistics.median(sampling), peak, device, tuple(times), (), table
    )


def run_worker(name: str, engine: str, iterations: int, device: str, profile: bool = False) -> Measurement:
    cmd = [sys.executable, __file__, "--worker", name, engine, "--iterations", str(iterations), "--device", device]
    cmd += ["--profile"] * profile
    env = {k: v for k, v in os.environ.items() if k != "ANIL_TRITON"}  # only "batched-triton" turns them on
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{name} {engine} failed:\n{done.stderr.strip()}")
    out = done.stdout
    return Measurement(**json.loads(out.strip().splitlines()[-1]))


def table(results: list[Measurement]) -> list[str]:
    extra = [e for e in EXTRA_ENGINES if any(m.engine == e for m in results)]
    rows = [
        "| configuration | meta-batch | reference s/it | batched s/it | speed-up | speed-up by round "
        "| sampling ref / batched (ms) | peak memory ref / batched (MiB) |"
        + "".join(f" {e} s/it (speed-up) |" for e in extra),
        "|---|---|---|---|---|---|---|---|" + "---|" * len(extra),
    ]
    by = {(m.config, m.engine): m for m in results}
    for name in dict.fromkeys(m.config for m in results):
        ref, fast = by[(name, "reference")], by[(name, "batched")]
        rows.append(
            f"| {name} | {CONFIGS[name][6]} | {ref.seconds_per_iteration:.4f} | {fast.seconds_per_iteration:.4f} "
            f"| {ref.seconds_per_iteration / fast.seconds_per_iteration:.2f}x "
            f"| {', '.join(f'{r / b:.2f}' for r, b in zip(ref.round_medians, fast.round_medians, strict=True))} "
            f"| {1000 * ref.sampling_seconds:.1f} / {1000 * fast.sampling_seconds:.1f} "
            f"| {ref.peak_memory_mib:.0f} / {fast.peak_memory_mib:.0f} |"
            + "".join(
                f" {by[(name, e)].seconds_per_iteration:.4f} "
                f"({ref.seconds_per_iteration / by[(name, e)].seconds_per_iteration:.2f}x) |"
                for e in extra
            )
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=5, help="timed meta-iterations per engine (5)")
    parser.add_argument("--rounds", type=int, default=2, help="runs per engine, alternated (2)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset of " + ", ".join(CONFIGS))
    parser.add_argument(
        "--per-task-trunk",
        action="store_true",
        help="also time the batched engine with the trunk run once per task (its CPU layout; on a GPU it "
        "runs each convolution once over the meta-batch)",
    )
    parser.add_argument(
        "--triton",
        action="store_true",
        help="also time the batched engine with the Triton kernels of anil_engine.meta.fused_gpu (GPU only)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run the timed iterations under torch.profiler and print each run's top operations (the profiler "
        "slows them down: time without it)",
    )
    parser.add_argument("--json", default=None, help="also write the measurements to this file")
    parser.add_argument("--worker", nargs=2, metavar=("CONFIG", "ENGINE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        m = measure(args.worker[0], args.worker[1], args.iterations, args.device, args.profile)
        print(json.dumps(m.__dict__))
        return 0
    if args.triton and args.device != "cuda":
        parser.error("--triton times GPU kernels: use it with --device cuda")
    results = []
    for name in args.configs.split(","):
        if name not in CONFIGS:
            parser.error(f"unknown configuration {name!r}; choose from {', '.join(CONFIGS)}")
        # Alternate the engines over several rounds so that drift in machine speed hits both alike.
        engines = ENGINES + ("batched-per-task",) * args.per_task_trunk + ("batched-triton",) * args.triton
        runs: dict[str, list[Measurement]] = {e: [] for e in engines}
        for _ in range(args.rounds):
            for engine in engines:
                m = run_worker(name, engine, args.iterations, args.device, args.profile)
                print(f"{name} {engine}: {m.seconds_per_iteration:.3f} s/it", file=sys.stderr, flush=True)
                runs[engine].append(m)
        for engine, ms in runs.items():
            times = tuple(t for m in ms for t in m.times)
            results.append(
                Measurement(
                    name,
                    engine,
                    statistics.median(times),
                    statistics.median(m.sampling_seconds for m in ms),
                    max(m.peak_memory_mib for m in ms),
                    args.device,
                    times,
                    tuple(m.seconds_per_iteration for m in ms),
                    "\n".join(m.profile for m in ms),
                )
            )
    import torch

    print(
        f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads; median of "
        f"{args.rounds} x {args.iterations} timed iterations per engine (engines alternated, one process per run; "
        "speed-up by round: reference / batched within each round); 5 inner steps, second order\n"
    )
    print("\n".join(table(results)))
    for m in results if args.profile else ():
        print(f"\ntorch.profiler, {m.config}, {m.engine} (timings above were taken under the profiler):\n{m.profile}")
    if args.json:
        Path(args.json).write_text(json.dumps([m.__dict__ for m in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
