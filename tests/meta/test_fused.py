"""The fused CPU kernel (BatchNorm -> max-pool 2x2 -> ReLU, training mode) against PyTorch's own ops."""

from __future__ import annotations

import copy
import os
import shutil

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from anil_engine.meta import fused

needs_kernel = pytest.mark.skipif(not fused.available(), reason=f"fused kernel: {fused.unavailable_reason()}")


def relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    return float((got - expected).detach().abs().max() / expected.detach().abs().max().clamp_min(1e-30))


def eager(bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    return F.relu(F.max_pool2d(bn(x), 2))


def compare(x: torch.Tensor, bn: nn.BatchNorm2d, tolerance: float) -> None:
    bn_fused = copy.deepcopy(bn)
    x = x.contiguous(memory_format=torch.channels_last)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    expected, got = eager(bn, xa), fused.bn_pool_relu(bn_fused, xb)
    assert got.shape == expected.shape and got.is_contiguous(memory_format=torch.channels_last)
    g = torch.randn(expected.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(3))
    want = torch.autograd.grad(expected, (xa, bn.weight, bn.bias), g)
    have = torch.autograd.grad(got, (xb, bn_fused.weight, bn_fused.bias), g)
    assert relative_error(got, expected) <= tolerance
    for name, h, w in zip(("x", "weight", "bias"), have, want, strict=True):
        assert relative_error(h, w) <= tolerance, name
    assert relative_error(bn_fused.running_mean, bn.running_mean) <= tolerance
    assert relative_error(bn_fused.running_var, bn.running_var) <= tolerance
    assert int(bn_fused.num_batches_tracked) == int(bn.num_batches_tracked)


def make_bn(channels: int, dtype: torch.dtype, seed: int = 0) -> nn.BatchNorm2d:
    torch.manual_seed(seed)
    bn = nn.BatchNorm2d(channels).to(dtype)
    nn.init.uniform_(bn.weight, -0.5, 1.5)  # some negative scales: the maximum of y, not of x
    nn.init.normal_(bn.bias)
    return bn


@needs_kernel
@pytest.mark.parametrize("dtype,tolerance", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("shape", [(6, 16, 28, 28), (5, 8, 7, 7), (3, 64, 3, 3), (4, 3, 10, 13), (2, 5, 2, 2)])
def test_fused_block_equals_batch_norm_max_pool_relu(shape, dtype, tolerance):
    x = torch.randn(shape, dtype=dtype, generator=torch.Generator().manual_seed(1)) * 3 + 2
    compare(x, make_bn(shape[1], dtype), tolerance)


@needs_kernel
def test_fused_block_ties_go_to_the_first_maximum_like_max_pool():
    # Integer-valued input: many equal values inside a window, and a zero-weight channel where all are equal.
    x = torch.randint(0, 3, (4, 6, 8, 8), generator=torch.Generator().manual_seed(2)).double()
    bn = make_bn(6, torch.float64)
    with torch.no_grad():
        bn.weight[2] = 0.0
    compare(x, bn, 1e-12)


@needs_kernel
def test_fused_block_runs_twice_with_momentum_like_batchnorm():
    bn = make_bn(8, torch.float32)
    bn.momentum = 0.3
    fused_bn = copy.deepcopy(bn)
    for seed in (4, 5):
        x = torch.randn(3, 8, 6, 6, generator=torch.Generator().manual_seed(seed)).contiguous(
            memory_format=torch.channels_last
        )
        eager(bn, x)
        fused.bn_pool_relu(fused_bn, x)
    assert relative_error(fused_bn.running_var, bn.running_var) <= 1e-6
    assert relative_error(fused_bn.running_mean, bn.running_mean) <= 1e-6


def test_fusable_only_where_the_kernel_computes_the_same_thing():
    bn, pool = nn.BatchNorm2d(4), nn.MaxPool2d(2)
    last = torch.zeros(2, 4, 6, 6).contiguous(memory_format=torch.channels_last)
    assert fused.fusable(bn, pool, last) == fused.available()
    assert not fused.fusable(bn, pool, torch.zeros(2, 4, 6, 6))  # not channels_last
    assert not fused.fusable(bn, nn.MaxPool2d(3), last)
    assert not fused.fusable(bn, nn.MaxPool2d(2, ceil_mode=True), last)
    assert not fused.fusable(bn.eval(), pool, last)
    assert not fused.fusable(nn.BatchNorm2d(4, momentum=None), pool, last)
    assert not fused.fusable(nn.BatchNorm2d(4, affine=False), pool, last)
    assert not fused.fusable(nn.BatchNorm2d(4), pool, last.half())


@pytest.mark.skipif(
    not (fused._cpu_is_x86_64_v3() and shutil.which("c++") and shutil.which("ninja"))
    or os.environ.get("ANIL_FUSED_CPU") == "0",
    reason="not an x86-64-v3 CPU with a C++ compiler and ninja, or the kernel is turned off",
)
def test_kernel_builds_where_it_can():
    assert fused.available(), fused.unavailable_reason()
