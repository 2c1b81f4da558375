"""The batched ANIL meta-step: every task's head adapted at once, one backward per meta-batch.

ANIL's inner loop touches only the linear head, so after the trunk has produced
each task's features the meta-batch can be adapted in a handful of batched
matrix products instead of `meta_batch_size` separate `MAML.clone()/adapt()`
graphs. The result is the same loss and the same gradients as learn2learn's
per-task loop (`anil_engine.anil.reference_meta_step`; tests check it to 1e-10
in float64):

- the trunk still runs once per task, so BatchNorm normalises every task with
  its own batch statistics and updates its running statistics in the same order;
- the inner-loop gradient of the mean cross-entropy is written out,
  `(softmax - onehot)^T features / n`; in second order it stays in the autograd
  graph (the same second derivatives `create_graph=True` would give), in first
  order it is detached (what `MAML.adapt(first_order=True)` does);
- the query losses are averaged over the meta-batch and back-propagated once,
  which equals backward per task followed by dividing the gradients by the
  meta-batch size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from anil_engine.anil import StepResult
from anil_engine.tasks import support_query_masks


def adapt_heads(
    features: torch.Tensor,
    targets: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    lr: float,
    steps: int,
    first_order: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`steps` SGD steps of T linear heads on T support sets at once.

    Args:
        features: (T, n, d) support features.
        targets: (T, n, ways) one-hot labels, same dtype as features.
        weight: (ways, d) shared initial weight, or (T, ways, d).
        bias: (ways,) or (T, ways).
        first_order: detach the inner gradients (no second derivatives).

    Returns:
        Adapted (weight (T, ways, d), bias (T, ways)), in the autograd graph.
    """
    t, n, d = features.shape
    w = weight.expand(t, -1, d) if weight.dim() == 2 else weight
    b = bias.expand(t, -1) if bias.dim() == 1 else bias
    for _ in range(steps):
        logits = torch.baddbmm(b.unsqueeze(1), features, w.transpose(1, 2))
        residual = (logits.softmax(-1) - targets) / n
        grad_w = residual.transpose(1, 2) @ features
        grad_b = residual.sum(1)
        if first_order:
            grad_w, grad_b = grad_w.detach(), grad_b.detach()
        w = w - lr * grad_w
        b = b - lr * grad_b
    return w, b


def _pool_then_relu(trunk: nn.Module) -> list[nn.Module] | None:
    """The blocks of a `Normalize -> CNN4Backbone` trunk whose ReLU can follow the max-pool, else None."""
    if not (isinstance(trunk, nn.Sequential) and len(trunk) == 2):
        return None
    blocks = list(trunk[1])
    for block in blocks:
        if not (isinstance(getattr(block, "max_pool", None), nn.MaxPool2d) and isinstance(block.relu, nn.ReLU)):
            return None
    return blocks


def trunk_features(trunk: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`trunk(x)`, with each CNN4 block's ReLU moved after its max-pool.

    max(relu(a), relu(b), ...) = relu(max(a, b, ...)) since ReLU is monotonic, and the
    gradient reaches the same element; on a quarter of the elements the ReLU costs
    (forward and backward) about a tenth of a CPU meta-iteration less.
    """
    blocks = _pool_then_relu(trunk)
    if blocks is None:
        return trunk(x)
    h = trunk[0](x)
    for block in blocks:
        h = block.relu(block.max_pool(block.normalize(block.conv(h))))
    return h.reshape(h.shape[0], -1)


def task_features(trunk: nn.Module, images: list[torch.Tensor]) -> torch.Tensor:
    """Run the trunk once per task (per-task BatchNorm statistics, as in the per-task loop); (T, n, d).

    One call over the whole meta-batch would mix the tasks' BatchNorm statistics, and
    measured 2-8x slower on CPU (large convolutions are memory-bound there).
    """
    return torch.stack([trunk_features(trunk, x) for x in images])


def batched_meta_step(
    trunk: nn.Module,
    head: nn.Linear,
    tasks: list[tuple[torch.Tensor, torch.Tensor]],
    fast_lr: float,
    adaptation_steps: int,
    shots: int,
    query: int,
    first_order: bool,
) -> StepResult:
    """One meta-batch, batched; leaves the averaged meta-gradient in `.grad` of trunk and head.

    Args:
        tasks: (images float (n, c, h, w) on the device, labels (n,) in 0..ways-1) per task;
            every task has the same number of images per class.
    """
    features = task_features(trunk, [x for x, _ in tasks])
    labels = torch.stack([y for _, y in tasks])
    masks = [support_query_masks(y, shots, query) for _, y in tasks]
    support = torch.stack([s for s, _ in masks])
    query_mask = torch.stack([q for _, q in masks])
    t, _, d = features.shape
    ways = head.weight.shape[0]
    fs = features[support].view(t, -1, d)
    fq = features[query_mask].view(t, -1, d)
    ys = labels[support].view(t, -1)
    yq = labels[query_mask].view(t, -1)
    w, b = adapt_heads(
        fs, F.one_hot(ys, ways).to(fs.dtype), head.weight, head.bias, fast_lr, adaptation_steps, first_order
    )
    logits = torch.baddbmm(b.unsqueeze(1), fq, w.transpose(1, 2))
    # Mean over each task's queries, then over tasks (equal query counts: one flat mean is the same).
    loss = F.cross_entropy(logits.reshape(-1, ways), yq.reshape(-1))
    loss.backward()
    accuracy = (logits.argmax(-1) == yq).float().mean()
    return StepResult(float(loss.detach()), float(accuracy))
