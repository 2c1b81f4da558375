"""Two trunks on the same seeded episodes: each one's accuracy and their paired difference, mean ± 95 % CI.

Nearest class mean on inductive features (independent of the feature scale), as the lake experiments compare
trunks (scripts/omniglot_lake_experiments.sh). `--views-b 9` (or `--views-a`) averages a trunk's features over
fixed small shifts, rotations and scalings of every image (test-time augmentation, support and query alike), so
`A.pt A.pt --views-b 9` measures what averaging views adds to one trunk, and `A.pt A.pt --l2 --join-b C.pt` what
a second trunk C adds to it (their unit-length features side by side). `A.pt A.pt --l2 --sqrt-b --centre-b`
measures two feature transforms that need no training (both inductive): the square root of every feature, and
features centred on the episode's mean support feature (`--base-centre-b`: on the training split's mean feature
instead, SimpleShot's CL2N). `--unpooled-b` takes a CNN4 trunk's last block before its max pool, flattened (for
28x28 inputs a 3x3 map: where on the framed drawing each feature fired). With `--within alphabet` it also
prints the paired difference per alphabet and its interval with the alphabets, not the episodes, as the sample
(`by_alphabet`): a choice made on the 4 validation alphabets that hold 20 characters is only as sure as those 4
are typical of new alphabets. `--episodes-out F.json` keeps every episode's two accuracies and alphabet, and
`--pool F1.json F2.json ...` pools such files from several validation folds into one per-alphabet interval
(scripts/omniglot_lake_folds.sh). Usage:
    python scripts/compare_trunks.py A.pt B.pt --data-root DATA [--split val] [--within alphabet]
        [--ways 20 --shots 1 --query 15 --episodes 1000 --seed 0] [--views-a 1 --views-b 1] [--l2] [--join-b C.pt]
        [--sqrt-b] [--centre-b | --base-centre-b] [--unpooled-b] [--episodes-out F.json]
    python scripts/compare_trunks.py --pool F1.json F2.json ...
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import scipy.stats
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anil_engine.checkpoint import atomic_write_bytes, load_checkpoint  # noqa: E402
from anil_engine.config import VIEW_COUNTS, TaskSpec  # noqa: E402
from anil_engine.datasets import ImageTensorDataset, load_dataset  # noqa: E402
from anil_engine.evaluation import mean_ci95, nearest_class_mean, onnx_trunk_session, split_features  # noqa: E402
from anil_engine.jobs import run_to_end  # noqa: E402
from anil_engine.models import AnilModel, model_from_checkpoint, model_with_views  # noqa: E402
from anil_engine.tasks import (  # noqa: E402
    FastEpisodeSampler,
    class_groups,
    labels_dataset,
    support_query_masks,
    to_float,
)


def view_features(model: AnilModel, images: torch.Tensor, views: int) -> torch.Tensor:
    """Inductive features of `images` (uint8) with `views` test-time views (`anil_engine.views`: the same
    averaging the card, the app and the export do for a model that has them); the checkpoint's own setting is
    replaced, so `--views-a 1` measures a trunk without them."""
    model = model_with_views(model, views)
    return run_to_end(split_features(model, images, session=onnx_trunk_session(model)))


@torch.no_grad()
def unpooled_features(model: AnilModel, images: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """Inductive features of `images` (uint8) from a CNN4 trunk's last conv block before its max pool, flattened:
    (n, channels x h x w), where the pooled features are (n, channels)."""
    if model.config.backbone != "cnn4":
        raise SystemExit(f"--unpooled-b: needs a CNN4 trunk, not {model.config.backbone}")
    model.eval()
    out: list[torch.Tensor] = []
    # The trunk's own forward pass; its last block's ReLU output is what that block's max pool then pools.
    hook = model.trunk[1][-1].relu.register_forward_hook(lambda _m, _i, output: out.append(output.flatten(1)))
    try:
        for i in range(0, len(images), batch):
            model.trunk(to_float(images[i : i + batch], "cpu"))
    finally:
        hook.remove()
    return torch.cat(out)


def trunk_features(
    checkpoint: str, args: argparse.Namespace, views: int, unpooled: bool = False
) -> tuple[torch.Tensor, ImageTensorDataset]:
    """The trunk's features of every image of the split (its own input size), and the split."""
    ckpt = load_checkpoint(checkpoint)
    model = model_from_checkpoint(ckpt, checkpoint)
    pre = model.preprocessing
    name, scheme = ckpt["dataset"].get("name", "omniglot"), ckpt["dataset"].get("split_scheme", "vinyals")
    data = load_dataset(name, args.data_root, args.split, pre.size, pre.channels, scheme, crop=pre.crop)
    if unpooled:
        return unpooled_features(model, data.images), data
    return view_features(model, data.images, views), data


