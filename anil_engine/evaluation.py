"""Few-shot evaluation: N-way K-shot episodes, head-only adaptation, mean +- 95% CI."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import torch

from anil_engine.adaptation import adapt_head, initial_head
from anil_engine.config import EvalConfig
from anil_engine.datasets.base import ImageTensorDataset
from anil_engine.models import AnilModel, batch_statistics, head_logits, model_with_views
from anil_engine.tasks import FastEpisodeSampler, class_groups, labels_dataset, support_query_masks, to_float


@dataclass(frozen=True)
class EvalProgress:
    """Yielded while evaluating."""

    episode: int
    episodes: int
    accuracy: float  # running mean, percent (NaN before the first episode)
    elapsed_s: float
    images_done: int = 0  # before the episodes: images whose features are computed so far
    images_total: int = 0


def mean_ci95(values: list[float]) -> tuple[float, float]:
    """Mean and 1.96 * std / sqrt(n) (sample std)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, float("nan")
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, 1.96 * math.sqrt(var / n)


def features_for(
    model: AnilModel, images: torch.Tensor, bn: str, device: torch.device | str, session: Any = None
) -> torch.Tensor:
    """Trunk features of one episode's images.

    `inductive`: eval-mode BatchNorm with running statistics; every image independent.
    `transductive`: BatchNorm uses this batch's statistics (learn2learn's protocol).
    `session`: an onnxruntime session of the same trunk in the same BatchNorm mode (verified to 1e-4).
    """
    if session is not None:
        x = images.float().div_(255.0).numpy()
        return torch.from_numpy(session.run(None, {"images": x})[0]).to(device)
    model.eval()
    ctx = batch_statistics(model.trunk) if bn == "transductive" else contextlib.nullcontext()
    with torch.no_grad(), ctx:
        x = to_float(images, device).contiguous(memory_format=torch.channels_last)
        return model.test_features(x)


def nearest_class_mean(
    support: torch.Tensor, labels: torch.Tensor, query: torch.Tensor, n_classes: int
) -> torch.Tensor:
    """Predict the class whose mean support feature is nearest (Euclidean) to each query feature."""
    means = torch.zeros(n_classes, support.shape[1], dtype=support.dtype, device=support.device)
    means.index_add_(0, labels, support)
    means /= torch.bincount(labels, minlength=n_classes).clamp_min(1).unsqueeze(1).to(support.dtype)
    return torch.cdist(query, means).argmin(1)


def onnx_trunk_session(model: AnilModel, bn: str = "inductive") -> Any:
    """An onnxruntime session of the trunk (4-60x faster than torch eager on CPU), or None if unavailable."""
    try:
        from anil_engine.export import cached_trunk_onnx_bytes
        from anil_engine.runtime import cpu_session

        return cpu_session(cached_trunk_onnx_bytes(model, transductive=bn == "transductive"))
    except Exception:  # torch is always there as the fallback
        return None


def split_features(
    model: AnilModel, images: torch.Tensor, flip: bool = False, session: Any = None, batch: int = 64
) -> Generator[int, None, torch.Tensor]:
    """Inductive trunk features of every image of a split (each image independent); yields images done.

    Args:
        images: uint8 (n, c, s, s).
        flip: features of the mirror images instead.

    Returns:
        float32 (n, num_features) on the CPU.
    """
    model.eval()
    device = next(model.parameters()).device  # the model's own (a GPU run's pre-training validates on it)
    out = []
    for i in range(0, images.shape[0], batch):
        x = images[i : i + batch]
        if flip:
            x = x.flip(-1)
        out.append(features_for(model, x.contiguous(), "inductive", device, session).cpu())
        yield min(i + batch, images.shape[0])
    return torch.cat(out) if out else torch.zeros(0, model.num_features)


