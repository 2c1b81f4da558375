"""Episode sampling with learn2learn's MetaDataset / Taskset (formerly TaskDataset), seeded and resumable.

Each task: `ways` classes, `shots + query` images per class (`FusedNWaysKShots`),
loaded (`LoadData`), labels remapped to 0..ways-1 (`RemapLabels`) and sorted
(`ConsecutiveLabels`). learn2learn draws from Python's global `random`; the
sampler swaps its own state in and out around each draw, so runs are
reproducible from a seed and resumable from `state()`.
"""

from __future__ import annotations

import random
from typing import Any

import torch

from anil_engine.config import TaskSpec
from anil_engine.datasets.base import ImageTensorDataset
from anil_engine.errors import ConfigError


def support_query_masks(labels: torch.Tensor, shots: int, query: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a task into support and query.

    Within each class the images alternate support, query, support, ... until one
    side has its count; the rest go to the other side. With `shots == query`
    this is the article's even/odd split.

    Args:
        labels: (n,) labels of one task, each class present `shots + query` times.

    Returns:
        (support_mask, query_mask), bool (n,).
    """
    position = torch.zeros_like(labels)
    for label in labels.unique():
        idx = (labels == label).nonzero().squeeze(1)
        if idx.numel() != shots + query:
            raise ValueError(f"class {int(label)} has {idx.numel()} images in the task, expected {shots + query}")
        position[idx] = torch.arange(idx.numel(), device=labels.device)
    paired = 2 * min(shots, query)
    in_pairs = position < paired
    support = torch.where(in_pairs, position % 2 == 0, torch.tensor(shots > query, device=labels.device))
    return support, ~support


class EpisodeSampler:
    """Draws episodes from a data set through learn2learn's task pipeline.

    Args:
        data: the images to sample from.
        task: ways, shots and query per class.
        seed: seed of the sampler's own random state.
    """

    def __init__(self, data: ImageTensorDataset, task: TaskSpec, seed: int) -> None:
        from anil_engine._l2l import learn2learn

        l2l = learn2learn()

        counts = data.class_counts()
        usable = [c for c in range(data.n_classes) if int(counts[c]) >= task.per_class]
        if len(usable) < task.ways:
            raise ConfigError(
                f"{task.ways}-way tasks with {task.shots} shots + {task.query} query need {task.ways} classes "
                f"with >= {task.per_class} images each; this data has {len(usable)} such classes "
                f"(of {data.n_classes}). Lower ways, shots or query, or add images."
            )
        self.data = data
        self.task = task
        meta = l2l.data.MetaDataset(data, labels_to_indices=data.labels_to_indices())
        transforms = [
            l2l.data.transforms.FusedNWaysKShots(meta, n=task.ways, k=task.per_class, filter_labels=usable),
            l2l.data.transforms.LoadData(meta),
            l2l.data.transforms.RemapLabels(meta),
            l2l.data.transforms.ConsecutiveLabels(meta),
        ]
        self._tasks = l2l.data.Taskset(meta, task_transforms=transforms, num_tasks=-1)
        self._state = random.Random(seed).getstate()

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One episode: images uint8 (ways*(shots+query), c, h, w), labels (n,) in 0..ways-1, sorted."""
        outer = random.getstate()
        random.setstate(self._state)
        try:
            x, y = self._tasks.sample()
        finally:
            self._state = random.getstate()
            random.setstate(outer)
        y = torch.as_tensor(y, dtype=torch.long)
        order = torch.argsort(y, stable=True)
        return x[order], y[order]

    def state(self) -> Any:
        """The random state, for resuming (plain tuples; safe for weights_only loading)."""
        return self._state

    def set_state(self, state: Any) -> None:
        version, internal, gauss = state
        self._state = (int(version), tuple(int(v) for v in internal), gauss)


def to_float(images: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """uint8 (n, c, h, w) -> float32 in [0, 1] on `device`."""
    return images.to(device, non_blocking=True).float().div_(255.0)
