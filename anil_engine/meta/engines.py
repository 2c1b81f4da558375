"""The two meta-training engines behind one interface, for training, distributed training and the benchmark.

- "batched" (default): `FastEpisodeSampler` on the in-memory uint8 tensor (on
  the GPU when training there; learn2learn's tasks for the same seed, drawn
  without its per-image pipeline), `channels_last` trunk, every task's head adapted
  at once (`anil_engine.meta.batched`); on a CPU the trunk runs once per task with the
  fused BatchNorm/max-pool/ReLU kernel (`anil_engine.meta.fused`) where it is built; on
  a GPU each convolution runs once over the whole meta-batch, with per-task
  BatchNorm statistics.
- "reference": learn2learn's `Taskset` pipeline and per-task `MAML.clone()/adapt()`
  loop, exactly as in the article (contiguous memory format).

With the same seed both draw the same tasks and leave the same meta-gradient in
`.grad` (tests/test_batched.py).
"""

from __future__ import annotations

from typing import Any

import torch

from anil_engine.config import ENGINES, SAMPLERS, TaskSpec
from anil_engine.datasets.base import ImageTensorDataset
from anil_engine.errors import ConfigError
from anil_engine.meta import fused
from anil_engine.meta.batched import batched_meta_step
from anil_engine.meta.reference import StepResult, reference_meta_step
from anil_engine.models import AnilModel
from anil_engine.tasks import EpisodeSampler, FastEpisodeSampler, to_float


class MetaEngine:
    """Samples meta-batches and computes meta-gradients for `model` (which it moves to `device`).

    Args:
        engine: "batched" or "reference".
        model: the ANIL model; its head is the one being meta-learned. Tasks come in its dtype.
        data: training images.
        task: ways, shots and query per task.
        seed: seed of the task sampler.
        fast_lr, adaptation_steps, first_order: the inner loop.
        sampler: "auto" (the engine's own), "fast" (`FastEpisodeSampler`) or "learn2learn"
            (`EpisodeSampler`); both give the same tasks for a seed, the fast one
            without learn2learn's per-image pipeline.
        groups: with the fast sampler, each task's classes come from one of these groups
            (`tasks.class_groups`, e.g. one alphabet).
        head_start: where each task's inner loop starts, "meta" (the head) or "proto" (its support prototypes;
            batched engine only).
    """

    def __init__(
        self,
        engine: str,
        model: AnilModel,
        data: ImageTensorDataset,
        task: TaskSpec,
        seed: int,
        device: str,
        fast_lr: float,
        adaptation_steps: int,
        first_order: bool,
        sampler: str = "auto",
        groups: list[list[int]] | None = None,
        head_start: str = "meta",
    ) -> None:
        if engine not in ENGINES:
            raise ConfigError(f"engine must be one of {ENGINES}, got {engine!r}")
        if sampler not in SAMPLERS:
            raise ConfigError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        if sampler == "auto":
            sampler = "fast" if engine == "batched" else "learn2learn"
        self.engine, self.model, self.task, self.device = engine, model, task, device
        self.dtype = next(model.parameters()).dtype
        self.fast_lr, self.adaptation_steps, self.first_order = fast_lr, adaptation_steps, first_order
        if head_start not in ("meta", "proto"):
            raise ConfigError(f"meta-training starts each task's head from 'meta' or 'proto', got {head_start!r}")
        if head_start == "proto" and engine != "batched":
            raise ConfigError("the prototype head start is meta-trained by the batched engine only")
        self.head_start = head_start
        # One trunk call over the whole meta-batch pays on a GPU (fewer, larger launches), not on a CPU.
        self.one_pass = torch.device(device).type == "cuda"
        if self.one_pass:
            # A run's shapes are fixed: let cuDNN time its convolution algorithms once per shape.
            torch.backends.cudnn.benchmark = True
        if sampler == "fast":
            self.sampler: Any = FastEpisodeSampler(data, task, seed, device, groups)
        else:
            if groups is not None:
                raise ConfigError("tasks within a group are drawn by the fast sampler only")
            self.sampler = EpisodeSampler(data, task, seed)
        if engine == "batched":
            self.memory_format = torch.channels_last
            if not self.one_pass:
                fused.available()  # build the CPU kernel now (once per machine), not inside the first iteration
        else:
            from anil_engine._l2l import learn2learn

            self.memory_format = torch.contiguous_format
            self._maml = learn2learn().algorithms.MAML(model.head, lr=fast_lr, first_order=first_order)
        model.to(device, memory_format=self.memory_format)

    def sample(self, meta_batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """`meta_batch_size` tasks: float images on the device in the engine's memory format, labels."""
        if isinstance(self.sampler, FastEpisodeSampler) and meta_batch_size > 0:
            x, y = self.sampler.sample_many(meta_batch_size)
            x = to_float(x, self.device, self.dtype).contiguous(memory_format=self.memory_format)
            return list(zip(x.split(y.shape[1]), y.to(self.device), strict=True))
        tasks = []
        for _ in range(meta_batch_size):
            x, y = self.sampler.sample()
            x = to_float(x, self.device, self.dtype).contiguous(memory_format=self.memory_format)
            tasks.append((x, y.to(self.device)))
        return tasks

    def step(self, tasks: list[tuple[torch.Tensor, torch.Tensor]]) -> StepResult:
        """Accumulate the mean meta-gradient of `tasks` into `.grad` (call `zero_grad` before)."""
        t = self.task
        if self.engine == "batched":
            return batched_meta_step(
                self.model.trunk,
                self.model.head,
                tasks,
                self.fast_lr,
                self.adaptation_steps,
                t.shots,
                t.query,
                self.first_order,
                self.one_pass,
                self.head_start,
            )
        return reference_meta_step(
            self.model.trunk, self._maml, tasks, self.adaptation_steps, t.shots, t.query, self.first_order
        )
