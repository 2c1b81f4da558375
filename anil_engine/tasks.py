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

from anil_engine.config import WITHIN, TaskSpec
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
                raise ValueError(f"class {label} has {int(counts[label])} images in the task, expected {shots + query}")
    # Position of each image within its class: index in the stably sorted order minus the class's first index.
    order = torch.argsort(labels, dim=-1, stable=True)
    ordered = labels.gather(-1, order)
    first = torch.searchsorted(ordered.contiguous(), ordered.contiguous())
    rank = torch.arange(labels.shape[-1], device=labels.device).expand_as(labels)
    position = torch.empty_like(labels).scatter_(-1, order, rank - first)
    paired = 2 * min(shots, query)
    support = torch.where(position < paired, position % 2 == 0, shots > query)
    return support, ~support


def random_state(state: Any) -> tuple:
    """A `random.Random` state saved by `state()` (and maybe loaded back as lists), as `setstate` wants it."""
    try:
        version, internal, gauss = state
        return (int(version), tuple(int(v) for v in internal), gauss)
    except (TypeError, ValueError) as e:
        raise ConfigError(
            "the saved task-sampler state is not a Python random state (written by an older version "
            "of ANIL Studio?); start a new run instead of --resume"
        ) from e


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
        self._state = random_state(state)


def to_float(images: torch.Tensor, device: torch.device | str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 (n, c, h, w) -> `dtype` in [0, 1] on `device`."""
    return images.to(device, non_blocking=True).to(dtype).div_(255.0)


def labels_dataset(labels: torch.Tensor) -> ImageTensorDataset:
    """A stand-in data set holding labels only, for a `FastEpisodeSampler` whose caller keeps per-image tensors of
    its own (cached trunk features) and draws with `sample_indices`."""
    n_classes = int(labels.max()) + 1 if len(labels) else 0
    return ImageTensorDataset(
        torch.zeros(len(labels), 1, 1, 1, dtype=torch.uint8), labels, [str(i) for i in range(n_classes)]
    )


def class_groups(class_names: list[str], within: str) -> list[list[int]]:
    """Class indices grouped for episodes drawn `within` a group (`config.WITHIN`).

    "alphabet": Omniglot's characters by alphabet, unrotated ones only, as Lake et al. (2015) drew their
    one-shot runs (class names "alphabet/characterNN/rotDDD").
    "rotated-alphabet": by alphabet and rotation, every rotation of the split (each its own group).
    """
    if within not in WITHIN:
        raise ConfigError(f"episodes within {within!r}: one of {WITHIN}")
    groups: dict[tuple[str, str], list[int]] = {}
    for i, name in enumerate(class_names):
        parts = name.split("/")
        if len(parts) != 3 or not parts[2].startswith("rot"):
            raise ConfigError(
                f"grouping classes by alphabet needs Omniglot (class names alphabet/character/rotation), got {name!r}"
            )
        if within == "rotated-alphabet" or parts[2] == "rot000":
            groups.setdefault((parts[0], parts[2]), []).append(i)
    return list(groups.values())


def _usable_groups(groups: list[list[int]], usable: list[int], ways: int) -> list[list[int]]:
    allowed = set(usable)
    kept = [[c for c in g if c in allowed] for g in groups]
    kept = [g for g in kept if len(g) >= ways]
    if not kept:
        raise ConfigError(f"no group has {ways} classes with enough images for a {ways}-way episode; ask fewer ways")
    return kept


class FastEpisodeSampler:
    """learn2learn's task stream without its per-image pipeline: the same seed gives the same tasks.

    learn2learn's `Taskset` builds every task image by image in Python (about a
    millisecond per task on these CPUs, more for large tasks). Its randomness is a
    handful of calls on Python's `random`: `Taskset.sample`'s `randint(0, 0)`,
    `FusedNWaysKShots`'s `sample` of the classes and of each class's images, and
    `RemapLabels`' `shuffle` of the label order. This sampler makes exactly those
    calls, in that order, on its own `random.Random(seed)` (what `EpisodeSampler`
    swaps in), and gathers the chosen images from the in-memory uint8 tensor in one
    indexing operation. So `FastEpisodeSampler(data, task, seed)` and
    `EpisodeSampler(data, task, seed)` return the same episodes (tested), and a
    training run's accuracy does not depend on which one drew its tasks. The
    images may live on the GPU; the random state stays on the CPU.

    Args:
        data: the images to sample from.
        task: ways, shots and query per class.
        seed: seed of the sampler's own random state.
        device: where the returned images are (the data set is copied there once).
        groups: with them, each episode first picks one group (uniformly), then its classes inside it
            (`class_groups`); without, learn2learn's draws exactly.
    """

    def __init__(
        self,
        data: ImageTensorDataset,
        task: TaskSpec,
        seed: int,
        device: torch.device | str = "cpu",
        groups: list[list[int]] | None = None,
    ) -> None:
        self.task = task
        self._usable = usable_classes(data, task)
        self._groups = None if groups is None else _usable_groups(groups, self._usable, task.ways)
        self._indices_of = data.labels_to_indices()
        self.images = data.images.to(device)
        self._random = random.Random(seed)
        self._labels = torch.arange(task.ways).repeat_interleave(task.per_class)

    def _indices(self) -> list[int]:
        """One episode's image indices, grouped by label 0..ways-1: learn2learn's draws, in its order."""
        rng, task = self._random, self.task
        rng.randint(0, 0)  # Taskset.sample picks task 0 of its single uncached "task"
        pool = self._usable if self._groups is None else rng.choice(self._groups)  # within one group: its classes
        classes = rng.sample(pool, k=task.ways)  # FusedNWaysKShots.new_task
        picks = {c: rng.sample(self._indices_of[c], k=task.per_class) for c in classes}
        order = list(set(classes))  # RemapLabels: label i is order[i] after the shuffle
        rng.shuffle(order)
        return [i for c in order for i in picks[c]]

    def _gather(self, indices: list[int]) -> torch.Tensor:
        """The images at `indices`, by `index_select` on rows of bytes (on one CPU thread 7x faster than
        advanced indexing of the 4-D uint8 tensor for a 32-task Omniglot meta-batch: 0.05 against 0.38 ms)."""
        idx = torch.tensor(indices, dtype=torch.long).to(self.images.device, non_blocking=True)
        rows = self.images.view(self.images.shape[0], -1).index_select(0, idx)
        return rows.view(len(indices), *self.images.shape[1:])

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One episode: images uint8 (ways*(shots+query), c, h, w), labels (n,) in 0..ways-1, sorted."""
        return self._gather(self._indices()), self._labels.clone()

    def sample_indices(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next episode as indices into the data set (n,) and labels (n,): the draws of `sample`, for
        callers that hold per-image tensors of their own (cached trunk features)."""
        return torch.tensor(self._indices(), dtype=torch.long), self._labels.clone()

    def sample_many(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`count` episodes in one gather (one transfer, one launch on a GPU): the episodes `count`
        calls of `sample` would give, images concatenated (count*n, c, h, w), labels (count, n)."""
        return self._gather([i for _ in range(count) for i in self._indices()]), self._labels.repeat(count, 1)

    def state(self) -> Any:
        """The random state, for resuming (plain tuples; safe for weights_only loading)."""
        return self._random.getstate()

    def set_state(self, state: Any) -> None:
        self._random.setstate(random_state(state))
