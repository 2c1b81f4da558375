"""The batched ANIL meta-step: every task's head adapted at once, one backward per meta-batch.

ANIL's inner loop touches only the linear head, so after the trunk has produced
each task's features the meta-batch can be adapted in a handful of batched
matrix products instead of `meta_batch_size` separate `MAML.clone()/adapt()`
graphs. The result is the same loss and the same gradients as learn2learn's
per-task loop (`anil_engine.meta.reference.reference_meta_step`; tests check it to 1e-10
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

import os
import sys
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from anil_engine.adaptation import PROTO_SCALE
from anil_engine.meta import fused
from anil_engine.meta.reference import StepResult
from anil_engine.meta.statistics import update_running_statistics
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


def proto_heads(features: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every task's Proto-MAML head start, in the autograd graph (`adaptation.initial_head`'s "proto" start).

    Row k = 2 s c_k, bias -s |c_k|^2 for the prototype (mean support feature) c_k of class k, with the
    task's scale s = PROTO_SCALE / mean_k |c_k|^2 held constant (detached): the starting logits rank the
    classes by distance to their prototypes, and the gradient reaches the trunk through the prototypes.

    Args:
        features: (T, n, d) support features.
        targets: (T, n, ways) one-hot labels, same dtype as features.

    Returns:
        (weight (T, ways, d), bias (T, ways)).
    """
    means = targets.transpose(1, 2) @ features / targets.sum(1).clamp_min(1).unsqueeze(2)
    sq = (means * means).sum(2)
    scale = (PROTO_SCALE / sq.detach().mean(1, keepdim=True).clamp_min(1e-12)).to(features.dtype)
    return 2 * scale.unsqueeze(2) * means, -scale * sq


