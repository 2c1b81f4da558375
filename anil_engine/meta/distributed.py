"""Meta-training across processes with torch.distributed, as launched by `torchrun`.

`torchrun --nproc-per-node N -m anil_engine train ...` starts N copies of the
training command; each finds RANK / WORLD_SIZE / LOCAL_RANK in its environment,
joins the process group (NCCL on GPUs, gloo on CPU), takes its share of every
meta-batch from its own seeded task sampler, and the meta-gradients are
combined with one `all_reduce` per iteration, weighted by each rank's number of
tasks, so that the update equals one process running the whole meta-batch on
the same tasks. Rank 0 alone validates and writes checkpoints, logs and the
progress bar.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from anil_engine.errors import ConfigError


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in the job; a single process is rank 0 of 1."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_from_env(device: str) -> tuple[DistContext, str]:
    """Join the process group torchrun describes (if any); returns the context and this rank's device.

    Args:
        device: the resolved device ("cpu" or "cuda"); CUDA ranks use GPU LOCAL_RANK.
    """
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        return DistContext(), device
    ctx = DistContext(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    if device == "cuda":
        if ctx.local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"rank {ctx.rank}: LOCAL_RANK {ctx.local_rank} but this node has {torch.cuda.device_count()} GPUs; "
                "start at most one process per GPU (--nproc-per-node)"
            )
        torch.cuda.set_device(ctx.local_rank)
        device = f"cuda:{ctx.local_rank}"
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    return ctx, device


def shutdown(ctx: DistContext, synchronize: bool = True) -> None:
    """Leave the process group.

    With `synchronize` (a run that completed on every rank), wait for every rank first, so
    that no rank tears gloo down while rank 0 still saves and validates. Under CPU load a
    2-process test run's rank 1 sometimes aborted at exit ("terminate called without an
    active exception"): 2 of 3 runs before this barrier, 1 of 9 after it; the command line
    now ends a worker without the teardown where that abort happens (`anil_engine.cli.main`).
    Not on an error or cancel path, where another rank may never arrive.
    """
    if ctx.enabled:
        if dist.is_initialized():
            if synchronize:
                dist.barrier()
            dist.destroy_process_group()


def task_shares(meta_batch_size: int, world_size: int) -> list[int]:
    """Tasks per rank: as even as possible (the first ranks take one more when it does not divide)."""
    if meta_batch_size < world_size:
        raise ConfigError(
            f"a meta-batch of {meta_batch_size} tasks cannot be split over {world_size} processes; "
            f"use --meta-batch-size >= {world_size} or fewer processes"
        )
    base, extra = divmod(meta_batch_size, world_size)
    return [base + (r < extra) for r in range(world_size)]


def rank_seed(seed: int, rank: int) -> int:
    """The task-sampler seed of `rank`: rank 0 keeps `seed` (a one-process run is unchanged), others differ."""
    if rank == 0:
        return seed
    return int(torch.randint(0, 2**62, (1,), generator=torch.Generator().manual_seed(seed * 1_000_003 + rank)))


def broadcast_model(ctx: DistContext, model: nn.Module) -> None:
    """Make every rank start from rank 0's parameters and buffers."""
    if not ctx.enabled:
        return
    for t in model.state_dict().values():
        dist.broadcast(t, 0)


def combine_gradients(
    ctx: DistContext, params: list[nn.Parameter], share: int, total: int, loss: float, accuracy: float
) -> tuple[float, float]:
    """Turn each rank's mean gradient over its `share` tasks into the mean over all `total` tasks.

    Also combines the logged loss and accuracy the same way. One all_reduce of a
    flattened buffer (gradients, loss, accuracy).
    """
    if not ctx.enabled:
        return loss, accuracy
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    device = grads[0].device
    flat = torch.cat([g.reshape(-1) for g in grads] + [torch.tensor([loss, accuracy], device=device)])
    flat.mul_(share / total)
    dist.all_reduce(flat)
    offset = 0
    for p, g in zip(params, grads, strict=True):
        n = g.numel()
        p.grad = flat[offset : offset + n].view_as(g).clone()
        offset += n
    return float(flat[-2]), float(flat[-1])


def average_buffers(ctx: DistContext, model: nn.Module) -> None:
    """Average the BatchNorm running statistics over the ranks (each saw different tasks)."""
    if not ctx.enabled:
        return
    for name, t in model.named_buffers():
        if t.is_floating_point():
            dist.all_reduce(t)
            t.div_(ctx.world_size)
        elif name.endswith("num_batches_tracked"):
            dist.broadcast(t, 0)


def gather(ctx: DistContext, value: Any) -> list[Any]:
    """Every rank's `value`, in rank order (on every rank)."""
    if not ctx.enabled:
        return [value]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, value)
    return out