def episode_accuracies(
    checkpoint: str,
    args: argparse.Namespace,
    views: int = 1,
    joined: str | None = None,
    sqrt: bool = False,
    centre: bool = False,
    base_centre: bool = False,
    unpooled: bool = False,
    alphabets: list[str] | None = None,
) -> list[float]:
    """Accuracy (percent) of each of the seeded episodes, nearest class mean on the trunk's features.

    `joined`: a second checkpoint whose features are appended to these, each trunk's made unit-length first
    (an ensemble of two trunks, each with the same weight whatever its feature scale).
    `sqrt`: the square root of every feature (both trunks' when joined) first; the trunks' features are pooled
        ReLU outputs (>= 0). It evens out a few large features ("power transform").
    `centre`: in each episode, every feature minus the mean feature of the episode's support images, then
        made unit length; it uses the support only (inductive), and what all the episode's classes share
        (an alphabet's style) no longer counts in the angles between them.
    `base_centre`: every feature minus the mean feature of the training split's images (after the square root
        when `sqrt`), then made unit length: a fixed vector, as SimpleShot's CL2N centres on the base classes.
    `unpooled`: the last conv block's map before its max pool, flattened (`unpooled_features`), one view only.
    `alphabets`: a list to which each episode's alphabet (its first class's) is appended, in episode order.
    """
    if unpooled and (views != 1 or joined or base_centre):
        raise SystemExit("--unpooled-b: one view, no second trunk, no training-split centring")
    features, data = trunk_features(checkpoint, args, views, unpooled)
    if sqrt:
        features = features.clamp_min(0).sqrt()
    if base_centre:
        base, _ = trunk_features(checkpoint, argparse.Namespace(**{**vars(args), "split": "train"}), views)
        base = base.clamp_min(0).sqrt() if sqrt else base
        features = torch.nn.functional.normalize(features - base.mean(0), dim=1)
    if joined:
        other, other_data = trunk_features(joined, args, 1)
        if sqrt:
            other = other.clamp_min(0).sqrt()
        if other_data.class_names != data.class_names or not torch.equal(other_data.labels, data.labels):
            raise SystemExit(f"{joined}: trained on another data set or split than {checkpoint}; join like with like")
        normalize = torch.nn.functional.normalize
        features = torch.cat([normalize(features, dim=1), normalize(other, dim=1)], dim=1)
    if args.l2:
        features = torch.nn.functional.normalize(features, dim=1)
    task = TaskSpec(args.ways, args.shots, args.query)
    groups = class_groups(data.class_names, args.within) if args.within else None
    sampler = FastEpisodeSampler(labels_dataset(data.labels), task, args.seed, groups=groups)
    out = []
    for _ in range(args.episodes):
        idx, y = sampler.sample_indices()
        support, query = support_query_masks(y, task.shots, task.query)
        f = features[idx]
        if centre:
            f = torch.nn.functional.normalize(f - f[support].mean(0), dim=1)
        predictions = nearest_class_mean(f[support], y[support], f[query], task.ways)
        if alphabets is not None:
            alphabets.append(data.class_names[int(data.labels[idx[0]])].split("/")[0])
        out.append(100.0 * float((predictions == y[query]).float().mean()))
    return out


def by_alphabet(diffs: list[float], alphabets: list[str]) -> tuple[dict[str, list[float]], tuple[float, float]]:
    """The paired differences grouped by episode alphabet, and the interval with the alphabets as the sample.

    Episodes of one alphabet share its look-alike characters, so they are not independent draws of what a new
    alphabet brings; the episode-level interval counts them as if they were. This one takes each alphabet's mean
    difference as one observation: their mean ± t(0.975, G - 1) * sd / sqrt(G) over the G alphabets.
    """
    groups: dict[str, list[float]] = {}
    for d, name in zip(diffs, alphabets, strict=True):
        groups.setdefault(name, []).append(d)
    means = [sum(v) / len(v) for v in groups.values()]
    mean = sum(means) / len(means)
    if len(means) < 2:
        return groups, (mean, float("nan"))
    sd = math.sqrt(sum((m - mean) ** 2 for m in means) / (len(means) - 1))
    return groups, (mean, float(scipy.stats.t.ppf(0.975, len(means) - 1)) * sd / math.sqrt(len(means)))


def report(
    labels: tuple[str, str], a: list[float], b: list[float], alphabets: list[str] | None
) -> tuple[list[tuple[float, float]], tuple[float, float] | None]:
    """Print each side's accuracy and the paired difference (mean ± 95 % CI over the episodes); with the episodes'
    `alphabets`, also each alphabet's mean difference and the interval with the alphabets as the sample."""
    diffs = [y - x for x, y in zip(a, b, strict=True)]
    rows = [mean_ci95(a), mean_ci95(b), mean_ci95(diffs)]
    for label, (mean, ci) in zip((*labels, "second - first, paired (same episodes)"), rows, strict=True):
        print(f"{label}: {mean:.2f} ± {ci:.2f}")
    if alphabets is None:
        return rows, None
    groups, (mean, ci) = by_alphabet(diffs, alphabets)
    for name, values in sorted(groups.items()):
        print(f"  {name} ({len(values)} episodes): {sum(values) / len(values):+.2f}")
    print(f"second - first, paired, the {len(groups)} alphabets as the sample: {mean:.2f} ± {ci:.2f}")
    return rows, (mean, ci)