def evaluate_features(
    features: torch.Tensor,
    labels: torch.Tensor,
    config: EvalConfig,
    head: tuple[torch.Tensor, torch.Tensor],
    fast_lr: float,
    adaptation_steps: int,
    flipped: torch.Tensor | None = None,
    progress_every: int = 10,
    class_names: list[str] | None = None,
) -> Generator[EvalProgress, None, dict[str, Any]]:
    """`evaluate` on features computed once per image (inductive): the same seeded episodes, much faster.

    Args:
        features: (n, d) one row per image of the split; labels (n,).
        head: the meta-learned (weight (ways, d), bias (ways,)).
        flipped: (n, d) features of the mirror images; with `config.flip` they join each support set.
        class_names: the split's, for `config.within` (episodes inside one alphabet).
    """
    task = config.task
    lr = config.fast_lr if config.fast_lr is not None else fast_lr
    steps = config.adaptation_steps if config.adaptation_steps is not None else adaptation_steps
    init = config.head_init or "meta"
    flip = bool(config.flip)
    if flip and flipped is None:
        raise ValueError("flip augmentation needs the mirror images' features")
    sampler = FastEpisodeSampler(labels_dataset(labels), task, config.seed, groups=_groups(config, class_names))
    w_trained, b_trained = head[0].detach().float().cpu(), head[1].detach().float().cpu()  # features are on the CPU
    accuracies: list[float] = []
    start = time.perf_counter()
    for episode in range(1, config.episodes + 1):
        idx, y = sampler.sample_indices()
        f = features[idx]
        support, query = support_query_masks(y, task.shots, task.query)
        fs, ys = f[support], y[support]
        if flip:
            fs, ys = torch.cat([fs, flipped[idx][support]]), torch.cat([ys, ys])
        if config.method == "ncm":
            predictions = nearest_class_mean(fs, ys, f[query], task.ways)
        else:
            w0, b0 = initial_head(w_trained, b_trained, task.ways, init, fs, ys)
            w, b = adapt_head(fs, ys, w0, b0, lr, steps)
            predictions = head_logits(f[query], w, b).argmax(1)
        accuracies.append(100.0 * float((predictions == y[query]).float().mean()))
        if episode % progress_every == 0 or episode == config.episodes:
            yield EvalProgress(episode, config.episodes, sum(accuracies) / len(accuracies), time.perf_counter() - start)
    same_ways = task.ways == w_trained.shape[0]
    words = HEAD_INIT_WORDS[init] if init != "meta" or same_ways else "mean of meta-learned rows"
    return {**_summary(accuracies, config, lr, steps, words, start), "bn": "inductive", "flip": flip}


def _summary(
    accuracies: list[float], config: EvalConfig, lr: float, steps: int, head_init: str, start: float
) -> dict[str, Any]:
    """The result dict of an evaluation: mean and 95 % CI (percent) and the settings that produced them."""
    mean, ci = mean_ci95(accuracies)
    task = config.task
    return {
        "accuracy": round(mean, 3),
        "ci95": round(ci, 3),
        "episodes": config.episodes,
        "ways": task.ways,
        "shots": task.shots,
        "query": task.query,
        "bn": config.bn,
        "seed": config.seed,
        "fast_lr": lr,
        "adaptation_steps": steps,
        "head_init": head_init,
        "method": config.method,
        "within": config.within,
        "seconds": round(time.perf_counter() - start, 2),
    }


def _groups(config: EvalConfig, class_names: list[str] | None) -> list[list[int]] | None:
    if config.within is None:
        return None
    if class_names is None:
        raise ValueError("episodes within a group need the split's class names")
    return class_groups(class_names, config.within)


HEAD_INIT_WORDS = {"meta": "meta-learned", "zero": "zero", "proto": "prototypes (Proto-MAML)"}


