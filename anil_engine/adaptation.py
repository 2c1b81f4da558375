"""Head-only adaptation: the part of ANIL that runs at test time and in the app."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from anil_engine.models import head_logits

_THREADS = threading.Lock()


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run the enclosed (tiny) torch ops on one intra-op thread, then restore the count.

    A head adaptation is a few (25 x 1280) products: splitting them over threads gains nothing,
    and on a busy machine (a second CPU-heavy program, or onnxruntime's own pool) one descheduled
    thread stalls every op at its barrier: 20 head steps took up to 165 ms with 2 threads and at most
    7 ms with one (benchmarks/photo_speed.py; the app once showed 1,066 ms).
    """
    with _THREADS:
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(before)


PROTO_SCALE = 1.0  # Proto-MAML head start: logits s (2 c_k.x - |c_k|^2) with s = PROTO_SCALE / mean |c_k|^2


def initial_head(
    weight: torch.Tensor,
    bias: torch.Tensor,
    n_classes: int,
    mode: str = "meta",
    support: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The head the inner loop starts from for `n_classes` classes.

    `meta`: when `n_classes` equals the trained ways, the meta-learned head as is;
    otherwise every row starts at the mean of the meta-learned rows (and the bias at
    their mean): the classes of an episode are in random order, so no row is special,
    and identical rows give every class the same starting logit.
    `zero`: all zeros (every class equally likely).
    `proto`: Proto-MAML's start from the support prototypes c_k (class means of the
    features): row k = 2 s c_k, bias -s |c_k|^2, so the starting logits rank classes
    by distance to their prototype; s = PROTO_SCALE / mean_k |c_k|^2 keeps them in a
    range where the inner loop's fast_lr works for any feature scale.

    Args:
        weight: (ways, num_features) meta-learned head weight.
        bias: (ways,) meta-learned head bias.
        support: (n_support, num_features) support features (`proto` only).
        labels: (n_support,) in 0..n_classes-1 (`proto` only).

    Returns:
        (weight (n_classes, num_features), bias (n_classes,)), detached copies.
    """
    if mode == "zero":
        return weight.new_zeros(n_classes, weight.shape[1]), bias.new_zeros(n_classes)
    if mode == "proto":
        if support is None or labels is None:
            raise ValueError("the prototype head start needs the support features and labels")
        support = support.detach().to(weight.dtype)
        means = support.new_zeros(n_classes, support.shape[1]).index_add_(0, labels, support)
        means /= torch.bincount(labels, minlength=n_classes).clamp_min(1).unsqueeze(1).to(support.dtype)
        sq = (means * means).sum(1)
        scale = PROTO_SCALE / sq.mean().clamp_min(1e-12)
        return 2 * scale * means, -scale * sq
    if mode != "meta":
        raise ValueError(f"unknown head start {mode!r}")
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
        residual = (F.softmax(head_logits(features, w, b), dim=1) - targets) / n
        w = w - lr * residual.t() @ features
        b = b - lr * residual.sum(0)
    return w, b
