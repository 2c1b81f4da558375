"""Two trunks on the same seeded episodes: each one's accuracy and their paired difference, mean ± 95 % CI.

Nearest class mean on inductive features (independent of the feature scale), as the lake experiments compare
trunks (scripts/omniglot_lake_experiments.sh). Usage:
    python scripts/compare_trunks.py A.pt B.pt --data-root DATA [--split val] [--within alphabet]
        [--ways 20 --shots 1 --query 15 --episodes 1000 --seed 0]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anil_engine.checkpoint import load_checkpoint  # noqa: E402
from anil_engine.config import TaskSpec  # noqa: E402
from anil_engine.datasets import load_dataset  # noqa: E402
from anil_engine.evaluation import mean_ci95, nearest_class_mean, split_features  # noqa: E402
from anil_engine.jobs import run_to_end  # noqa: E402
from anil_engine.models import model_from_checkpoint  # noqa: E402
from anil_engine.tasks import FastEpisodeSampler, class_groups, labels_dataset, support_query_masks  # noqa: E402


def episode_accuracies(checkpoint: str, args: argparse.Namespace) -> list[float]:
    """Accuracy (percent) of each of the seeded episodes, nearest class mean on the trunk's features."""
    ckpt = load_checkpoint(checkpoint)
    model = model_from_checkpoint(ckpt, checkpoint)
    pre = model.preprocessing
    name, scheme = ckpt["dataset"].get("name", "omniglot"), ckpt["dataset"].get("split_scheme", "vinyals")
    data = load_dataset(name, args.data_root, args.split, pre.size, pre.channels, scheme)
    features = run_to_end(split_features(model, data.images))
    task = TaskSpec(args.ways, args.shots, args.query)
    groups = class_groups(data.class_names, args.within) if args.within else None
    sampler = FastEpisodeSampler(labels_dataset(data.labels), task, args.seed, groups=groups)
    out = []
    for _ in range(args.episodes):
        idx, y = sampler.sample_indices()
        support, query = support_query_masks(y, task.shots, task.query)
        f = features[idx]
        predictions = nearest_class_mean(f[support], y[support], f[query], task.ways)
        out.append(100.0 * float((predictions == y[query]).float().mean()))
    return out


def main(argv: list[str] | None = None) -> list[tuple[float, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="first checkpoint")
    parser.add_argument("b", help="second checkpoint")
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--within", default=None, help="alphabet: every episode's classes from one alphabet")
    parser.add_argument("--ways", type=int, default=20)
    parser.add_argument("--shots", type=int, default=1)
    parser.add_argument("--query", type=int, default=15)
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    a, b = episode_accuracies(args.a, args), episode_accuracies(args.b, args)
    rows = [mean_ci95(a), mean_ci95(b), mean_ci95([y - x for x, y in zip(a, b, strict=True)])]
    for label, (mean, ci) in zip((args.a, args.b, "second - first, paired (same episodes)"), rows, strict=True):
        print(f"{label}: {mean:.2f} ± {ci:.2f}")
    return rows


if __name__ == "__main__":
    main()
