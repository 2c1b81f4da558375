"""The batched engine against learn2learn's per-task loop, and the fast sampler against learn2learn's pipeline."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from anil_engine._l2l import learn2learn
from anil_engine.config import ModelConfig, Preprocessing, TaskSpec
from anil_engine.datasets.base import ImageTensorDataset
from anil_engine.errors import ConfigError
from anil_engine.meta.batched import batched_meta_step, grouped_batch_norm, task_features
from anil_engine.meta.reference import reference_meta_step
from anil_engine.models import AnilModel
from anil_engine.tasks import EpisodeSampler, FastEpisodeSampler, support_query_masks


def make_model(ways, dtype, channels=1, size=28):
    torch.manual_seed(0)
    pre = Preprocessing(size, channels, (0.5,) * channels, (0.25,) * channels)
    model = AnilModel(ModelConfig(8, 4, channels, size, ways), pre).to(dtype)
    torch.nn.init.normal_(model.head.weight, std=0.3)  # a non-trivial head start
    torch.nn.init.normal_(model.head.bias, std=0.3)
    return model


def make_tasks(n_tasks, ways, shots, query, dtype, channels=1, size=28):
    g = torch.Generator().manual_seed(1)
    return [
        (
            torch.rand(ways * (shots + query), channels, size, size, generator=g, dtype=dtype),
            torch.arange(ways).repeat_interleave(shots + query),
        )
        for _ in range(n_tasks)
    ]


def reduction_tolerance(dtype: torch.dtype, n_tasks: int, images: int, size: int = 28) -> float:
    """Rounding allowed between two orders of summation: eps * sqrt(terms of the largest reduction).

    The largest reduction is a convolution weight's gradient, a sum over every pixel of every image of
    the meta-batch. Two correct summation orders differ by about eps * sqrt(terms) relative to the result
    (random-walk rounding); CPUs (Intel, AMD EPYC) choose different orders in their kernels, so a fixed
    1e-5 held on one host and failed on another (1.03e-5 for 4 tasks x 50 images x 28 x 28).
    """
    return 2.0 * torch.finfo(dtype).eps * math.sqrt(n_tasks * images * size * size)


def relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    return float((got - expected).abs().max() / expected.abs().max().clamp_min(1e-30))


def assert_same_gradients(reference, batched, tolerance):
    """Relative error of the whole meta-gradient, and of every tensor whose gradient is not zero in theory.

    (The convolution biases sit right before BatchNorm, which cancels them: their exact
    gradient is 0 and what either path computes there is rounding noise.)
    """
    expected = {n: p.grad for n, p in reference.named_parameters()}
    got = {n: p.grad for n, p in batched.named_parameters()}
    assert all(g is not None for g in [*expected.values(), *got.values()])
    flat_e = torch.cat([g.flatten() for g in expected.values()])
    flat_g = torch.cat([g.flatten() for g in got.values()])
    assert relative_error(flat_g, flat_e) <= tolerance
    scale = float(flat_e.abs().max())
    for name, e in expected.items():
        if name.endswith("conv.bias"):  # exact value 0: compare on the scale of the whole gradient
            assert float((got[name] - e).abs().max()) <= tolerance * scale, name
        else:
            assert relative_error(got[name], e) <= tolerance, name


CASES = [
    # ways, shots, query, steps, first_order, lr
    (5, 1, 1, 1, False, 0.5),
    (5, 5, 5, 5, False, 0.1),
    (3, 2, 3, 3, False, 0.4),
    (20, 1, 1, 5, False, 0.1),
    (5, 5, 5, 5, True, 0.1),
    (4, 3, 1, 2, True, 0.4),
    (3, 1, 2, 0, False, 0.4),
]


@pytest.mark.parametrize(
    "one_pass,layout",
    [(False, torch.contiguous_format), (False, torch.channels_last), (True, torch.contiguous_format)],
    ids=["per-task-trunk", "per-task-trunk-channels-last", "one-pass-trunk"],
)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["dtype0", "dtype1"])
@pytest.mark.parametrize("ways,shots,query,steps,first_order,lr", CASES)
def test_batched_step_equals_learn2learn_loop(ways, shots, query, steps, first_order, lr, dtype, one_pass, layout):
    """(The per-task trunk in channels_last is the CPU training layout: it uses the fused kernel where built.)"""
    tolerance = reduction_tolerance(dtype, 4, ways * (shots + query))
    reference = make_model(ways, dtype)
    batched = copy.deepcopy(reference).to(memory_format=layout)
    reference.train()
    batched.train()
    tasks = make_tasks(4, ways, shots, query, dtype)
    maml = learn2learn().algorithms.MAML(reference.head, lr=lr, first_order=first_order)
    ref = reference_meta_step(reference.trunk, maml, tasks, steps, shots, query, first_order)
    laid_out = [(x.contiguous(memory_format=layout), y) for x, y in tasks]
    got = batched_meta_step(batched.trunk, batched.head, laid_out, lr, steps, shots, query, first_order, one_pass)
    assert got.loss == pytest.approx(ref.loss, rel=tolerance)
    assert got.accuracy == pytest.approx(ref.accuracy)
    assert_same_gradients(reference, batched, tolerance)
    # BatchNorm running statistics: updated per task in the same order.
    expected, got = dict(reference.named_buffers()), dict(batched.named_buffers())
    for name, a in expected.items():
        if not a.is_floating_point():
            continue
        if name.endswith("running_mean"):
            # A mean near 0 has no relative precision: its rounding is on the scale of the data (their std).
            scale = float(a.abs().max() + expected[name.replace("_mean", "_var")].sqrt().max())
            assert float((got[name] - a).abs().max()) <= tolerance * scale, name
        else:
            assert relative_error(got[name], a) <= tolerance, name


def test_second_order_differs_from_first_order():
    model = make_model(5, torch.float64)
    model.train()
    tasks = make_tasks(2, 5, 2, 2, torch.float64)
    grads = []
    for first_order in (False, True):
        m = copy.deepcopy(model)
        batched_meta_step(m.trunk, m.head, tasks, 0.5, 3, 2, 2, first_order)
        grads.append(next(m.trunk.parameters()).grad)
    assert relative_error(grads[1], grads[0]) > 1e-4


def test_batched_step_three_channel_input_channels_last():
    reference = make_model(5, torch.float64, channels=3, size=32)
    batched = copy.deepcopy(reference).to(memory_format=torch.channels_last)
    tasks = make_tasks(3, 5, 2, 2, torch.float64, channels=3, size=32)
    maml = learn2learn().algorithms.MAML(reference.head, lr=0.1)
    reference_meta_step(reference.trunk, maml, tasks, 5, 2, 2, False)
    last = [(x.contiguous(memory_format=torch.channels_last), y) for x, y in tasks]
    one_pass = copy.deepcopy(batched)
    batched_meta_step(batched.trunk, batched.head, last, 0.1, 5, 2, 2, False)
    assert_same_gradients(reference, batched, 1e-10)
    batched_meta_step(one_pass.trunk, one_pass.head, last, 0.1, 5, 2, 2, False, one_pass=True)
    assert_same_gradients(reference, one_pass, 1e-10)


def test_one_pass_trunk_keeps_eval_mode_and_momentum_free_batchnorm_exact():
    """Eval mode (running statistics) and cumulative-average BatchNorm (momentum None) fall back exactly."""
    model = make_model(3, torch.float64)
    tasks = make_tasks(3, 3, 1, 1, torch.float64)
    images = [x for x, _ in tasks]
    model.eval()
    assert torch.equal(task_features(model.trunk, images, True), task_features(model.trunk, images, False))
    model.train()
    for m in model.trunk.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    fa, fb = task_features(a.trunk, images, True), task_features(b.trunk, images, False)
    assert relative_error(fa.detach(), fb.detach()) <= 1e-12
    for x, y in zip(a.buffers(), b.buffers(), strict=True):
        assert torch.equal(x, y)


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_grouped_batch_norm_equals_one_call_per_group(affine, layout):
    """Outputs, input and parameter gradients, and running statistics of the hand-written backward."""
    g = torch.Generator().manual_seed(5)
    h = (3.0 + 2.0 * torch.randn(12, 6, 5, 5, generator=g, dtype=torch.float64)).contiguous(memory_format=layout)
    upstream = torch.randn(12, 6, 5, 5, generator=g, dtype=torch.float64)
    bns = [torch.nn.BatchNorm2d(6, affine=affine).double() for _ in range(2)]
    if affine:
        for bn in bns:
            bn.weight.data.copy_(torch.linspace(-1.5, 2.0, 6, dtype=torch.float64))
            bn.bias.data.copy_(torch.linspace(0.5, -0.5, 6, dtype=torch.float64))
    xa, xb = h.clone().requires_grad_(), h.clone().requires_grad_()
    ya = grouped_batch_norm(bns[0], xa, 4)
    yb = torch.cat([bns[1](part) for part in xb.chunk(4)])
    assert relative_error(ya.detach(), yb.detach()) <= 1e-12
    (ya * upstream).sum().backward()
    (yb * upstream).sum().backward()
    assert relative_error(xa.grad, xb.grad) <= 1e-10
    for pa, pb in zip(bns[0].parameters(), bns[1].parameters(), strict=True):
        assert relative_error(pa.grad, pb.grad) <= 1e-10
    for ba, bb in zip(bns[0].buffers(), bns[1].buffers(), strict=True):
        assert relative_error(ba.double(), bb.double()) <= 1e-12


def test_support_query_masks_batched_equals_per_task():
    g = torch.Generator().manual_seed(3)
    labels = torch.stack([torch.arange(4).repeat_interleave(5)[torch.randperm(20, generator=g)] for _ in range(6)])
    for shots, query in [(2, 3), (3, 2), (1, 4), (4, 1)]:
        support, query_mask = support_query_masks(labels, shots, query)
        for row, s, q in zip(labels, support, query_mask, strict=True):
            rs, rq = support_query_masks(row, shots, query)
            assert torch.equal(rs, s) and torch.equal(rq, q)
            for c in range(4):
                assert int((s & (row == c)).sum()) == shots and int((q & (row == c)).sum()) == query
                # within a class, support and query alternate from the first image
                first_two = (row == c).nonzero().squeeze(1)[:2]
                assert bool(s[first_two[0]]) and not bool(s[first_two[1]])
    with pytest.raises(ValueError, match="class 1 has 3 images"):
        support_query_masks(torch.tensor([0, 0, 0, 0, 1, 1, 1]), 2, 2)


def ragged_dataset(n_classes=9, seed=0):
    """Classes with 4..12 images each (some classes too small for the tasks below)."""
    g = torch.Generator().manual_seed(seed)
    counts = [4 + (3 * c) % 9 for c in range(n_classes)]
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    labels = labels[torch.randperm(len(labels), generator=g)]
    images = torch.arange(len(labels), dtype=torch.int64).remainder(256).to(torch.uint8)
    images = images.view(-1, 1, 1, 1).expand(-1, 1, 2, 2).clone()
    return ImageTensorDataset(images, labels, [f"c{c}" for c in range(n_classes)])


def test_fast_sampler_task_shape_and_contents():
    data = ragged_dataset()
    task = TaskSpec(3, 2, 3)
    sampler = FastEpisodeSampler(data, task, seed=0)
    for _ in range(50):
        x, y = sampler.sample()
        assert x.dtype == torch.uint8 and x.shape == (15, 1, 2, 2)
        assert y.tolist() == [0] * 5 + [1] * 5 + [2] * 5
        # Recover each image's index (pixel value = index mod 256; this data set has < 256 images).
        idx = x[:, 0, 0, 0].long()
        classes = data.labels[idx].view(3, 5)
        assert (classes == classes[:, :1]).all(), "one source class per label"
        assert len(set(classes[:, 0].tolist())) == 3, "distinct classes"
        assert len(set(idx.tolist())) == 15, "distinct images"
        assert (data.class_counts()[classes[:, 0]] >= 5).all(), "only classes with enough images"


def test_fast_sampler_is_seeded_and_resumable():
    data = ragged_dataset()
    a, b = FastEpisodeSampler(data, TaskSpec(3, 1, 1), 7), FastEpisodeSampler(data, TaskSpec(3, 1, 1), 7)
    assert all(torch.equal(a.sample()[0], b.sample()[0]) for _ in range(5))
    state = a.state()
    expected = [a.sample()[0] for _ in range(3)]
    c = FastEpisodeSampler(data, TaskSpec(3, 1, 1), 0)
    c.set_state(state)
    assert all(torch.equal(c.sample()[0], e) for e in expected)
    assert not torch.equal(FastEpisodeSampler(data, TaskSpec(3, 1, 1), 8).sample()[0], expected[0])


def test_fast_sampler_sample_many_equals_sequential_samples():
    data = ragged_dataset()
    a, b = FastEpisodeSampler(data, TaskSpec(3, 2, 1), 5), FastEpisodeSampler(data, TaskSpec(3, 2, 1), 5)
    x, y = a.sample_many(4)
    assert x.shape == (36, 1, 2, 2) and y.shape == (4, 9)
    for i in range(4):
        xi, yi = b.sample()
        assert torch.equal(x[9 * i : 9 * (i + 1)], xi) and torch.equal(y[i], yi)
    assert a.state() == b.state()


def test_fast_sampler_refuses_too_few_classes():
    with pytest.raises(Exception, match="need 8 classes"):
        FastEpisodeSampler(ragged_dataset(), TaskSpec(8, 5, 5), 0)


def frequencies(sampler, data, n_tasks):
    """How often each class and each image is drawn, and how often each class gets label 0."""
    class_hits = torch.zeros(data.n_classes)
    image_hits = torch.zeros(len(data))
    label0 = torch.zeros(data.n_classes)
    for _ in range(n_tasks):
        x, y = sampler.sample()
        idx = x[:, 0, 0, 0].long()
        image_hits[idx] += 1
        classes = data.labels[idx]
        class_hits[classes.unique()] += 1
        label0[classes[y == 0][0]] += 1
    return class_hits / n_tasks, image_hits / n_tasks, label0 / n_tasks


def test_fast_sampler_has_learn2learn_task_distribution():
    """Both samplers against the exact probabilities, within 5 standard errors."""
    data = ragged_dataset()
    task = TaskSpec(3, 2, 3)
    n = 3000
    counts = data.class_counts()
    usable = counts >= task.per_class
    n_usable = int(usable.sum())
    p_class = torch.where(usable, task.ways / n_usable, 0.0)
    p_image = (p_class * task.per_class / counts.clamp_min(1))[data.labels]
    p_label0 = torch.where(usable, 1.0 / n_usable, 0.0)
    for sampler in (FastEpisodeSampler(data, task, 3), EpisodeSampler(data, task, 3)):
        got_class, got_image, got_label0 = frequencies(sampler, data, n)
        for got, p in ((got_class, p_class), (got_image, p_image), (got_label0, p_label0)):
            se = (p * (1 - p) / n).sqrt().clamp_min(1e-9)
            z = ((got - p).abs() / se).max()
            assert z < 5, (type(sampler).__name__, got, p)
            assert got[p == 0].sum() == 0
    assert math.isclose(float(p_class.sum()), task.ways)


@pytest.mark.parametrize("ways,shots,query", [(3, 2, 3), (5, 1, 1), (2, 1, 2), (4, 3, 1)])
def test_fast_sampler_draws_learn2learns_tasks(ways, shots, query):
    """Same seed, same episodes as learn2learn's Taskset pipeline, in the same order; the same state after."""
    data = ragged_dataset()
    task = TaskSpec(ways, shots, query)
    fast, reference = FastEpisodeSampler(data, task, 11), EpisodeSampler(data, task, 11)
    for _ in range(200):
        (xa, ya), (xb, yb) = fast.sample(), reference.sample()
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert fast.state() == reference.state()
    x, y = fast.sample_many(3)
    for i in range(3):
        xb, yb = reference.sample()
        assert torch.equal(x[len(yb) * i : len(yb) * (i + 1)], xb) and torch.equal(y[i], yb)


