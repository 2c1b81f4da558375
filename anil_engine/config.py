"""Typed, validated configuration for every job of the engine."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anil_engine.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")
DATASETS = ("omniglot", "caltech-101", "cifar-fs", "fc100", "mini-imagenet", "folder")
# Omniglot's class splits. "lake" validates on the background alphabets at sorted positions 5, 11, 17, 23, 29;
# "lake-foldK" (K = 0..4) on those at K, K + 6, ...: with "lake", six folds that validate on every background
# alphabet once (for choices that are sure over more than one fold's 4-5 alphabets). Test: the evaluation alphabets.
LAKE_FOLDS = 6
SPLIT_SCHEMES = ("vinyals", "lake", *(f"lake-fold{k}" for k in range(LAKE_FOLDS - 1)))
CLASSIFIERS = ("linear", "cosine")  # of pre-training
PRETRAIN_COMPUTE = ("float32", "bfloat16")  # float type of pre-training's forward pass
# The classes pre-training learns: the training split's, or also the validation split's (a final model, once its
# settings were chosen on that validation split; there is then nothing left to validate on).
PRETRAIN_SPLITS = ("train", "train+val")
EVAL_QUERY = 15  # query images per class of every published evaluation
RECIPE_FEATURE_NORM = 16.0  # the bundled models' rescaling of a pre-trained trunk (see `train --init-feature-norm`)
ENGINES = ("batched", "reference")
SAMPLERS = ("auto", "fast", "learn2learn")
BN_MODES = ("inductive", "transductive")
METHODS = ("head", "ncm")
# Episodes drawn within one group of classes: "alphabet", Lake et al.'s one-shot protocol on Omniglot (all
# classes of an episode are characters of one alphabet, unrotated); "rotated-alphabet", one alphabet at one of
# the split's rotations (4 times the groups of "alphabet" for training tasks, as rotations make new classes).
WITHIN = ("alphabet", "rotated-alphabet")
LAKE_RUNS = "lake-runs"  # Lake et al.'s 20 fixed one-shot runs (`anil-studio lake-runs`), a card setting
PRECISIONS = ("float32", "float64")
# Where the head's inner loop starts: the meta-learned rows (their mean for other numbers of classes), zero, or
# the support prototypes as in Proto-MAML (row k = 2 c_k, bias -|c_k|^2, scaled; see adaptation.initial_head).
HEAD_INITS = ("meta", "zero", "proto")
TRUNK_TRAIN_HELP = "'none' (only the head), 'last:N' (the last N stages of the trunk) or 'all'"
# The backbones (`anil_engine.backbones` builds them) and how many stages of each can be trained on their own:
# None for a trunk trained from scratch (always trained whole).
BACKBONE_STAGES: dict[str, int | None] = {"cnn4": None, "efficientnet_lite0": 7}


def check_backbone(name: str) -> None:
    if name not in BACKBONE_STAGES:
        raise ConfigError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONE_STAGES)}")


# How an image is framed before it is resized (`images.prepare_image`): "none" (the whole image) or "ink" (a
# square around the dark pixels: drawings on light paper, e.g. Omniglot's, fill the input whatever their size).
CROPS = ("none", "ink")


def check_crop(crop: str) -> None:
    if crop not in CROPS:
        raise ConfigError(f"crop must be one of {CROPS}, got {crop!r}")


# Test-time views (`anil_engine.views`): every image's features averaged over this many fixed copies of it
# (1: the image alone; 5: + one-pixel shifts; 9: + rotations of +-8 degrees and scalings 0.9 and 1.1).
VIEW_COUNTS = (1, 5, 9)


def check_views(views: int, channels: int | None = None) -> None:
    if views not in VIEW_COUNTS:
        raise ConfigError(f"views must be one of {VIEW_COUNTS}, got {views!r}")
    if views > 1 and channels is not None and channels != 1:
        raise ConfigError(
            f"views {views}: averaging views is for drawings on white paper (1-channel models); this model reads "
            "colour photos, where it was never measured; use views 1"
        )


def check_layers(layers: int, input_size: int) -> None:
    if layers not in CNN4_LAYERS:
        raise ConfigError(
            f"layers must be 1, 2 or 4 (the image pooled 16x in all) or 5 (32x, e.g. for 56 px inputs), got {layers!r}"
        )
    if layers == 5 and input_size < 32:
        raise ConfigError(f"5 conv blocks pool the image 32x: the input size must be >= 32 (56: 1x1), got {input_size}")


def trainable_stages(spec: str, backbone: str) -> int:
    """Parse a trunk-training option ("none", "last:N", "all") for `backbone` into a stage count (-1 = all)."""
    import re

    check_backbone(backbone)
    if spec == "all":
        return -1
    if spec == "none":
        return 0
    m = re.fullmatch(r"last:(\d+)", spec)
    if not m:
        raise ConfigError(f"trunk training {spec!r} is not one of {TRUNK_TRAIN_HELP}")
    n, count = int(m.group(1)), BACKBONE_STAGES[backbone]
    if count is None:
        raise ConfigError(f"the {backbone} trunk cannot be trained in parts; use 'all'")
    if not 1 <= n <= count:
        raise ConfigError(f"last:{n}: {backbone} has {count} stages; give 1..{count}")
    return n


def field_defaults(cls: type) -> dict[str, Any]:
    """Every field's default of a config dataclass: the one place the CLI and the dialogs read defaults from."""
    return {
        f.name: f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
        for f in dataclasses.fields(cls)
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    }


