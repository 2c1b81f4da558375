from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from anil_engine._l2l import learn2learn
from anil_engine.adaptation import adapt_head, initial_head
from anil_engine.config import ModelConfig, Preprocessing
from anil_engine.meta.reference import batch_statistics, reference_meta_step
from anil_engine.models import AnilModel
from anil_engine.tasks import support_query_masks


def make_model(ways=3, dtype=torch.float64):
    torch.manual_seed(0)
    return AnilModel(ModelConfig(8, 4, 1, 28, ways), Preprocessing()).to(dtype)


def make_tasks(n_tasks, ways, shots, query, dtype=torch.float64):
    g = torch.Generator().manual_seed(1)
    return [
        (
            torch.rand(ways * (shots + query), 1, 28, 28, generator=g, dtype=dtype),
            torch.arange(ways).repeat_interleave(shots + query),
        )
        for _ in range(n_tasks)
    ]


def hand_written_meta_gradient(model, tasks, steps, lr, shots, query):
    """ANIL meta-gradient written out with autograd.grad(create_graph=True)."""
    params = list(model.trunk.parameters()) + [model.head.weight, model.head.bias]
    total = [torch.zeros_like(p) for p in params]
    for x, y in tasks:
        features = model.trunk(x)
        s, q = support_query_masks(y, shots, query)
        w, b = model.head.weight, model.head.bias
        for _ in range(steps):
            loss = F.cross_entropy(F.linear(features[s], w, b), y[s])
            gw, gb = torch.autograd.grad(loss, (w, b), create_graph=True)
            w, b = w - lr * gw, b - lr * gb
        query_loss = F.cross_entropy(F.linear(features[q], w, b), y[q])
        for t, g in zip(total, torch.autograd.grad(query_loss, params), strict=True):
            t += g / len(tasks)
    return total


@pytest.mark.parametrize("ways,shots,query,steps", [(3, 1, 1, 1), (3, 2, 2, 5), (4, 1, 3, 3)])
def test_reference_step_equals_hand_written_second_order(ways, shots, query, steps):
    model = make_model(ways)
    model.train()
    tasks = make_tasks(3, ways, shots, query)
    expected = hand_written_meta_gradient(model, tasks, steps, 0.4, shots, query)
    l2l = learn2learn()
    maml = l2l.algorithms.MAML(model.head, lr=0.4)
    model.zero_grad()
    reference_meta_step(model.trunk, maml, tasks, steps, shots, query, first_order=False)
    got = [p.grad for p in list(model.trunk.parameters()) + [model.head.weight, model.head.bias]]
    for g, e in zip(got, expected, strict=True):
        assert torch.allclose(g, e, rtol=1e-9, atol=1e-12)


def test_gradients_reach_trunk_and_head_and_second_order_differs():
    grads = {}
    for first_order in (False, True):
        model = make_model()
        model.train()
        maml = learn2learn().algorithms.MAML(model.head, lr=0.5)
        model.zero_grad()
        result = reference_meta_step(model.trunk, maml, make_tasks(2, 3, 2, 2), 3, 2, 2, first_order)
        assert result.loss > 0 and 0 <= result.accuracy <= 1
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
        grads[first_order] = [p.grad.clone() for p in model.parameters()]
    # Second order reaches the trunk through the head's inner-loop steps: every trunk gradient changes (but the
    # conv biases', which the BatchNorm right after them cancels: zero up to rounding either way).
    names = [n for n, _ in make_model().named_parameters()]
    trunk = [i for i, n in enumerate(names) if n.startswith("trunk.") and not n.endswith("conv.bias")]
    assert trunk and all(not torch.allclose(grads[False][i], grads[True][i]) for i in trunk)


def test_batch_statistics_leaves_running_statistics_untouched():
    model = make_model()
    model.eval()
    x = torch.rand(10, 1, 28, 28, dtype=torch.float64)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    inductive = model.forward_features(x)
    with batch_statistics(model.trunk):
        transductive = model.forward_features(x)
    assert not torch.allclose(inductive, transductive)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    # Inductive features of one image do not depend on the rest of the batch.
    assert torch.allclose(model.forward_features(x[:1]), inductive[:1])


def test_adapt_head_matches_maml_adapt():
    torch.manual_seed(0)
    head = torch.nn.Linear(6, 3).double()
    f = torch.randn(9, 6, dtype=torch.float64)
    y = torch.arange(3).repeat(3)
    learner = learn2learn().algorithms.MAML(head, lr=0.3).clone()
    for _ in range(4):
        learner.adapt(F.cross_entropy(learner(f), y))
    w, b = adapt_head(f, y, head.weight, head.bias, 0.3, 4)
    assert torch.allclose(w, learner.module.weight) and torch.allclose(b, learner.module.bias)


def test_initial_head_for_other_class_counts():
    w, b = torch.randn(5, 4), torch.randn(5)
    w3, b3 = initial_head(w, b, 3)
    assert w3.shape == (3, 4) and torch.allclose(w3[0], w.mean(0)) and torch.allclose(w3[1], w3[2])
    w5, _ = initial_head(w, b, 5)
    assert torch.equal(w5, w)
