"""A checkpoint on Lake et al.'s 20 one-shot runs, next to the published errors of humans and BPL.

The same 400 queries for every model, so the numbers compare directly with the paper's: error in % per run,
their mean and 95 % CI over the 20 runs (Lake et al. report the mean). Baselines on the same runs: the
nearest class mean of the same trunk's features (with one shot: the nearest support drawing) and Lake's own
pixel baseline, the Modified Hausdorff Distance between the drawings' ink (published: 38.8 %), which also checks
that the runs are read as Lake's code reads them.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anil_engine.adaptation import adapt_head, initial_head
from anil_engine.config import LakeRunsRequest, Preprocessing
from anil_engine.datasets.lake_runs import LAKE_RUNS_TABLE, LakeRun, load_lake_runs, redrawn_runs, run_characters
from anil_engine.datasets.omniglot import prepare_drawings
from anil_engine.errors import ConfigError
from anil_engine.evaluation import EvalProgress, features_for, mean_ci95, nearest_class_mean, onnx_trunk_session
from anil_engine.models import AnilModel, head_logits

# Errors in % on these 20 runs (Lake, Salakhutdinov & Tenenbaum, Science 2015, Fig. 6; the baseline's from
# demo_classification.py in github.com/brendenlake/omniglot).
PUBLISHED_ERRORS = {
    "humans": 4.5,
    "Bayesian Program Learning": 3.3,
    "Modified Hausdorff Distance (Lake's pixel baseline)": 38.8,
}


def run_images(drawings: np.ndarray, pre: Preprocessing) -> torch.Tensor:
    """uint8 (n, 105, 105) drawings -> uint8 (n, channels, size, size), as the Omniglot loader prepares them."""
    return prepare_drawings(drawings, pre.size, pre.crop).expand(-1, pre.channels, -1, -1).contiguous()


def run_error(predictions: torch.Tensor, answers: np.ndarray) -> float:
    """Error in % of one run's predictions (n_query,) against its answers."""
    wrong = int((predictions.cpu() != torch.from_numpy(answers)).sum())
    return 100.0 * wrong / len(answers)


def model_errors(
    model: AnilModel,
    runs: list[LakeRun],
    method: str,
    bn: str,
    fast_lr: float,
    steps: int,
    head_init: str,
    device: torch.device | str = "cpu",
    done: int = 0,
    total: int | None = None,
) -> Generator[EvalProgress, None, list[float]]:
    """Each run's error in % for the model (features of the run's 40 images at once: with transductive
    BatchNorm their statistics); yields progress after each run (accuracy: running mean, %), counted from
    `done` of `total` runs (default: these runs)."""
    session = onnx_trunk_session(model, bn) if str(device) == "cpu" else None
    pre = model.preprocessing
    w_trained, b_trained = model.head.weight.detach().float().cpu(), model.head.bias.detach().float().cpu()
    errors: list[float] = []
    start = time.perf_counter()
    for i, run in enumerate(runs, 1):
        images = run_images(np.concatenate([run.support, run.query]), pre)
        features = features_for(model, images, bn, device, session).float().cpu()
        n = len(run.support)
        fs, fq, ys = features[:n], features[n:], torch.arange(n)
        if method == "ncm":
            predictions = nearest_class_mean(fs, ys, fq, n)
        else:
            w0, b0 = initial_head(w_trained, b_trained, n, head_init, fs, ys)
            w, b = adapt_head(fs, ys, w0, b0, fast_lr, steps)
            with torch.no_grad():
                predictions = head_logits(fq, w, b).argmax(1)
        errors.append(run_error(predictions, run.answers))
        yield EvalProgress(done + i, total or len(runs), 100.0 - sum(errors) / len(errors), time.perf_counter() - start)
    return errors


def ink_points(drawing: np.ndarray) -> torch.Tensor:
    """(n, 2) float64 row/column coordinates of a drawing's ink pixels (< 128), centred on their mean."""
    points = torch.from_numpy(np.argwhere(drawing < 128).astype(np.float64))
    return points - points.mean(0) if len(points) else points


def modified_hausdorff(a: torch.Tensor, b: torch.Tensor) -> float:
    """Dubuisson & Jain's (1994) Modified Hausdorff Distance between two point sets (n, 2) and (m, 2): the
    larger of the two mean distances from a point of one set to the nearest point of the other."""
    if not len(a) or not len(b):
        return float("inf")  # a blank drawing matches nothing
    d = torch.cdist(a, b)
    return max(float(d.min(1).values.mean()), float(d.min(0).values.mean()))


def hausdorff_errors(
    runs: list[LakeRun], done: int = 0, total: int | None = None
) -> Generator[EvalProgress, None, list[float]]:
    """Each run's error in % for Lake's baseline: each query goes to the support drawing at the smallest
    Modified Hausdorff Distance; yields progress after each run, counted as in `model_errors`."""
    errors: list[float] = []
    start = time.perf_counter()
    for i, run in enumerate(runs, 1):
        support = [ink_points(d) for d in run.support]
        costs = torch.tensor([[modified_hausdorff(ink_points(q), s) for s in support] for q in run.query])
        errors.append(run_error(costs.argmin(1), run.answers))
        yield EvalProgress(done + i, total or len(runs), 100.0 - sum(errors) / len(errors), time.perf_counter() - start)
    return errors


