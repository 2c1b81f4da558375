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
    """Split tasks into support and query.

    Within each class the images alternate support, query, support, ... until one
    side has its count; the rest go to the other side. With `shots == query`
    this is the article's even/odd split. Vectorised and free of host syncs, so it
    costs a few kernel launches on a GPU whatever the number of classes; the
    class-count check runs only for labels on the CPU (where the samplers make them).

    Args:
        labels: (n,) labels of one task, or (T, n) of T tasks; each class present
            `shots + query` times per task.

    Returns:
        (support_mask, query_mask), bool, the shape of `labels`.
    """
    if labels.device.type == "cpu":
        for row in labels.reshape(-1, labels.shape[-1]):
            counts = torch.bincount(row)
            bad = ((counts != 0) & (counts != shots + query)).nonzero()
            if len(bad):
                label = int(bad[0, 0])
                raise ValueError(
                    f"class {label} has {int(counts[label])} images in the task, expected {shots + query}"
                )
    # Position of each image within its class: index in the stably sorted order minus the class's first index.
    order = torch.argsort(labels, dim=-1, stable=True)
    ordered = labels.gather(-1, order)
    first = torch.searchsorted(ordered.contiguous(), ordered.contiguous())
    rank = torch.arange(labels.shape[-1], device=labels.device).expand_as(labels)
    position = torch.empty_like(labels).scatter_(-1, order, rank - first)
    paired = 2 * min(shots, query)
    support = torch.where(position < paired, position % 2 == 0, shots > query)
    return support, ~support


def usable_classes(data: ImageTensorDataset, task: TaskSpec) -> list[int]:
    """The classes with enough images for `task`; a clear error when there are fewer than `task.ways`."""
    counts = data.class_counts()
    usable = [c for c in range(data.n_classes) if int(counts[c]) >= task.per_class]
    if len(usable) < task.ways:
        raise ConfigError(
            f"{task.ways}-way tasks with {task.shots} shots + {task.query} query need {task.ways} classes "
            f"with >= {task.per_class} images each; this data has {len(usable)} such classes "
            f"(of {data.n_classes}). Lower ways, shots or query, or add images."
        )
    return usable


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

        usable = usable_classes(data, task)
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


class FastEpisodeSampler:
    """Episodes by index sampling on the in-memory uint8 tensor; the task distribution of `EpisodeSampler`.

    learn2learn's pipeline builds every task image by image in Python (about a
    millisecond per task on these CPUs, more for large tasks); here a task is a
    few tensor operations: `ways` distinct usable classes in random order become
    labels 0..ways-1 (what `FusedNWaysKShots` + `RemapLabels` give), each class
    contributes `shots + query` distinct random images, and the result is sorted
    by label (`ConsecutiveLabels`). The images may live on the GPU; the random
    state is a `torch.Generator` on the CPU, so a seed gives the same tasks on
    every device.

    Args:
        data: the images to sample from.
        task: ways, shots and query per class.
        seed: seed of the sampler's own generator.
        device: where the returned images are (the data set is copied there once).
    """

    def __init__(self, data: ImageTensorDataset, task: TaskSpec, seed: int, device: torch.device | str = "cpu") -> None:
        counts = data.class_counts()
        usable = torch.tensor(usable_classes(data, task), dtype=torch.long)
        self.task = task
        self.images = data.images.to(device)
        # (n_classes, max_count) image indices per class, padded; counts mask the padding out.
        order = torch.argsort(data.labels, stable=True)
        self._counts = counts[usable]
        starts = torch.cumsum(counts, 0) - counts
        width = int(self._counts.max())
        offsets = torch.arange(width).unsqueeze(0)
        rows = (starts[usable].unsqueeze(1) + offsets).clamp(max=len(order) - 1)
        self._index = order[rows]
        self._valid = offsets < self._counts.unsqueeze(1)
        self._generator = torch.Generator().manual_seed(seed)
        k = task.per_class
        self._labels = torch.arange(task.ways).repeat_interleave(k)

    def _indices(self) -> torch.Tensor:
        """One episode's image indices (ways*(shots+query),), on the CPU, grouped by label."""
        task, g = self.task, self._generator
        classes = torch.randperm(len(self._counts), generator=g)[: task.ways]
        # Distinct images per class: the per_class smallest of uniform keys over the class's images.
        keys = torch.rand(task.ways, self._index.shape[1], generator=g).masked_fill_(~self._valid[classes], 2.0)
        picks = keys.topk(task.per_class, dim=1, largest=False).indices
        return self._index[classes].gather(1, picks).reshape(-1)

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One episode: images uint8 (ways*(shots+query), c, h, w), labels (n,) in 0..ways-1, sorted."""
        return self.images[self._indices().to(self.images.device)], self._labels.clone()

    def sample_many(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`count` episodes in one gather (one transfer, one launch on a GPU): the episodes `count`
        calls of `sample` would give, images concatenated (count*n, c, h, w), labels (count, n)."""
        idx = torch.cat([self._indices() for _ in range(count)])
        return self.images[idx.to(self.images.device)], self._labels.repeat(count, 1)

    def state(self) -> torch.Tensor:
        """The generator state (a uint8 tensor), for resuming."""
        return self._generator.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        self._generator.set_state(state)
