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

    The same update as learn2learn's `MAML.adapt` (p <- p - lr * grad), with the
    gradient in closed form (no autograd graph; tests check it against `MAML.adapt`).

    Args:
        features: (n_support, num_features) support features.
        labels: (n_support,) in 0..n_classes-1.
        weight: (n_classes, num_features) initial weight.
        bias: (n_classes,) initial bias.

    Returns:
        Adapted (weight, bias), detached.
    """
    features = features.detach()
    w, b = weight.detach().clone(), bias.detach().clone()
    targets = F.one_hot(labels, w.shape[0]).to(features.dtype)
    n = features.shape[0]
    for _ in range(steps):
        # Gradient of the mean cross-entropy of a linear layer, written out: (softmax - onehot) / n.
        residual = (F.softmax(F.linear(features, w, b), dim=1) - targets) / n
        w = w - lr * residual.t() @ features
        b = b - lr * residual.sum(0)
    return w, b