def pool(paths: list[str]) -> list[tuple[float, float]]:
    """The `--episodes-out` files of several folds as one comparison: every episode's accuracies, and the
    per-alphabet interval over all their alphabets (each alphabet held out by one fold only)."""
    first: list[float] = []
    second: list[float] = []
    alphabets: list[str] = []
    for path in paths:
        try:
            saved = json.loads(Path(path).read_text())
            a, b, names = saved["first"], saved["second"], saved["alphabets"]
        except (OSError, ValueError, KeyError) as exc:
            raise SystemExit(f"{path}: not an --episodes-out file of compare_trunks.py ({exc}); run it again") from exc
        if len(names) != len(a) or len(b) != len(a):
            raise SystemExit(f"{path}: saved without --within alphabet; pool comparisons within one alphabet")
        if set(names) & set(alphabets):
            raise SystemExit(f"{path}: its alphabets were already pooled from another file; pool each fold once")
        first, second, alphabets = first + a, second + b, alphabets + names
    print(f"{len(paths)} files, {len(first)} episodes")
    rows, over_alphabets = report(("first", "second"), first, second, alphabets)
    return [*rows, over_alphabets]


def main(argv: list[str] | None = None) -> list[tuple[float, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", nargs="?", help="first checkpoint")
    parser.add_argument("b", nargs="?", help="second checkpoint")
    parser.add_argument("--pool", nargs="+", metavar="F.json", help="pool --episodes-out files (no checkpoints)")
    parser.add_argument("--episodes-out", metavar="F.json", help="write every episode's accuracies and alphabet")
    parser.add_argument("--data-root")
    parser.add_argument("--split", default="val")
    parser.add_argument("--within", default=None, help="alphabet: every episode's classes from one alphabet")
    parser.add_argument("--ways", type=int, default=20)
    parser.add_argument("--shots", type=int, default=1)
    parser.add_argument("--query", type=int, default=15)
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--views-a", type=int, default=1, choices=VIEW_COUNTS, help="views averaged, first trunk")
    parser.add_argument("--views-b", type=int, default=1, choices=VIEW_COUNTS, help="views averaged, second trunk")
    parser.add_argument(
        "--l2", action="store_true", help="L2-normalise every image's features before the class means (both trunks)"
    )
    parser.add_argument(
        "--join-b",
        default=None,
        metavar="C.pt",
        help="append the features of trunk C to the second trunk's, each made unit-length (a two-trunk ensemble)",
    )
    parser.add_argument("--sqrt-b", action="store_true", help="the square root of the second trunk's features")
    parser.add_argument(
        "--centre-b",
        action="store_true",
        help="the second trunk's features minus each episode's mean support feature, then unit length",
    )
    parser.add_argument(
        "--base-centre-b",
        action="store_true",
        help="the second trunk's features minus the training split's mean feature, then unit length (CL2N)",
    )
    parser.add_argument(
        "--unpooled-b",
        action="store_true",
        help="the second trunk's last conv block before its max pool, flattened (CNN4 only)",
    )
    args = parser.parse_args(argv)
    if args.pool:
        if args.a or args.b:
            parser.error("--pool reads saved episodes; give no checkpoints with it")
        return pool(args.pool)
    if not (args.a and args.b and args.data_root):
        parser.error("two checkpoints and --data-root are needed (or --pool with saved episodes)")
    if args.centre_b and args.base_centre_b:
        parser.error("--centre-b and --base-centre-b: choose one centring")
    if args.join_b and args.base_centre_b:
        parser.error("--base-centre-b centres the second trunk's features only; leave --join-b out with it")
    alphabets: list[str] = []
    a = episode_accuracies(args.a, args, args.views_a, alphabets=alphabets)
    b = episode_accuracies(
        args.b, args, args.views_b, args.join_b, args.sqrt_b, args.centre_b, args.base_centre_b, args.unpooled_b
    )
    rows, _ = report((args.a, args.b), a, b, alphabets if args.within == "alphabet" else None)
    if args.episodes_out:
        saved = {"a": args.a, "b": args.b, "options": argv if argv is not None else sys.argv[1:]}
        saved.update(first=a, second=b, alphabets=alphabets if args.within == "alphabet" else [])
        atomic_write_bytes(json.dumps(saved).encode(), args.episodes_out)
    return rows


if __name__ == "__main__":
    main()
