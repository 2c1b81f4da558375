"""Distributed meta-training: 2 CPU processes with gloo under torchrun, against one process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))  # tests/cli's helpers
from test_cli import tiny_train_args  # noqa: E402

from anil_engine.checkpoint import load_checkpoint
from anil_engine.config import TrainConfig
from anil_engine.datasets import load_dataset
from anil_engine.errors import ConfigError
from anil_engine.meta.distributed import rank_seed, task_shares
from anil_engine.meta.engines import MetaEngine
from anil_engine.meta.training import initial_model, train
from anil_engine.meta.trainrun import preprocessing_for
from anil_engine.tasks import FastEpisodeSampler


def torchrun(nproc: int, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    cmd += ["-m", "anil_engine", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def run_args(root, out, iterations: int, meta_batch: int, *extra: str) -> list[str]:
    args = tiny_train_args(root, out, iterations=iterations, val_every=1000)
    args[args.index("--meta-batch-size") + 1] = str(meta_batch)
    return [*args, "--checkpoint-every", "1", *extra]


def test_task_shares():
    assert task_shares(32, 4) == [8, 8, 8, 8]
    assert task_shares(5, 2) == [3, 2]
    with pytest.raises(ConfigError, match="cannot be split over 4 processes"):
        task_shares(3, 4)


def test_rank_seeds_are_distinct_and_reproducible():
    seeds = [rank_seed(42, r) for r in range(8)]
    assert seeds[0] == 42 and len(set(seeds)) == 8
    assert seeds == [rank_seed(42, r) for r in range(8)]


def test_two_gloo_processes_equal_one_process_on_the_whole_meta_batch(tmp_path, folder_root):
    """Uneven split on purpose: a meta-batch of 3 is 2 tasks on rank 0 and 1 on rank 1."""
    out = tmp_path / "ddp"
    done = torchrun(2, *run_args(folder_root, out, 1, 3))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["iterations"] == 1  # printed once, by rank 0
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["metrics"]["processes"] == 2 and ckpt["resume"]["world_size"] == 2

    # One process, the same initial model, the same 3 tasks (each rank's sampler), one Adam step.
    config = TrainConfig.from_dict(json.loads((out / "config.json").read_text()))
    pre = preprocessing_for(config)
    torch.manual_seed(config.seed)
    model = initial_model(config, pre)
    data = load_dataset("folder", config.data_root, "train", pre.size, pre.channels)
    engine = MetaEngine("batched", model, data, config.task, 0, "cpu", config.fast_lr, config.adaptation_steps, False)
    tasks = []
    for rank, share in enumerate(task_shares(3, 2)):
        engine.sampler = FastEpisodeSampler(data, config.task, rank_seed(config.seed, rank))
        tasks += engine.sample(share)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.meta_lr)
    model.train()
    engine.step(tasks)
    optimizer.step()

    # Adam's first moment after one step is (1 - beta1) x the gradient: the combined meta-gradient itself.
    moments = ckpt["resume"]["optimizer"]["state"]
    scale = max(float(p.grad.abs().max()) for p in model.parameters())
    for i, (name, p) in enumerate(model.named_parameters()):
        torch.testing.assert_close(moments[i]["exp_avg"], 0.1 * p.grad, rtol=1e-4, atol=1e-6 * scale, msg=name)
    # ... and the parameters after the step (1 Adam step moves each by about meta_lr x sign(gradient)).
    distributed = ckpt["state_dict"]
    for name, p in model.named_parameters():
        if name.endswith("conv.bias"):
            # BatchNorm cancels these biases: their true gradient is 0 and Adam's first step turns the
            # rounding noise into a step of up to meta_lr in either direction (so up to 2 x meta_lr apart).
            assert (distributed[name] - p).abs().max() <= 2.01 * config.meta_lr, name
        else:
            torch.testing.assert_close(distributed[name], p.detach(), rtol=1e-5, atol=1e-6, msg=name)


def test_two_process_run_resumes_from_its_checkpoint(tmp_path, folder_root):
    straight, split = tmp_path / "straight", tmp_path / "split"
    done = torchrun(2, *run_args(folder_root, straight, 3, 4))
    assert done.returncode == 0, done.stderr[-3000:]
    first = torchrun(2, *run_args(folder_root, split, 2, 4))
    assert first.returncode == 0, first.stderr
    assert len(load_checkpoint(split / "last.pt")["resume"]["samplers"]) == 2
    resumed = torchrun(2, *run_args(folder_root, split, 3, 4, "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(split / "last.pt")
    assert a["resume"]["iteration"] == b["resume"]["iteration"] == 3
    for name, t in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][name], t, rtol=1e-5, atol=1e-6, msg=name)
    logged = [json.loads(line)["iteration"] for line in (split / "metrics.jsonl").read_text().splitlines()]
    assert logged == [0, 1, 2, 3]

    # A different number of processes cannot continue the per-rank samplers.
    config = TrainConfig.from_dict(json.loads((split / "config.json").read_text()))
    with pytest.raises(ConfigError, match="was trained with 2 process"):
        next(train(config.__class__(**{**config.to_dict(), "iterations": 4}), split, resume=True))


@pytest.mark.parametrize("world", ["2", "1", None])
def test_a_torchrun_worker_leaves_with_its_code_and_its_output_flushed(world):
    # Under torchrun (2 processes) the worker ends in leave_worker with the command's code and everything it
    # printed, skipping the teardown gloo can abort; alone, or outside torchrun, the program goes on as usual.
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    if world is not None:
        env.update(RANK="1", WORLD_SIZE=world)
    code = "from anil_engine.cli import leave_worker\n"
    code += "print('saved', end='')\nleave_worker(3)\nprint(' went on')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    if world == "2":
        assert (done.returncode, done.stdout) == (3, "saved")
    else:
        assert (done.returncode, done.stdout) == (0, "saved went on\n")
