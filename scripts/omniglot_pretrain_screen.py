"""Issue 19: quick screen of pre-training variants on one lake fold, before any of them earns a six-fold run.

A framed 64-channel CNN4 pre-trained as `pretrain --crop ink` does (same seed, batches and schedule), with one
change to the training batch; compare the results with `scripts/compare_trunks.py BASE.pt VARIANT.pt --split val
--within alphabet`. Variants:
    base     the engine's own step (identical weights to `anil-studio pretrain ... --crop ink`)
    mixup    input mixup (Beta(0.4, 0.4), the larger weight first; the loss mixes both labels)
    erase    half the images get a white square of 8-12 pixels at a random place (a part of a stroke gone)
    mild     the random affine at half its range (+-5 degrees, scale 0.95-1.05, shift +-5 %)
    noaug    no random affine at all
    doubled  every training image's mirror image added as a class of its own (twice the images, so twice the steps
             per epoch; `pretrain --mirror-classes` instead mirrors half of each batch at the same steps)
    chimera  new characters as classes of their own: for every training character, one made of its top (or left)
             half and the other half of another character of the same alphabet, drawer by drawer (so a chimera
             has its 20 drawers' variation), in 4 rotations (twice the images, so twice the steps per epoch)
    distil   born-again distillation: the loss is half the labels' cross-entropy and half the KL divergence (at
             temperature 4) to a trained trunk's class probabilities on the same augmented batch (`--teacher
             T.pt`, e.g. the base variant's result; its classifier over the training classes refitted on its
             frozen features of the unaugmented training images, since a checkpoint keeps only the trunk)
Usage:
    python scripts/omniglot_pretrain_screen.py VARIANT --data-root DATA [--fold lake] [--epochs 5] [--hidden-size 64]
        [--teacher T.pt] --out F.pt
On the 2-core Intel Xeon, 5 epochs take about 4.5 minutes (the AMD EPYC: about 5; `chimera` and `doubled` twice that).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import anil_engine.meta.pretraining as pretraining  # noqa: E402
from anil_engine.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from anil_engine.config import PretrainConfig  # noqa: E402
from anil_engine.datasets.base import ImageTensorDataset, joined  # noqa: E402
from anil_engine.meta.trainrun import make_checkpoint  # noqa: E402
from anil_engine.models import model_from_checkpoint  # noqa: E402
from anil_engine.tasks import to_float  # noqa: E402

VARIANTS = ("base", "mixup", "erase", "mild", "noaug", "doubled", "chimera", "distil")
MIXUP_ALPHA = 0.4
DISTIL_TEMPERATURE, DISTIL_WEIGHT = 4.0, 0.5


def erase(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Half the images: a white square of 8-12 pixels at a random centre (clipped at the edges)."""
    n, size = x.shape[0], x.shape[-1]
    side = torch.randint(8, 13, (n,), generator=gen)
    cx, cy = torch.randint(0, size, (n,), generator=gen), torch.randint(0, size, (n,), generator=gen)
    on = torch.rand(n, generator=gen) < 0.5
    pixels = torch.arange(size)
    in_x = (pixels[None] - cx[:, None]).abs() * 2 < side[:, None]
    in_y = (pixels[None] - cy[:, None]).abs() * 2 < side[:, None]
    mask = (in_y[:, :, None] & in_x[:, None, :] & on[:, None, None])[:, None]
    return torch.where(mask, torch.ones_like(x), x)


def doubled_loader(load):
    """`load_dataset` whose training split also holds every image mirrored, as a class of its own."""

    def load_doubled(name: str, root: str, split: str, *args, **kwargs) -> ImageTensorDataset:
        data = load(name, root, split, *args, **kwargs)
        if split != "train":
            return data
        names = [n + "/mirror" for n in data.class_names]
        return joined(data, ImageTensorDataset(data.images.flip(-1).contiguous(), data.labels.clone(), names))

    return load_doubled


def chimeras(data: ImageTensorDataset, seed: int = 0) -> ImageTensorDataset:
    """One chimera class per upright character of `data` (see the module's docstring), each in 4 rotations."""
    gen = torch.Generator().manual_seed(seed)
    by_alphabet: dict[str, list[int]] = {}
    for k, name in enumerate(data.class_names):
        alphabet, _, rotation = name.split("/")
        if rotation == "rot000":
            by_alphabet.setdefault(alphabet, []).append(k)
    grey = data.images[:, :1]
    half = grey.shape[-1] // 2
    images, labels, names = [], [], []
    for alphabet, classes in by_alphabet.items():
        if len(classes) < 2:
            continue
        order = torch.randperm(len(classes), generator=gen).tolist()
        for i, at in enumerate(order):
            a, b = classes[at], classes[order[(i + 1) % len(order)]]
            xa, xb = grey[data.labels == a], grey[data.labels == b]
            n = min(len(xa), len(xb))
            x = xa[:n].clone()
            across = bool(torch.rand((), generator=gen) < 0.5)
            if across:
                x[..., half:, :] = xb[:n, ..., half:, :]
            else:
                x[..., half:] = xb[:n, ..., half:]
            for turn in range(4):
                images.append(torch.rot90(x, turn, dims=(-2, -1)))
                labels.extend([len(names)] * n)
                names.append(f"{alphabet}/chimera-{a}-{b}-{'rows' if across else 'columns'}/rot{turn * 90:03d}")
    grey_all = torch.cat(images).contiguous()
    chimera = ImageTensorDataset(grey_all.expand(-1, data.images.shape[1], -1, -1), torch.tensor(labels), names)
    return joined(data, chimera)