def test_fast_sampler_rejects_a_state_it_did_not_write():
    sampler = FastEpisodeSampler(ragged_dataset(), TaskSpec(3, 1, 1), 0)
    with pytest.raises(ConfigError, match="not a Python random state"):
        sampler.set_state(torch.zeros(5056, dtype=torch.uint8))  # what an older version saved


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["dtype0", "dtype1"])
@pytest.mark.parametrize("ways,shots,query,steps,first_order,lr", CASES[:5])
def test_one_pass_on_gpu_equals_learn2learn_loop_on_gpu(ways, shots, query, steps, first_order, lr, dtype, monkeypatch):
    tolerance = 4 * reduction_tolerance(dtype, 8, ways * (shots + query))  # GPU kernels reorder more (atomics)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # compare arithmetic, not TF32 rounding
    reference = make_model(ways, dtype).cuda()
    batched = copy.deepcopy(reference).to(memory_format=torch.channels_last)
    tasks = [(x.cuda(), y.cuda()) for x, y in make_tasks(8, ways, shots, query, dtype)]
    maml = learn2learn().algorithms.MAML(reference.head, lr=lr, first_order=first_order)
    ref = reference_meta_step(reference.trunk, maml, tasks, steps, shots, query, first_order)
    last = [(x.contiguous(memory_format=torch.channels_last), y) for x, y in tasks]
    got = batched_meta_step(batched.trunk, batched.head, last, lr, steps, shots, query, first_order, one_pass=True)
    assert got.loss == pytest.approx(ref.loss, rel=tolerance)
    assert_same_gradients(reference, batched, tolerance)
    for (name, a), b in zip(reference.named_buffers(), batched.buffers(), strict=True):
        if a.is_floating_point():
            assert relative_error(b, a) <= tolerance, name