def summary(errors: list[float]) -> dict[str, Any]:
    mean, ci = mean_ci95(errors)
    return {"error": round(mean, 3), "ci95": round(ci, 3), "accuracy": round(100.0 - mean, 3),
            "errors": [round(e, 3) for e in errors]}  # fmt: skip


def _refuse_seen_characters(ckpt: dict[str, Any], checkpoint: str, table: str | Path) -> None:
    """Lake's runs measure characters never seen in training: refuse a checkpoint whose split trained on any."""
    from anil_engine.datasets.omniglot import wanted_characters

    dataset = ckpt.get("dataset", {})
    if dataset.get("name", "omniglot") != "omniglot":
        raise ConfigError(f"{checkpoint}: a {dataset.get('name')} model; Lake's runs are Omniglot drawings")
    scheme = dataset.get("split_scheme", "vinyals")
    seen = {(a, c) for split in ("train", "val") for _, a, c in wanted_characters(scheme, split)}
    characters = run_characters(table)
    both = seen & characters
    if both:
        raise ConfigError(
            f"{checkpoint}: its {scheme} split trains on {len(both)} of the {len(characters)} characters "
            "of Lake's runs (e.g. " + "/".join(sorted(both)[0]) + "), so its error there is not one-shot; use a "
            "model of the lake split (trained on the background alphabets), e.g. models/omniglot-lake-anil.pt"
        )


def evaluate_lake_runs(request: LakeRunsRequest) -> Generator[EvalProgress, None, dict[str, Any]]:
    """Load the checkpoint and the runs, then measure; yields progress after each run.

    Returns:
        {"error", "ci95", "accuracy" (%), "errors" (per run), "runs", "queries", "method", "bn",
        "adaptation_steps", "fast_lr", "head_init", "views", "checkpoint", "published"} and, with `baselines`,
        {"baselines": {name: {"error", "ci95", "accuracy", "errors"}}}; with `redraws`, {"redrawn": {"draws",
        "seed", method: {...}, "ncm": {...}, with `baselines` "mhd": {...}}}, each run's error the mean over its
        redrawn runs.
    """
    from anil_engine.checkpoint import load_checkpoint
    from anil_engine.config import resolve_device
    from anil_engine.models import model_from_checkpoint, model_with_views

    table = request.table or LAKE_RUNS_TABLE
    ckpt = load_checkpoint(request.checkpoint)
    _refuse_seen_characters(ckpt, request.checkpoint, table)
    model = model_with_views(model_from_checkpoint(ckpt, request.checkpoint), request.views, request.checkpoint)
    runs = load_lake_runs(request.data_root, table)
    device = resolve_device(request.device)
    model = model.to(device)
    steps = ckpt["adaptation_steps"] if request.adaptation_steps is None else request.adaptation_steps
    lr = ckpt["fast_lr"] if request.fast_lr is None else request.fast_lr
    head_init = ckpt.get("head_init", "meta")
    redrawn = redrawn_runs(request.data_root, runs, request.redraws, request.seed) if request.redraws else []
    redraw_methods = list(dict.fromkeys((request.method, "ncm"))) if redrawn else []
    redraw_passes = len(redraw_methods) + (1 if redrawn and request.baselines else 0)
    total = len(runs) * ((3 if request.baselines else 1) + redraw_passes * request.redraws)
    errors = yield from model_errors(model, runs, request.method, request.bn, lr, steps, head_init, device, 0, total)
    result = {
        **summary(errors),
        "runs": len(runs),
        "queries": sum(len(r.query) for r in runs),
        "method": request.method,
        "bn": request.bn,
        "adaptation_steps": steps,
        "fast_lr": lr,
        "head_init": head_init,
        "views": model.preprocessing.views,
        "checkpoint": request.checkpoint,
        "published": dict(PUBLISHED_ERRORS),
    }
    if request.baselines:
        ncm_errors = yield from model_errors(
            model, runs, "ncm", request.bn, lr, steps, head_init, device, len(runs), total
        )
        mhd_errors = yield from hausdorff_errors(runs, 2 * len(runs), total)
        result["baselines"] = {
            "nearest class mean (same trunk)": summary(ncm_errors),
            "Modified Hausdorff Distance (pixels)": summary(mhd_errors),
        }
    if redrawn:
        done = len(runs) * (3 if request.baselines else 1)
        result["redrawn"] = {"draws": request.redraws, "seed": request.seed}
        flat = [r for group in redrawn for r in group]
        for method in [*redraw_methods, *(["mhd"] if request.baselines else [])]:
            if method == "mhd":  # Lake's pixel baseline on the same redrawn runs
                errors = yield from hausdorff_errors(flat, done, total)
            else:
                errors = yield from model_errors(model, flat, method, request.bn, lr, steps, head_init, device,
                                                 done, total)  # fmt: skip
            done += len(flat)
            k = request.redraws  # each run's error: the mean over its k redrawn runs
            result["redrawn"][method] = summary([sum(errors[i : i + k]) / k for i in range(0, len(flat), k)])
    return result