def evaluate(
    model: AnilModel,
    data: ImageTensorDataset,
    config: EvalConfig,
    fast_lr: float,
    adaptation_steps: int,
    device: str = "cpu",
    progress_every: int = 10,
    use_onnx: bool = True,
    features_once: bool | None = None,
) -> Generator[EvalProgress, None, dict[str, Any]]:
    """Run `config.episodes` episodes; yields progress, returns the result dict.

    `features_once` (inductive BatchNorm only): compute each image's features once for the whole split
    instead of once per episode; None: whenever that is less trunk work, or the run needs it.

    Returns:
        {"accuracy", "ci95" (percent), "episodes", "ways", "shots", "query", "bn",
        "seed", "fast_lr", "adaptation_steps", "head_init", "seconds", "trunk_engine", "features_once", "views"}
    """
    task = config.task
    model = model_with_views(model, config.views)
    lr = config.fast_lr if config.fast_lr is not None else fast_lr
    steps = config.adaptation_steps if config.adaptation_steps is not None else adaptation_steps
    session = onnx_trunk_session(model, config.bn) if (str(device) == "cpu" and use_onnx) else None
    other_start = config.head_init not in (None, "meta")
    # Each image's inductive features do not depend on the others: compute them once, not once per episode,
    # whenever that is less trunk work (1,000 Omniglot 20-way 1-shot episodes: 320,000 images against the
    # split's 13,000-53,000), or the run needs them (flip, another head start). The same seeded episodes.
    if features_once is None:
        fewer = len(data) <= config.episodes * task.ways * task.per_class
        features_once = model.backbone.pretrained is not None or bool(config.flip) or other_start or fewer
    if config.bn == "inductive" and features_once:
        n = len(data) * (2 if config.flip else 1)
        feats = yield from _remembered(model, data.images, False, session, config.episodes, 0, n)
        flipped = None
        if config.flip:
            flipped = yield from _remembered(model, data.images, True, session, config.episodes, len(data), n)
        head = (model.head.weight, model.head.bias)
        result = yield from evaluate_features(
            feats, data.labels, config, head, lr, steps, flipped, progress_every, data.class_names
        )
        result["trunk_engine"] = "onnxruntime" if session is not None else "torch"
        result["features_once"] = True
        result["views"] = model.preprocessing.views
        return result
    model = model.to(device, memory_format=torch.channels_last)
    # learn2learn's episodes for this seed, without its pipeline (or, `within` an alphabet, Lake's).
    sampler = FastEpisodeSampler(data, task, config.seed, groups=_groups(config, data.class_names))
    w_trained, b_trained = model.head.weight.detach(), model.head.bias.detach()
    accuracies: list[float] = []
    start = time.perf_counter()
    for episode in range(1, config.episodes + 1):
        images, labels = sampler.sample()
        labels = labels.to(device)
        features = features_for(model, images, config.bn, device, session)
        support, query = support_query_masks(labels, task.shots, task.query)
        if config.method == "ncm":
            predictions = nearest_class_mean(features[support], labels[support], features[query], task.ways)
        else:
            w0, b0 = initial_head(w_trained, b_trained, task.ways)
            w, b = adapt_head(features[support], labels[support], w0, b0, lr, steps)
            with torch.no_grad():
                predictions = head_logits(features[query], w, b).argmax(1)
        accuracies.append(100.0 * float((predictions == labels[query]).float().mean()))
        if episode % progress_every == 0 or episode == config.episodes:
            yield EvalProgress(episode, config.episodes, sum(accuracies) / len(accuracies), time.perf_counter() - start)
    words = "meta-learned" if task.ways == w_trained.shape[0] else "mean of meta-learned rows"
    return {
        **_summary(accuracies, config, lr, steps, words, start),
        "trunk_engine": "onnxruntime" if session is not None else "torch",
        "features_once": False,
        "views": model.preprocessing.views,
    }


@dataclass(frozen=True)
class EvalRequest:
    """One evaluation of a checkpoint: which data, which episodes (`config`), where.

    `dataset` and `split_scheme` default to the checkpoint's. `random_trunk`: replace the trained trunk by a
    freshly initialised one (seeded by `config.seed`; BatchNorm statistics measured on 1,024 training
    images), the baseline the trained trunk must beat.
    """

    checkpoint: str
    data_root: str
    config: EvalConfig = field(default_factory=EvalConfig)
    dataset: str | None = None
    split: str = "test"
    split_scheme: str | None = None
    device: str = "auto"
    random_trunk: bool = False


