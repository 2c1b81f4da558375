"""ANIL meta-training step, as in the article (learn2learn's `anil_fc100.py`).

Per task: features once, the head cloned from `l2l.algorithms.MAML`, adapted for
`adaptation_steps` steps on the support loss (second order unless `first_order`),
query loss back-propagated into head and trunk. Gradients are averaged over the
meta-batch by the caller before the Adam step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from anil_engine.models import batch_statistics  # noqa: F401 - re-exported for the engines
from anil_engine.tasks import support_query_masks


@dataclass(frozen=True)
class StepResult:
    """Mean query loss and accuracy (fraction) over a meta-batch."""

    loss: float
    accuracy: float


def fast_adapt(
    features: torch.Tensor,
    labels: torch.Tensor,
    learner: nn.Module,
    adaptation_steps: int,
    shots: int,
    query: int,
    first_order: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Adapt a cloned MAML head on the support set, return (query loss, query accuracy).

    Args:
        features: (n, num_features) features of one task, support and query.
        labels: (n,) labels 0..ways-1, each class `shots + query` times.
        learner: a `MAML.clone()` of the head.
    """
    support, query_mask = support_query_masks(labels, shots, query)
    fs, ys = features[support], labels[support]
    fq, yq = features[query_mask], labels[query_mask]
    for _ in range(adaptation_steps):
        learner.adapt(F.cross_entropy(learner(fs), ys), first_order=first_order)
    logits = learner(fq)
    loss = F.cross_entropy(logits, yq)
    accuracy = (logits.argmax(1) == yq).float().mean()
    return loss, accuracy


def reference_meta_step(
    trunk: nn.Module,
    maml_head: nn.Module,
    tasks: list[tuple[torch.Tensor, torch.Tensor]],
    adaptation_steps: int,
    shots: int,
    query: int,
    first_order: bool,
) -> StepResult:
    """learn2learn's per-task loop: backward per task, then gradients divided by the meta-batch size.

    Args:
        tasks: (images float (n, c, h, w) on the device, labels (n,)) per task.

    Leaves the averaged meta-gradient in `.grad` of trunk and head parameters.
    """
    total_loss, total_acc = 0.0, 0.0
    for x, y in tasks:
        learner = maml_head.clone()
        loss, acc = fast_adapt(trunk(x), y, learner, adaptation_steps, shots, query, first_order)
        loss.backward()
        total_loss += float(loss.detach())
        total_acc += float(acc)
    n = len(tasks)
    for p in list(trunk.parameters()) + list(maml_head.parameters()):
        if p.grad is not None:
            p.grad.mul_(1.0 / n)
    return StepResult(total_loss / n, total_acc / n)
