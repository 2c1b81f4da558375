"""Head-only adaptation: the part of ANIL that runs at test time and in the app."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def initial_head(weight: torch.Tensor, bias: torch.Tensor, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The head the inner loop starts from for `n_classes` classes.

    When `n_classes` equals the trained ways, the meta-learned head is used as is.
    Otherwise every row starts at the mean of the meta-learned rows (and the bias
    at their mean): the classes of an episode are in random order, so no row is
    special, and identical rows give every class the same starting logit (this is
    equivalent to a zero-initialised head for the softmax).

    Args:
        weight: (ways, num_features) meta-learned head weight.
        bias: (ways,) meta-learned head bias.

    Returns:
        (weight (n_classes, num_features), bias (n_classes,)), detached copies.
    """
    if n_classes == weight.shape[0]:
        return weight.detach().clone(), bias.detach().clone()
    w = weight.detach().mean(0, keepdim=True).expand(n_classes, -1).clone()
    b = bias.detach().mean().expand(n_classes).clone()
    return w, b


def adapt_head(
    features: torch.Tensor,
    labels: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    lr: float,
    steps: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`steps` plain SGD steps on the mean cross-entropy of the support set.

    The same update as learn2learn's `MAML.adapt` (p <- p - lr * grad), without a graph.

    Args:
        features: (n_support, num_features) support features.
        labels: (n_support,) in 0..n_classes-1.
        weight: (n_classes, num_features) initial weight.
        bias: (n_classes,) initial bias.

    Returns:
        Adapted (weight, bias), detached.
    """
    features = features.detach()
    w = weight.detach().clone().requires_grad_(True)
    b = bias.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        for _ in range(steps):
            loss = F.cross_entropy(F.linear(features, w, b), labels)
            gw, gb = torch.autograd.grad(loss, (w, b))
            with torch.no_grad():
                w -= lr * gw
                b -= lr * gb
    return w.detach(), b.detach()