def _pool_then_relu(trunk: nn.Module) -> list[nn.Module] | None:
    """The blocks of a `Normalize -> CNN4Backbone` trunk whose ReLU can follow the max-pool, else None."""
    if not (isinstance(trunk, nn.Sequential) and len(trunk) == 2 and isinstance(trunk[1], nn.Sequential)):
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
    (forward and backward) about a tenth of a CPU meta-iteration less. On a CPU, in
    training mode and channels_last, BatchNorm, max-pool and ReLU go through one
    fused kernel (`anil_engine.meta.fused`) where it is available.
    """
    blocks = _pool_then_relu(trunk)
    if blocks is None:
        return trunk(x)
    h = trunk[0](x)
    for block in blocks:
        y = block.conv(h)
        if fused.fusable(block.normalize, block.max_pool, y):  # the same numbers in fewer memory passes
            h = fused.bn_pool_relu(block.normalize, y)
        else:
            h = block.relu(block.max_pool(block.normalize(y)))
    return h.reshape(h.shape[0], -1)


class _GroupNormalize(torch.autograd.Function):
    """y = (x - mean) * invstd * weight + bias per group and channel of x (G, M, C), with BatchNorm's backward.

    `mean` and `invstd` are x's own statistics over M (computed by the caller without
    a graph); the backward includes their dependence on x, written out as in the
    native BatchNorm kernels: dx = a * g + b * x + c with per-(group, channel)
    a, b, c, from two reductions (sum g and sum g * x). Autograd's version of the
    same function measured about half of a one-pass meta-iteration at 84x84 on an
    H100 (many broadcasting elementwise kernels, and two gradient paths into x
    added up). Only first derivatives: ANIL's second-order terms live in the head.
    """

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, mean: torch.Tensor, invstd: torch.Tensor
    ) -> torch.Tensor:
        scale = invstd * weight
        ctx.save_for_backward(x, weight, mean, invstd)
        return torch.addcmul(bias - mean * scale, x, scale)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight, mean, invstd = ctx.saved_tensors
        m = x.shape[1]
        sum_g = g.sum(1, keepdim=True)
        sum_g_xhat = invstd * ((g * x).sum(1, keepdim=True) - mean * sum_g)
        k = weight * invstd
        b = -k * invstd * sum_g_xhat / m
        c = k * (invstd * sum_g_xhat * mean - sum_g) / m
        dx = torch.addcmul(c, b, x).addcmul_(k.expand_as(c), g) if ctx.needs_input_grad[0] else None
        grad_weight = sum_g_xhat.sum(0).view(weight.shape) if ctx.needs_input_grad[1] else None
        grad_bias = sum_g.sum(0).view(weight.shape) if ctx.needs_input_grad[2] else None
        return dx, grad_weight, grad_bias, None, None


def grouped_batch_norm(bn: nn.modules.batchnorm._BatchNorm, h: torch.Tensor, groups: int) -> torch.Tensor:
    """`bn` applied to `groups` equal slices of the batch, as if called once per slice, in one call.

    In training mode each slice is normalised with its own batch statistics and the
    running statistics receive the slices' updates in order (closed form of
    `groups` momentum updates); in eval mode this is `bn(h)`. Works on a
    (groups, images * pixels, channels) view, which is free for `channels_last`
    activations (the GPU layout); other layouts are copied.
    """
    if not bn.training or groups == 1:
        return bn(h)
    if bn.momentum is None or not bn.track_running_stats:
        return torch.cat([bn(part) for part in h.chunk(groups)])
    n, c = h.shape[:2]
    x = h.permute(0, *range(2, h.dim()), 1).reshape(groups, -1, c)
    with torch.no_grad():
        var, mean = torch.var_mean(x, dim=1, correction=0, keepdim=True)
        invstd = torch.rsqrt(var + bn.eps)
    if bn.affine:
        weight, bias = bn.weight.view(1, 1, c), bn.bias.view(1, 1, c)
    else:
        weight, bias = torch.ones_like(invstd), torch.zeros_like(invstd)
    y = _GroupNormalize.apply(x, weight, bias, mean, invstd)
    update_running_statistics(bn, mean.view(groups, c), var.view(groups, c), groups, x.shape[1])
    spatial = h.shape[2:]
    return y.reshape(n, *spatial, c).permute(0, h.dim() - 1, *range(1, h.dim() - 1))


def task_features(trunk: nn.Module, images: list[torch.Tensor], one_pass: bool = False) -> torch.Tensor:
    """The trunk's features of every task, with per-task BatchNorm statistics as in the per-task loop; (T, n, d).

    `one_pass=False` runs the trunk once per task: on CPU one call over the whole
    meta-batch measured 2-8x slower (large convolutions are memory-bound there).
    `one_pass=True` runs every convolution once over the whole meta-batch and
    normalises each task's slice with its own statistics (`grouped_batch_norm`):
    on a GPU this turns `T` small launches per layer into one.
    """
    blocks = _pool_then_relu(trunk)
    if not one_pass or blocks is None or len({x.shape for x in images}) != 1:
        return torch.stack([trunk_features(trunk, x) for x in images])
    groups = len(images)
    h = trunk[0](torch.cat(images))
    for block in blocks:
        y = block.conv(h)
        h = None
        if _gpu_kernels_wanted(y):
            from anil_engine.meta import fused_gpu

            if fused_gpu.fusable(block.normalize, block.max_pool, y, groups):
                h = fused_gpu.grouped_bn_pool_relu(block.normalize, y, groups)
        if h is None:
            h = block.relu(block.max_pool(grouped_batch_norm(block.normalize, y, groups)))
    return h.reshape(groups, images[0].shape[0], -1)


def _gpu_kernels_wanted(y: torch.Tensor) -> bool:
    """Whether to try `anil_engine.meta.fused_gpu` (opt-in, ANIL_TRITON=1; imported only then: it imports Triton)."""
    if y.device.type == "cuda":
        return os.environ.get("ANIL_TRITON", "0") == "1"
    fused_gpu = sys.modules.get("anil_engine.meta.fused_gpu")
    return fused_gpu is not None and fused_gpu.allow_cpu_interpreter


def batched_meta_step(
    trunk: nn.Module,
    head: nn.Linear,
    tasks: list[tuple[torch.Tensor, torch.Tensor]],
    fast_lr: float,
    adaptation_steps: int,
    shots: int,
    query: int,
    first_order: bool,
    one_pass: bool = False,
    head_start: str = "meta",
) -> StepResult:
    """One meta-batch, batched; leaves the averaged meta-gradient in `.grad` of trunk and head.

    Args:
        tasks: (images float (n, c, h, w) on the device, labels (n,) in 0..ways-1) per task;
            every task has the same number of images per class.
        one_pass: run each convolution once over the whole meta-batch (see `task_features`).
        head_start: "meta": every task's inner loop starts from `head`; "proto": from its support prototypes
            (Proto-MAML, `proto_heads`), so the trunk learns through the prototypes and `head` gets no gradient.
    """
    features = task_features(trunk, [x for x, _ in tasks], one_pass)
    labels = torch.stack([y for _, y in tasks])
    support, query_mask = support_query_masks(labels, shots, query)
    t, _, d = features.shape
    ways = head.weight.shape[0]
    fs = features[support].view(t, -1, d)
    fq = features[query_mask].view(t, -1, d)
    ys = labels[support].view(t, -1)
    yq = labels[query_mask].view(t, -1)
    onehot = F.one_hot(ys, ways).to(fs.dtype)
    w0, b0 = proto_heads(fs, onehot) if head_start == "proto" else (head.weight, head.bias)
    w, b = adapt_heads(fs, onehot, w0, b0, fast_lr, adaptation_steps, first_order)
    logits = torch.baddbmm(b.unsqueeze(1), fq, w.transpose(1, 2))
    # Mean over each task's queries, then over tasks (equal query counts: one flat mean is the same).
    loss = F.cross_entropy(logits.reshape(-1, ways), yq.reshape(-1))
    loss.backward()
    accuracy = (logits.argmax(-1) == yq).float().mean()
    return StepResult(float(loss.detach()), float(accuracy))