def _positive(name: str, value: int | float) -> None:
    if not value > 0:
        raise ConfigError(f"{name} must be > 0, got {value!r}")


@dataclass(frozen=True)
class TaskSpec:
    """Shape of one episode: `ways` classes, `shots` support and `query` query images each."""

    ways: int = 5
    shots: int = 5
    query: int = 5

    def __post_init__(self) -> None:
        if self.ways < 2:
            raise ConfigError(f"ways must be >= 2, got {self.ways!r}")
        _positive("shots", self.shots)
        _positive("query", self.query)

    @property
    def per_class(self) -> int:
        """Images drawn per class: support plus query."""
        return self.shots + self.query


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes a model input.

    The image is opened with Pillow, EXIF orientation applied, converted to
    `channels` (1: "L", 3: "RGB"; transparency composited on white), resized to
    `size` x `size` with Lanczos resampling, scaled to [0, 1]. The model itself
    then subtracts `mean` and divides by `std` per channel. `crop` "ink" first
    frames the image as a square around its dark pixels (`images.ink_crop`: a
    drawing on light paper fills the input whatever its size and position).
    `views` > 1: at test time the trunk's features are averaged over that many
    shifted, rotated and scaled copies of the input (`anil_engine.views`); training
    never sees them.
    """

    size: int = 28
    channels: int = 1
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    crop: str = "none"
    views: int = 1

    def __post_init__(self) -> None:
        if self.size < 16:
            raise ConfigError(f"input size must be >= 16 pixels, got {self.size!r}")
        if self.channels not in (1, 3):
            raise ConfigError(f"channels must be 1 or 3, got {self.channels!r}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ConfigError(f"mean {self.mean} and std {self.std} need one value per channel ({self.channels})")
        if any(s <= 0 for s in self.std):
            raise ConfigError(f"std values must be > 0, got {self.std}")
        check_crop(self.crop)
        check_views(self.views, self.channels)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "size": self.size,
            "channels": self.channels,
            "mean": list(self.mean),
            "std": list(self.std),
        }
        # Checkpoints from before crop and views stay as they were.
        return (
            d
            | ({} if self.crop == "none" else {"crop": self.crop})
            | ({} if self.views == 1 else {"views": self.views})
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessing:
        return cls(int(d["size"]), int(d["channels"]), tuple(d["mean"]), tuple(d["std"]), str(d.get("crop", "none")),
                   int(d.get("views", 1)))  # fmt: skip


# CNN4 conv blocks (`layers`): 1, 2 or 4 pool the image 16x in all (learn2learn's max-pool factors); 5 blocks
# pool 2x each, 32x in all, so a 56x56 input ends at 1x1 as a 28x28 one does with 4 (a 48x48 one with 4 blocks
# ends at 3x3, whose flattened features depend on where a stroke falls).
CNN4_LAYERS = (1, 2, 4, 5)


@dataclass(frozen=True)
class ModelConfig:
    """A trunk built by name (`anil_engine.backbones`) and a linear head.

    `hidden_size` and `layers` only matter to the CNN4 trunk.
    """

    hidden_size: int = 64
    layers: int = 4
    channels: int = 1
    input_size: int = 28
    ways: int = 5
    backbone: str = "cnn4"

    def __post_init__(self) -> None:
        check_backbone(self.backbone)
        _positive("hidden_size", self.hidden_size)
        check_layers(self.layers, self.input_size)
        if self.ways < 2:
            raise ConfigError(f"ways must be >= 2, got {self.ways!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Every hyper-parameter of the ANIL article, plus run bookkeeping.

    Defaults are learn2learn's `anil_fc100.py` values.
    """

    dataset: str = "omniglot"
    data_root: str = ""
    split_scheme: str = "vinyals"
    ways: int = 5
    shots: int = 5
    query: int = 5
    meta_lr: float = 0.001
    fast_lr: float = 0.1
    meta_batch_size: int = 32
    adaptation_steps: int = 5
    iterations: int = 1000
    first_order: bool = False
    seed: int = 42
    device: str = "auto"
    hidden_size: int = 64
    layers: int = 4  # CNN4 conv blocks (CNN4_LAYERS)
    input_size: int = 28
    crop: str = "none"  # how each image is framed before resizing (CROPS; "ink": around its drawing)
    val_every: int = 100
    val_episodes: int = 200
    checkpoint_every: int = 100
    init_from: str = ""
    init_feature_norm: float = 0.0
    # "batched": all heads of a meta-batch adapted at once, fast index sampler (anil_engine.meta.batched);
    # "reference": learn2learn's per-task MAML loop and Taskset pipeline, as in the article.
    engine: str = "batched"
    # Task sampler: "auto" (the engine's own: fast for batched, learn2learn for reference), "fast" or
    # "learn2learn". Giving both engines the same sampler gives them the same tasks for the same seed.
    sampler: str = "auto"
    # Weights, activations and gradients of meta-training. "float64" is slower; it is there to check the
    # engines against each other with rounding errors ~1e-16 instead of ~1e-7.
    precision: str = "float32"
    # The trunk (anil_engine.backbones): "cnn4" from scratch, or a pretrained one such as "efficientnet_lite0".
    backbone: str = "cnn4"
    # Which trunk parameters the outer loop updates: TRUNK_TRAIN_HELP, or "auto" ("all" for a trunk trained
    # from scratch, "none" for a pretrained one). The frozen part's outputs are computed once and cached.
    trunk_train: str = "auto"
    # Test-time head adaptation recorded in the checkpoint (validation also uses it); see HEAD_INITS. "proto" is
    # also where meta-training starts every task's head (`head_start`).
    head_init: str = "meta"
    # Add each support image's mirror image to the support set at test time.
    flip: bool = False
    # None: tasks (training and validation) from the whole split; "alphabet": every task's classes from one
    # alphabet (see WITHIN), so the head learns to tell look-alike characters apart.
    within: str | None = None
    # Validation tasks (and so best.pt) within one group while training tasks stay the whole split's: choose by
    # the protocol that is tested (Lake's within-alphabet one-shot) without training on it. None: as `within`.
    val_within: str | None = None
    # How validation (which keeps best.pt) classifies: "head", ANIL's head adaptation as the checkpoint will
    # adapt; "ncm", the nearest class mean of the trunk's features (the trunk alone, whatever the head and
    # its number of steps).
    val_method: str = "head"

    def __post_init__(self) -> None:
        TaskSpec(self.ways, self.shots, self.query)
        check_backbone(self.backbone)
        check_layers(self.layers, self.input_size)
        check_crop(self.crop)
        for name in ("within", "val_within"):
            if getattr(self, name) is not None and getattr(self, name) not in WITHIN:
                raise ConfigError(f"{name} must be one of {WITHIN}, got {getattr(self, name)!r}")
        l2l_sampler = self.sampler == "learn2learn" or (self.sampler, self.engine) == ("auto", "reference")
        if self.within is not None and l2l_sampler:
            raise ConfigError("tasks within an alphabet are drawn by the fast sampler only; add --sampler fast")
        if self.trunk_train != "auto":
            trainable_stages(self.trunk_train, self.backbone)
        if BACKBONE_STAGES[self.backbone] is None and self.trunk_train not in ("auto", "all"):
            raise ConfigError(f"the {self.backbone} trunk is trained from scratch: trunk_train must be 'all'")
        if self.head_init not in HEAD_INITS:
            raise ConfigError(f"head_init must be one of {HEAD_INITS}, got {self.head_init!r}")
        if self.val_method not in METHODS:
            raise ConfigError(f"val_method must be one of {METHODS}, got {self.val_method!r}")
        if self.head_init == "proto" and self.engine != "batched":
            raise ConfigError("the prototype head start is meta-trained by the batched engine only: --engine batched")
        for name in (
            "meta_lr",
            "fast_lr",
            "meta_batch_size",
            "val_every",
            "val_episodes",
            "checkpoint_every",
        ):
            _positive(name, getattr(self, name))
        if self.iterations < 0 or (self.iterations == 0 and not self.init_from):
            raise ConfigError(
                f"iterations must be > 0 (or 0 with init_from: the starting trunk itself), got {self.iterations!r}"
            )
        if self.init_feature_norm < 0 or (self.init_feature_norm and not self.init_from):
            raise ConfigError(f"init_feature_norm must be >= 0 and needs init_from, got {self.init_feature_norm!r}")
        if self.init_feature_norm and BACKBONE_STAGES[self.backbone] is not None:
            raise ConfigError(
                f"init_feature_norm rescales a CNN4 trunk's features; the {self.backbone} trunk's cannot be "
                "rescaled exactly (its last activation, ReLU6, saturates): leave it 0"
            )
        if self.adaptation_steps < 0:
            raise ConfigError(f"adaptation_steps must be >= 0, got {self.adaptation_steps!r}")
        if self.device not in DEVICES:
            raise ConfigError(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.engine not in ENGINES:
            raise ConfigError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.split_scheme not in SPLIT_SCHEMES:
            raise ConfigError(f"split_scheme must be one of {SPLIT_SCHEMES}, got {self.split_scheme!r}")
        if not self.data_root:
            raise ConfigError("data_root is empty: pass the folder that holds the data set")

    @property
    def task(self) -> TaskSpec:
        return TaskSpec(self.ways, self.shots, self.query)

    @property
    def head_start(self) -> str:
        """Where meta-training starts each task's head: "proto" (its support prototypes, Proto-MAML) when the
        run's test-time start is the prototypes, so training and testing adapt alike; else "meta" (the head)."""
        return "proto" if self.head_init == "proto" else "meta"

    @property
    def validation_within(self) -> str | None:
        """The group every validation task is drawn within: `val_within`, else `within` (None: the whole split)."""
        return self.val_within or self.within

    def validation(self, seed: int) -> EvalConfig:
        """The inductive evaluation that validates this run on `val_episodes` seeded episodes."""
        return EvalConfig(self.task, self.val_episodes, "inductive", seed, method=self.val_method,
                          head_init=self.head_init, flip=self.flip, within=self.validation_within)  # fmt: skip

    @property
    def trunk_stages(self) -> int:
        """Trainable trunk stages: -1 all, 0 none, k the last k."""
        if self.trunk_train == "auto":
            return -1 if BACKBONE_STAGES[self.backbone] is None else 0
        return trainable_stages(self.trunk_train, self.backbone)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ConfigError(f"unknown training settings {sorted(unknown)}")
        return cls(**d)


@dataclass(frozen=True)
class EvalConfig:
    """An evaluation over `episodes` test episodes of shape `task`."""

    task: TaskSpec = field(default_factory=lambda: TaskSpec(5, 5, 15))
    episodes: int = 1000
    bn: str = "inductive"
    seed: int = 0
    fast_lr: float | None = None
    adaptation_steps: int | None = None
    # "head": ANIL's head adaptation (the product); "ncm": nearest class mean of the support features (a baseline).
    method: str = "head"
    # None: what the checkpoint records (its training's choice, else "meta" and no flip).
    head_init: str | None = None
    flip: bool | None = None
    # None: classes from the whole split; "alphabet": every episode's classes from one alphabet (see WITHIN).
    within: str | None = None
    views: int | None = None  # test-time views (VIEW_COUNTS); None: the checkpoint's

    def __post_init__(self) -> None:
        _positive("episodes", self.episodes)
        if self.views is not None:
            check_views(self.views)
        if self.within is not None and self.within not in WITHIN:
            raise ConfigError(f"within must be one of {WITHIN}, got {self.within!r}")
        if self.head_init is not None and self.head_init not in HEAD_INITS:
            raise ConfigError(f"head_init must be one of {HEAD_INITS}, got {self.head_init!r}")
        if self.method not in METHODS:
            raise ConfigError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.bn not in BN_MODES:
            raise ConfigError(f"bn must be one of {BN_MODES}, got {self.bn!r}")
        if self.fast_lr is not None:
            _positive("fast_lr", self.fast_lr)
        if self.adaptation_steps is not None and self.adaptation_steps < 0:
            raise ConfigError(f"adaptation_steps must be >= 0, got {self.adaptation_steps!r}")


def resolve_device(name: str) -> str:
    """Map "auto" to "cuda" when available, else "cpu"; reject CUDA when absent."""
    import torch

    if name not in DEVICES:
        raise ConfigError(f"device must be one of {DEVICES}, got {name!r}")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no CUDA GPU is available; use --device cpu")
    return name


@dataclass(frozen=True)
class PretrainConfig:
    """Plain supervised pre-training of the trunk on the training split."""

    dataset: str
    data_root: str
    split_scheme: str = "vinyals"
    epochs: int = 20
    batch_size: int = 256
    lr: float = 0.002
    weight_decay: float = 5e-4
    hidden_size: int = 64
    layers: int = 4  # CNN4 conv blocks (CNN4_LAYERS)
    input_size: int = 28
    crop: str = "none"  # how each image is framed before resizing (CROPS; "ink": around its drawing)
    # The trunk (`anil_engine.backbones`): "cnn4" from scratch, or a pretrained one (e.g. "efficientnet_lite0")
    # fine-tuned whole from its base weights.
    backbone: str = "cnn4"
    ways: int = 20
    seed: int = 42
    device: str = "auto"
    augment: bool = True
    # With `augment`: a random smooth ("elastic") displacement of the strokes after the affine one, at most this
    # fraction of the image size at any pixel (0: off; Omniglot: 0.03 is about one pixel at 28x28).
    elastic: float = 0.0
    classifier: str = "linear"  # or "cosine": scaled cosine similarity to each class's weight row
    cosine_scale: float = 10.0
    label_smoothing: float = 0.0
    # Weight of a second cross-entropy over only the classes of each image's own alphabet at its rotation
    # (Omniglot): the characters that look alike as the only negatives, as Lake et al.'s one-shot runs draw them.
    within_loss: float = 0.0
    # Drawings: every class's mirror image is a class of its own (half of every batch mirrored, its label moved to
    # the mirrored class), so with Omniglot's 4 rotations the trunk learns each character under all 8 symmetries
    # of the square as 8 classes. Photos are mirrored as the same class instead (their mirror is the same object).
    mirror_classes: bool = False
    val_episodes: int = 200  # validation episodes at 4 epoch ends
    # Float type of the forward pass (torch.autocast; weights, gradients and optimizer stay float32): bfloat16
    # halves the step time on CPUs with AVX-512 BF16 (docs/benchmarks.md, benchmarks/pretrain_speed.py).
    compute: str = "float32"
    train_splits: str = "train"  # one of PRETRAIN_SPLITS

    def __post_init__(self) -> None:
        check_backbone(self.backbone)
        check_layers(self.layers, self.input_size)
        check_crop(self.crop)
        if self.compute not in PRETRAIN_COMPUTE:
            raise ConfigError(f"compute must be one of {PRETRAIN_COMPUTE}, got {self.compute!r}")
        if self.train_splits not in PRETRAIN_SPLITS:
            raise ConfigError(f"train_splits must be one of {PRETRAIN_SPLITS}, got {self.train_splits!r}")
        if self.classifier not in CLASSIFIERS:
            raise ConfigError(f"classifier must be one of {CLASSIFIERS}, got {self.classifier!r}")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if not self.cosine_scale > 0:
            raise ConfigError(f"cosine_scale must be > 0, got {self.cosine_scale!r}")
        if not (math.isfinite(self.within_loss) and self.within_loss >= 0):
            raise ConfigError(f"within_loss must be a finite number >= 0, got {self.within_loss!r}")
        for name in ("epochs", "batch_size", "lr", "hidden_size", "input_size", "val_episodes"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not 0 <= self.elastic < 0.5:
            raise ConfigError(f"elastic must be in [0, 0.5), got {self.elastic!r}")


@dataclass(frozen=True)
class CardRequest:
    """What `anil-studio card` measures and where it writes the card."""

    checkpoint: str
    data_root: str
    out: str
    settings: str = "20x1,20x5,5x1,5x5"
    episodes: int = 1000
    seed: int = 0
    query: int = EVAL_QUERY
    recipe: str = ""  # markdown, or a file holding it
    device: str = "auto"
    baselines: bool = False
    adaptation_steps: int | None = None  # head-adaptation steps to evaluate with (default: the checkpoint's)
    views: int | None = None  # test-time views to evaluate with (VIEW_COUNTS; default: the checkpoint's)
    write: bool = False  # also store the results (and adaptation_steps, views) in the checkpoint, after the card

    def __post_init__(self) -> None:
        if self.views is not None:
            check_views(self.views)

    @property
    def recipe_file(self) -> str:
        r = self.recipe
        return r if r and "\n" not in r and Path(r).is_file() else ""


# Each data set's own preprocessing for a trunk trained from scratch (a pretrained trunk brings its own).
DATASET_PREPROCESSING = {
    # Omniglot: paper is white (1.0), ink black. Subtracting 1 makes the paper 0, like the convolutions'
    # zero padding, and is equivalent to the usual inversion (1 - x) up to the sign of the first conv.
    "omniglot": Preprocessing(28, 1, (1.0,), (1.0,)),
    "caltech-101": Preprocessing(84, 3, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "cifar-fs": Preprocessing(32, 3, (0.507, 0.487, 0.441), (0.267, 0.256, 0.276)),
    "fc100": Preprocessing(32, 3, (0.507, 0.487, 0.441), (0.267, 0.256, 0.276)),
    "mini-imagenet": Preprocessing(84, 3, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "folder": Preprocessing(84, 3, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def dataset_preprocessing(name: str, size: int | None = None) -> Preprocessing:
    """Data set `name`'s preprocessing, at `size` pixels (default: its own size)."""
    if name not in DATASET_PREPROCESSING:
        raise ConfigError(f"unknown data set {name!r}; choose one of {DATASETS}")
    pre = DATASET_PREPROCESSING[name]
    return pre if size is None else dataclasses.replace(pre, size=size)


@dataclass(frozen=True)
class LakeRunsRequest:
    """`method`: head (ANIL head adaptation, the app's) or ncm; `adaptation_steps`/`fast_lr`: None = the
    checkpoint's; `baselines`: also the trunk's nearest class mean and the Modified Hausdorff Distance."""

    checkpoint: str
    data_root: str
    method: str = "head"
    bn: str = "inductive"
    adaptation_steps: int | None = None
    fast_lr: float | None = None
    device: str = "auto"
    baselines: bool = False
    table: str | None = None  # None: the shipped table of Lake's runs
    redraws: int = 0  # also this many random drawer pairs per run (`redrawn_runs`), the model and the ncm
    seed: int = 0  # of the redrawn pairs
    views: int | None = None  # test-time views (VIEW_COUNTS); None: the checkpoint's

    def __post_init__(self) -> None:
        if self.views is not None:
            check_views(self.views)
        if self.method not in METHODS:
            raise ConfigError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.bn not in BN_MODES:
            raise ConfigError(f"bn must be one of {BN_MODES}, got {self.bn!r}")
        if self.redraws < 0:
            raise ConfigError(f"redraws must be >= 0, got {self.redraws}")
        if self.adaptation_steps is not None and self.adaptation_steps < 0:
            raise ConfigError(f"adaptation_steps must be >= 0, got {self.adaptation_steps}")