def chimera_loader(load):
    """`load_dataset` whose training split also holds one chimera class per character (`chimeras`)."""

    def load_chimeras(name: str, root: str, split: str, *args, **kwargs) -> ImageTensorDataset:
        data = load(name, root, split, *args, **kwargs)
        return chimeras(data) if split == "train" else data

    return load_chimeras


def teacher_for(path: str, data: ImageTensorDataset, gen: torch.Generator) -> torch.nn.Module:
    """The trunk at `path` (eval mode, frozen) with a linear classifier over `data`'s classes fitted on its
    features of `data`'s images (unaugmented): a module from float images to logits."""
    teacher = model_from_checkpoint(load_checkpoint(path), path).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        batches = [to_float(data.images[i : i + 1024], "cpu") for i in range(0, len(data), 1024)]
        features = torch.cat([teacher.trunk(x) for x in batches])
    probe = torch.nn.Linear(features.shape[1], data.n_classes)
    optimizer = torch.optim.Adam(probe.parameters(), lr=0.01)
    for _ in range(30):
        for idx in torch.randperm(len(data), generator=gen).split(1024):
            loss = F.cross_entropy(probe(features[idx]), data.labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        accuracy = float((probe(features).argmax(1) == data.labels).float().mean())
    print(f"teacher {path}: classifier refitted, {100 * accuracy:.1f} % of the training images", flush=True)
    probe.requires_grad_(False)
    return torch.nn.Sequential(teacher.trunk, probe)


def variant_step(variant: str):
    """A replacement for `_Pretraining.train_step` with the variant's batch (and, for mixup, loss)."""

    def train_step(self: pretraining._Pretraining) -> None:
        c, gen = self.config, self.gen
        idx = self.order[self.step_in_epoch * c.batch_size : (self.step_in_epoch + 1) * c.batch_size]
        x, y = to_float(self.train_data.images[idx], "cpu"), self.train_data.labels[idx]
        if variant == "mild":
            x = pretraining.random_affine(x, gen, strength=0.5)
        elif variant != "noaug":
            x = pretraining.random_affine(x, gen)
        if variant == "erase":
            x = erase(x, gen)
        x = x.contiguous(memory_format=torch.channels_last)
        if variant == "distil":
            logits = self.classifier(self.model.trunk(x))
            with torch.no_grad():
                target = F.softmax(self.teacher(x) / DISTIL_TEMPERATURE, 1)
            kl = F.kl_div(F.log_softmax(logits / DISTIL_TEMPERATURE, 1), target, reduction="batchmean")
            loss = (1 - DISTIL_WEIGHT) * F.cross_entropy(logits, y) + DISTIL_WEIGHT * DISTIL_TEMPERATURE**2 * kl
        elif variant == "mixup":
            lam = float(torch.distributions.Beta(MIXUP_ALPHA, MIXUP_ALPHA).sample())
            lam, perm = max(lam, 1 - lam), torch.randperm(len(idx), generator=gen)
            logits = self.classifier(self.model.trunk(lam * x + (1 - lam) * x[perm]))
            loss = lam * F.cross_entropy(logits, y) + (1 - lam) * F.cross_entropy(logits, y[perm])
        else:
            logits = self.classifier(self.model.trunk(x))
            loss = F.cross_entropy(logits, y)
        self.step_on(loss, logits, y)

    return train_step


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", choices=VARIANTS)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--fold", default="lake", help="the lake split scheme (lake, lake-fold0 ... lake-fold4)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--hidden-size", type=int, default=64, help="CNN4 channels (64)")
    parser.add_argument("--teacher", help="distil: the trained trunk to learn from")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if (args.variant == "distil") != (args.teacher is not None):
        parser.error("--teacher goes with the distil variant, and only with it")
    config = PretrainConfig(
        "omniglot", args.data_root, args.fold, epochs=args.epochs, hidden_size=args.hidden_size, input_size=28,
        ways=20, seed=42, device="cpu", crop="ink", compute="float32",
    )  # fmt: skip
    run_class = pretraining._Pretraining
    if args.variant not in ("base", "doubled", "chimera"):
        run_class = type("Variant", (run_class,), {"train_step": variant_step(args.variant)})
    load = pretraining.load_dataset
    if args.variant in ("doubled", "chimera"):  # only while the run reads its data
        pretraining.load_dataset = (doubled_loader if args.variant == "doubled" else chimera_loader)(load)
    try:
        run = run_class(config, Path(args.out))
    finally:
        pretraining.load_dataset = load
    if args.variant == "distil":
        run.teacher = teacher_for(args.teacher, run.train_data, torch.Generator().manual_seed(1))
    run.start_clock()
    while run.epoch <= config.epochs:
        *_, progress = run.run_epoch(math.inf)  # the epoch's last report
        print(f"{args.variant} epoch {progress.epoch}: loss {progress.loss:.3f}, training accuracy "
              f"{progress.accuracy:.1f} %, {run.elapsed():.0f} s", flush=True)  # fmt: skip
    save_checkpoint(make_checkpoint(run.model, None, "pretrained", run.metrics(), run.dataset), args.out)
    run.state_path.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