def evaluate_checkpoint(request: EvalRequest) -> Generator[EvalProgress, None, dict[str, Any]]:
    """Load the checkpoint and the split of its data set, then `evaluate` it; yields progress.

    Returns:
        `evaluate`'s result plus "dataset", "split", "split_scheme", "checkpoint", "device", "trunk".
    """
    checkpoint, data_root, config, dataset, split, split_scheme, device, random_trunk = (
        request.checkpoint,
        request.data_root,
        request.config,
        request.dataset,
        request.split,
        request.split_scheme,
        request.device,
        request.random_trunk,
    )
    from anil_engine.checkpoint import load_checkpoint
    from anil_engine.config import resolve_device
    from anil_engine.datasets import load_dataset
    from anil_engine.models import calibrate_batchnorm, model_from_checkpoint

    ckpt = load_checkpoint(checkpoint)
    # Views the model cannot take are refused before the data is read.
    model = model_with_views(model_from_checkpoint(ckpt, checkpoint), config.views, str(checkpoint))
    name = dataset or ckpt["dataset"].get("name", "omniglot")
    scheme = split_scheme or ckpt["dataset"].get("split_scheme", "vinyals")
    pre = model.preprocessing
    data = load_dataset(name, data_root, split, pre.size, pre.channels, scheme, crop=pre.crop)
    if random_trunk:
        torch.manual_seed(config.seed)
        model = AnilModel(model.config, pre)
        train_images = load_dataset(name, data_root, "train", pre.size, pre.channels, scheme, crop=pre.crop).images
        pick = torch.randperm(len(train_images), generator=torch.Generator().manual_seed(config.seed))[:1024]
        calibrate_batchnorm(model, to_float(train_images[pick], "cpu"))
    dev = resolve_device(device)
    # The checkpoint's head start and flip unless the caller chose (`anil-studio tune` records them).
    config = dataclasses.replace(
        config,
        head_init=config.head_init or ckpt.get("head_init", "meta"),
        flip=bool(ckpt.get("flip", False)) if config.flip is None else config.flip,
    )
    result = yield from evaluate(model, data, config, ckpt["fast_lr"], ckpt["adaptation_steps"], dev)
    result.update(
        {
            "dataset": name,
            "split": split,
            "split_scheme": scheme,
            "checkpoint": str(checkpoint),
            "device": dev,
            "trunk": "random" if random_trunk else "trained",
        }
    )
    return result


# Inductive features of whole splits, kept for the process's next evaluation of the same trunk on the same images
# (a card measures one split in 5-10 settings; with 9 test-time views each pass over the split takes minutes).
_REMEMBERED: dict[tuple[str, str, bool], torch.Tensor] = {}
REMEMBERED_SPLITS = 4


def _remembered(
    model: AnilModel, images: torch.Tensor, flip: bool, session: Any, episodes: int, offset: int, total: int
) -> Generator[EvalProgress, None, torch.Tensor]:
    """`split_features` under progress, or the features an earlier evaluation in this process computed."""
    import hashlib

    from anil_engine.export import trunk_cache_key

    key = (trunk_cache_key(model), hashlib.sha256(images.contiguous().numpy().tobytes()).hexdigest(), flip)
    if key not in _REMEMBERED:
        features = yield from _progress_of(split_features(model, images, flip, session), episodes, offset, total)
        while len(_REMEMBERED) >= REMEMBERED_SPLITS:
            _REMEMBERED.pop(next(iter(_REMEMBERED)))
        _REMEMBERED[key] = features
    return _REMEMBERED[key]


def _progress_of(
    gen: Generator[int, None, torch.Tensor], episodes: int, offset: int, total: int
) -> Generator[EvalProgress, None, torch.Tensor]:
    """Feature extraction shown before episode 1 (episode 0, accuracy NaN, images done of total)."""
    t0 = time.perf_counter()
    while True:
        try:
            done = next(gen)
        except StopIteration as stop:
            return stop.value
        yield EvalProgress(0, episodes, float("nan"), time.perf_counter() - t0, offset + done, total)
