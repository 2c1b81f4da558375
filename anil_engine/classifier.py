"""The app's few-shot classifier: cached support features, head-only adaptation, prediction.

No Qt here. Each long operation is a generator (`iter_adapt`, `iter_predict`,
`iter_evaluate_folder`) that yields `FeatureProgress` after every batch of images
through the trunk and returns its result; the app runs them in worker threads
(progress bar, cancel at the next yield) and `adapt`, `predict`, `evaluate_folder`
run them to the end. A lock guards the feature cache and the head, taken per
batch and never held across a yield.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from anil_engine.adaptation import adapt_head, initial_head, one_torch_thread
from anil_engine.errors import ConfigError, DataError, NotEnoughImages, os_message
from anil_engine.images import load_image
from anil_engine.jobs import run_to_end
from anil_engine.models import AnilModel, head_logits
from anil_engine.runtime import Prediction

BATCH = 64
BACKENDS = ("torch", "onnxruntime")


@dataclass(frozen=True)
class FeatureProgress:
    """Images of this operation read and through the trunk so far (cached ones count at once)."""

    stage: str  # "adapt", "classify" or "evaluate"
    done: int
    total: int


@dataclass(frozen=True)
class AdaptResult:
    class_names: list[str]
    n_images: int
    new_images: int  # images whose features had to be computed
    seconds: float
    head_seconds: float
    head_init: str
    skipped: list[str] = field(default_factory=list)  # one message per file that could not be used
    unreadable: list[str] = field(default_factory=list)  # those files' paths (the head is adapted without them)


@dataclass(frozen=True)
class EvalReport:
    """Accuracy (percent), per-class accuracy and confusion[true, predicted] counts."""

    accuracy: float
    per_class: dict[str, float]
    confusion: list[list[int]]
    class_names: list[str]
    n_images: int
    skipped: list[str] = field(default_factory=list)
    mistakes: list[tuple[Prediction, str]] = field(default_factory=list)  # (prediction, true class); folders only


def _key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_mtime_ns, st.st_size)


class FewShotClassifier:
    """A meta-trained trunk plus a head adapted to the user's support set.

    Args:
        model: the loaded ANIL model (its head is the meta-learned initialisation).
        fast_lr: inner-loop step size.
        steps: inner-loop steps.
        device: "cpu" or "cuda".
        backend: "torch", or "onnxruntime" for trunk features on the CPU (verified
            against torch to 1e-4 when built; see benchmarks/trunk_speed.py).
        head_init: where the head's inner loop starts (`config.HEAD_INITS`).
        flip: add each support image's mirror image to the support set.
    """

    def __init__(
        self,
        model: AnilModel,
        fast_lr: float,
        steps: int,
        device: str = "cpu",
        backend: str = "torch",
        head_init: str = "meta",
        flip: bool = False,
    ) -> None:
        if backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if backend == "onnxruntime" and device != "cpu":
            raise ConfigError("the onnxruntime trunk runs on the CPU; use backend 'torch' on CUDA")
        self.model = model.to(device).eval()
        self.backend = backend
        self._session = None
        if backend == "onnxruntime":
            from anil_engine.export import cached_trunk_onnx_bytes
            from anil_engine.runtime import cpu_session

            self._session = cpu_session(cached_trunk_onnx_bytes(model))
        self.device = device
        self.fast_lr = fast_lr
        self.steps = steps
        self.head_init = head_init
        self.flip = flip
        self._cache: dict[tuple[str, int, int, bool], torch.Tensor] = {}
        self._lock = threading.RLock()
        self.class_names: list[str] = []
        self.weight: torch.Tensor | None = None  # (n_classes, num_features)
        self.bias: torch.Tensor | None = None  # (n_classes,)
        self._support: list[tuple[torch.Tensor, int]] = []
        self._mirrored: list[torch.Tensor] = []  # with `flip`: the mirror image's features, aligned with _support

    @classmethod
    def for_checkpoint(
        cls,
        ckpt: dict[str, Any],
        model: AnilModel,
        device: str = "cpu",
        backend: str = "torch",
        fast_lr: float | None = None,
        steps: int | None = None,
    ) -> FewShotClassifier:
        """The classifier a checkpoint describes: its head adaptation (fast_lr, steps, head start, flip)."""
        return cls(
            model,
            float(ckpt["fast_lr"]) if fast_lr is None else fast_lr,
            int(ckpt["adaptation_steps"]) if steps is None else steps,
            device,
            backend,
            head_init=ckpt.get("head_init", "meta"),
            flip=bool(ckpt.get("flip", False)),
        )

    # -- features -----------------------------------------------------------------------------------
    def features(self, paths: list[Path]) -> tuple[torch.Tensor, list[Path], list[str], int]:
        """Trunk features (eval-mode BatchNorm: each image independent).

        Returns:
            (features (n_ok, num_features), paths read, messages for skipped files, newly computed count)
        """
        return run_to_end(self.iter_features(paths))

    def iter_features(
        self,
        paths: list[Path],
        stage: str = "features",
        offset: int = 0,
        total: int | None = None,
        mirrored: bool = False,
    ) -> Generator[FeatureProgress, None, tuple[torch.Tensor, list[Path], list[str], int]]:
        """`features` as a generator: yields progress after each batch of `BATCH` images.

        `offset` and `total` place these images inside a larger operation's count. With `mirrored`
        the images' mirror images (flipped left to right) go through the trunk too, from the same
        decoded pixels and in the same batch, and are cached for `mirrored_features`.
        """
        pre = self.model.preprocessing
        paths = [Path(p) for p in paths]
        total = len(paths) if total is None else total
        with self._lock:
            todo = [p for p in paths if not (self._cached(p) and (not mirrored or self._cached(p, True)))]
        done = offset + len(paths) - len(todo)
        skipped, computed = [], 0
        for i in range(0, len(todo), BATCH):
            keys, arrays = [], []
            for p in todo[i : i + BATCH]:
                try:
                    key = _key(p)  # before reading: a file that goes missing is skipped, never a failed batch
                    pixels = load_image(p, pre.size, pre.channels, pre.crop)
                    arrays.append(torch.from_numpy(pixels))
                    keys.append((*key, False))
                    if mirrored:
                        arrays.append(torch.from_numpy(pixels[:, :, ::-1].copy()))
                        keys.append((*key, True))
                except (DataError, OSError) as exc:
                    if isinstance(exc, DataError):
                        skipped.append(str(exc))
                    elif isinstance(exc, FileNotFoundError):
                        skipped.append(f"{p}: file not found")
                    else:
                        skipped.append(os_message(exc, p, "cannot be read"))
            if arrays:
                batch = torch.stack(arrays).float().div_(255.0)
                with self._lock:
                    feats = self._trunk(batch)
                    for key, f in zip(keys, feats, strict=True):
                        self._cache[key] = f
                computed += len(keys) // (2 if mirrored else 1)
            done += len(todo[i : i + BATCH])
            yield FeatureProgress(stage, done, total)
        stacked, ok = self._cached_rows(paths, mirrored=False)
        return stacked, ok, skipped, computed

    def _trunk(self, batch: torch.Tensor) -> torch.Tensor:
        """Features of a float batch in [0, 1] (n, channels, size, size), on the CPU."""
        if self._session is not None:
            return torch.from_numpy(self._session.run(None, {"images": batch.numpy()})[0])
        with torch.no_grad():
            return self.model.test_features(batch.to(self.device)).cpu()

    def mirrored_features(self, paths: list[Path]) -> tuple[torch.Tensor, list[Path]]:
        """Cached features of the mirror images of `paths` (computed by `iter_features(..., mirrored=True)`)."""
        return self._cached_rows(paths, mirrored=True)

    def _cached_rows(self, paths: list[Path], mirrored: bool) -> tuple[torch.Tensor, list[Path]]:
        """(features (n_cached, num_features), the paths they belong to) from the cache, in order."""
        with self._lock:
            ok, rows = [], []
            for p in paths:
                try:
                    rows.append(self._cache[(*_key(p), mirrored)])
                    ok.append(p)
                except (KeyError, OSError):
                    continue
            return (torch.stack(rows) if rows else torch.zeros(0, self.model.num_features)), ok

    def _cached(self, path: Path, mirrored: bool = False) -> bool:
        try:
            return (*_key(path), mirrored) in self._cache
        except OSError:  # missing or unreadable: read (and reported) with the others
            return False

    def clear_cache(self) -> None:
        """Forget cached features (benchmarks; a changed trunk)."""
        with self._lock:
            self._cache.clear()

    # -- adaptation ---------------------------------------------------------------------------------
    def head_init_description(self, n_classes: int) -> str:
        trained = self.model.head.out_features
        if self.head_init == "zero":
            return "zero head"
        if self.head_init == "proto":
            return "head from the class prototypes"
        if n_classes == trained:
            return f"meta-learned {trained}-way head"
        return f"{n_classes} copies of the mean row of the meta-learned {trained}-way head"

    def adapt(self, support: list[tuple[str, list[Path]]]) -> AdaptResult:
        """Adapt the head to `support` = [(class name, image paths)] (>= 2 classes with images)."""
        return run_to_end(self.iter_adapt(support))

    def iter_adapt(self, support: list[tuple[str, list[Path]]]) -> Generator[FeatureProgress, None, AdaptResult]:
        """`adapt` as a generator: progress while support images go through the trunk."""
        start = time.perf_counter()
        total = sum(len(paths) for _, paths in support)
        names, feats, labels, skipped, new, offset, mirrored, unreadable = [], [], [], [], 0, 0, [], []
        for name, paths in support:
            f, ok, bad, n_new = yield from self.iter_features(list(paths), "adapt", offset, total, self.flip)
            offset += len(paths)
            skipped.extend(bad)
            used = {str(p) for p in ok}
            unreadable.extend(str(p) for p in paths if str(p) not in used)
            new += n_new
            if ok and self.flip:
                m, ok_m = self.mirrored_features(ok)
                if len(ok_m) != len(ok):  # a file changed in between: use the images with both
                    keep = {str(p) for p in ok_m}
                    f = f[[i for i, p in enumerate(ok) if str(p) in keep]]
                    ok = ok_m
                mirrored.append(m)
            if ok:
                labels.extend([len(names)] * len(ok))
                feats.append(f)
                names.append(name)
        if len(names) < 2:
            raise NotEnoughImages("adaptation needs at least 2 classes with at least one readable image each")
        with self._lock:
            features = torch.cat(feats).to(self.device)
            y = torch.tensor(labels, device=self.device)
            flipped = torch.cat(mirrored).to(self.device) if self.flip else None
            t_head = time.perf_counter()
            self.weight, self.bias = self._adapted(features, y, flipped, len(names))
            head_seconds = time.perf_counter() - t_head
            self.class_names = names
            self._support = list(zip(features, labels, strict=True))
            self._mirrored = list(flipped) if flipped is not None else []
        return AdaptResult(
            names,
            len(labels),
            new,
            time.perf_counter() - start,
            head_seconds,
            self.head_init_description(len(names)),
            skipped,
            unreadable,
        )

    def _adapted(
        self,
        features: torch.Tensor,
        labels: torch.Tensor,
        mirrored: torch.Tensor | None,
        n_classes: int,
        settings: tuple[float, int, str] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The head adapted to support (features (n, d), labels (n,)), plus their mirror images' features.

        `settings`: (fast_lr, steps, head_init) taken earlier (a snapshot); default the current ones.
        """
        lr, steps, start = settings or (self.fast_lr, self.steps, self.head_init)
        if mirrored is not None:
            features, labels = torch.cat([features, mirrored]), torch.cat([labels, labels])
        with one_torch_thread() if features.device.type == "cpu" else contextlib.nullcontext():
            w0, b0 = initial_head(self.model.head.weight, self.model.head.bias, n_classes, start, features, labels)
            return adapt_head(features, labels, w0, b0, lr, steps)

    def set_head(self, class_names: list[str], weight: torch.Tensor, bias: torch.Tensor) -> None:
        """Install a previously adapted head (e.g. from a project file)."""
        if weight.shape != (len(class_names), self.model.num_features) or bias.shape != (len(class_names),):
            raise ConfigError(
                f"head of shape {tuple(weight.shape)} does not fit {len(class_names)} classes x "
                f"{self.model.num_features} features of this model"
            )
        with self._lock:
            self.class_names = list(class_names)
            self.weight, self.bias = weight.to(self.device), bias.to(self.device)

    def clear_head(self) -> None:
        """Forget the adapted head (the support set no longer has 2 classes): no classifier until the next adapt."""
        with self._lock:
            self.weight = self.bias = None
            self.class_names = []
            self._support, self._mirrored = [], []

    @property
    def is_adapted(self) -> bool:
        return self.weight is not None

    # -- prediction ---------------------------------------------------------------------------------
    def probabilities(self, features: torch.Tensor) -> torch.Tensor:
        """(n, num_features) -> softmax (n, n_classes) with the adapted head."""
        if self.weight is None or self.bias is None:
            raise ConfigError("no adapted head yet: add at least 2 classes with images to the support set")
        small = contextlib.nullcontext() if str(self.device) != "cpu" else one_torch_thread()
        with torch.no_grad(), small:
            return F.softmax(head_logits(features.to(self.device), self.weight, self.bias), dim=1).cpu()

    def predict(self, paths: list[Path]) -> tuple[list[Prediction], list[str]]:
        """Classify images one by one (eval-mode trunk: no image influences another)."""
        return run_to_end(self.iter_predict(paths))

    def iter_predict(
        self, paths: list[Path], stage: str = "classify", offset: int = 0, total: int | None = None
    ) -> Generator[FeatureProgress, None, tuple[list[Prediction], list[str]]]:
        """`predict` as a generator: progress while the images go through the trunk."""
        if self.weight is None:
            self.probabilities(torch.zeros(0, self.model.num_features))  # the "adapt first" error, before any work
        feats, ok, skipped, _ = yield from self.iter_features(list(paths), stage, offset, total)
        with self._lock:
            probs = self.probabilities(feats)
            names = list(self.class_names)
        out = []
        for p, row in zip(ok, probs, strict=True):
            best = int(row.argmax())
            by_class = {n: float(v) for n, v in zip(names, row, strict=True)}
            out.append(Prediction(str(p), names[best], float(row[best]), by_class))
        return out, skipped

    def predict_pixels(self, pixels: np.ndarray, label: str = "camera picture") -> Prediction:
        """One decoded picture (uint8 (channels, size, size), as `images.prepare_image` gives) classified.

        The same trunk and head as `predict` on a file with these pixels; nothing is cached (a live
        camera never repeats a picture).
        """
        batch = torch.from_numpy(np.ascontiguousarray(pixels)[None]).float().div_(255.0)
        with self._lock:
            probs = self.probabilities(self._trunk(batch))[0]
            names = list(self.class_names)
        best = int(probs.argmax())
        return Prediction(
            label, names[best], float(probs[best]), {n: float(v) for n, v in zip(names, probs, strict=True)}
        )

    # -- evaluation ---------------------------------------------------------------------------------
    def leave_one_out(self) -> EvalReport:
        """Each support image classified by a head adapted on all the others."""
        return run_to_end(self.iter_leave_one_out())

    def iter_leave_one_out(self) -> Generator[FeatureProgress, None, EvalReport]:
        """`leave_one_out` as a generator: progress after each held-out image (one head adaptation each)."""
        with self._lock:  # a snapshot: a new adaptation meanwhile does not mix into this evaluation
            if not self._support:
                raise ConfigError("adapt first: the support set is empty")
            names, settings = list(self.class_names), (self.fast_lr, self.steps, self.head_init)
            labels = torch.tensor([y for _, y in self._support])
            feats = torch.stack([f for f, _ in self._support])
            mirrored = torch.stack(self._mirrored) if self._mirrored else None
        counts = torch.bincount(labels, minlength=len(names))
        if int(counts.min()) < 2:
            few = [n for n, c in zip(names, counts.tolist(), strict=True) if c < 2]
            raise ConfigError(f"leave-one-out needs >= 2 images in every class; add images to {few}")
        predicted = []
        for i in range(len(labels)):
            keep = torch.arange(len(labels)) != i
            m = mirrored[keep] if mirrored is not None else None
            w, b = self._adapted(feats[keep], labels[keep].to(self.device), m, len(names), settings)
            with torch.no_grad():
                predicted.append(int(head_logits(feats[i : i + 1], w, b).argmax()))
            yield FeatureProgress("leave-one-out", i + 1, len(labels))
        return _report(labels.tolist(), predicted, names, [])

    def evaluate_folder(self, root: str | Path) -> EvalReport:
        """Accuracy and confusion on a labelled folder of class folders named like the support classes."""
        return run_to_end(self.iter_evaluate_folder(root))

    def iter_evaluate_folder(self, root: str | Path) -> Generator[FeatureProgress, None, EvalReport]:
        """`evaluate_folder` as a generator: progress while the folder's images go through the trunk."""
        from anil_engine.datasets.folder import scan_class_folders

        scan = scan_class_folders(root)
        unknown = [c for c in scan.classes if c not in self.class_names]
        if unknown:
            raise ConfigError(
                f"{root}: class folders {unknown} are not classes of the support set {self.class_names}; "
                "rename the folders or add those classes"
            )
        truth, predicted, skipped, mistakes, offset = [], [], list(scan.messages), [], 0
        total = sum(len(paths) for paths in scan.classes.values())
        for name, paths in scan.classes.items():
            preds, bad = yield from self.iter_predict(paths, "evaluate", offset, total)
            offset += len(paths)
            skipped.extend(bad)
            truth.extend([self.class_names.index(name)] * len(preds))
            predicted.extend(self.class_names.index(p.label) for p in preds)
            mistakes.extend((p, name) for p in preds if p.label != name)
        if not truth:
            raise DataError(f"{root}: no readable images")
        return replace(_report(truth, predicted, self.class_names, skipped), mistakes=mistakes)


def _report(truth: list[int], predicted: list[int], names: list[str], skipped: list[str]) -> EvalReport:
    n = len(names)
    confusion = [[0] * n for _ in range(n)]
    for t, p in zip(truth, predicted, strict=True):
        confusion[t][p] += 1
    per_class = {}
    for i, name in enumerate(names):
        total = sum(confusion[i])
        if total:
            per_class[name] = 100.0 * confusion[i][i] / total
    accuracy = 100.0 * sum(confusion[i][i] for i in range(n)) / len(truth)
    return EvalReport(accuracy, per_class, confusion, list(names), len(truth), skipped)


def predictions_csv(predictions: list[Prediction]) -> str:
    """CSV text: path, label, confidence, then p(class) for every class any prediction has, in first-seen order."""
    import csv
    import io

    names = list(dict.fromkeys(n for p in predictions for n in p.probabilities))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["path", "label", "confidence", *[f"p({n})" for n in names]])
    for p in predictions:
        probabilities = [f"{p.probabilities.get(n, 0.0):.6f}" for n in names]
        writer.writerow([p.path, p.label, f"{p.confidence:.6f}", *probabilities])
    return out.getvalue()
