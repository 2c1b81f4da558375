"""BatchNorm running statistics after many calls, in closed form (shared by the batched step and its kernels)."""

from __future__ import annotations

import torch
from torch import nn


def update_running_statistics(
    bn: nn.modules.batchnorm._BatchNorm, mean: torch.Tensor, var: torch.Tensor, groups: int, count: int
) -> None:
    """The running statistics after `groups` BatchNorm calls in order, one per slice, in closed form.

    Args:
        mean, var: (groups, C) each slice's batch mean and biased variance over `count` values.
    """
    with torch.no_grad():
        m = bn.momentum
        # r_T = (1-m)^T r_0 + sum_t m (1-m)^(T-1-t) s_t: the per-slice updates, in order.
        decay = (1 - m) ** torch.arange(groups - 1, -1, -1, dtype=mean.dtype, device=mean.device)
        weights = (m * decay).view(groups, 1)
        keep = (1 - m) ** groups
        bn.running_mean.mul_(keep).add_((weights * mean).sum(0))
        unbiased = var * (count / max(count - 1, 1))
        bn.running_var.mul_(keep).add_((weights * unbiased).sum(0))
        bn.num_batches_tracked.add_(groups)