def test_both_engines_on_learn2learn_sampler_draw_the_same_tasks_and_gradients():
    from anil_engine.meta.engines import MetaEngine

    data = ragged_dataset(n_classes=9)
    data = ImageTensorDataset(data.images[:, :, :1, :1].expand(-1, 1, 28, 28).clone(), data.labels, data.class_names)
    models = [make_model(3, torch.float32) for _ in range(2)]
    engines = [
        MetaEngine("reference", models[0], data, TaskSpec(3, 1, 1), 7, "cpu", 0.1, 2, False),
        MetaEngine("batched", models[1], data, TaskSpec(3, 1, 1), 7, "cpu", 0.1, 2, False, sampler="learn2learn"),
    ]
    for _ in range(2):
        batches = [e.sample(4) for e in engines]
        for (xa, ya), (xb, yb) in zip(*batches, strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
        for m in models:
            m.zero_grad()
        steps = [e.step(b) for e, b in zip(engines, batches, strict=True)]
        assert steps[1].loss == pytest.approx(steps[0].loss, rel=1e-5)
        assert_same_gradients(models[0], models[1], 1e-4)
    with pytest.raises(Exception, match="sampler must be one of"):
        MetaEngine("batched", models[1], data, TaskSpec(3, 1, 1), 7, "cpu", 0.1, 2, False, sampler="fastest")


@pytest.mark.parametrize("steps", [0, 3])
def test_prototype_head_start_is_proto_maml_per_task(steps):
    """`head_start="proto"`: each task's head starts at `initial_head(..., "proto")` of its support features and
    the meta-gradient reaches the trunk through the prototypes, as a per-task Proto-MAML loop computes it
    (second order, float64); the shared head gets no gradient."""
    from anil_engine.adaptation import initial_head
    from anil_engine.meta.batched import proto_heads, trunk_features

    ways, shots, query, lr = 4, 2, 3, 0.4
    reference, batched = make_model(ways, torch.float64), make_model(ways, torch.float64)
    reference.train()
    batched.train()
    tasks = make_tasks(3, ways, shots, query, torch.float64)
    losses = []
    for x, y in tasks:
        support, query_mask = support_query_masks(y, shots, query)
        f = trunk_features(reference.trunk, x)
        onehot = torch.nn.functional.one_hot(y[support], ways).double()
        w, b = (t[0] for t in proto_heads(f[support].unsqueeze(0), onehot.unsqueeze(0)))
        expected_w, expected_b = initial_head(reference.head.weight, reference.head.bias, ways, "proto",
                                              f[support], y[support])  # fmt: skip
        assert torch.allclose(w.detach(), expected_w) and torch.allclose(b.detach(), expected_b)
        for _ in range(steps):
            inner = torch.nn.functional.cross_entropy(f[support] @ w.T + b, y[support])
            gw, gb = torch.autograd.grad(inner, (w, b), create_graph=True)
            w, b = w - lr * gw, b - lr * gb
        losses.append(torch.nn.functional.cross_entropy(f[query_mask] @ w.T + b, y[query_mask]))
    expected_loss = torch.stack(losses).mean()
    expected_loss.backward()
    got = batched_meta_step(batched.trunk, batched.head, tasks, lr, steps, shots, query, False, head_start="proto")
    assert got.loss == pytest.approx(float(expected_loss.detach()), rel=1e-10)
    assert batched.head.weight.grad is None and batched.head.bias.grad is None
    for (name, p), q in zip(reference.trunk.named_parameters(), batched.trunk.parameters(), strict=True):
        if name.endswith("conv.bias"):  # cancelled by BatchNorm: exact gradient 0, rounding noise either way
            continue
        assert relative_error(q.grad, p.grad) <= 1e-8, name


def test_the_prototype_head_start_is_trained_by_the_batched_engine_only():
    from anil_engine.config import TrainConfig

    assert TrainConfig(data_root="d", head_init="proto").head_start == "proto"
    assert TrainConfig(data_root="d", head_init="zero").head_start == "meta"
    with pytest.raises(ConfigError, match="batched engine only"):
        TrainConfig(data_root="d", head_init="proto", engine="reference")
