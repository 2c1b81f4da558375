"""Grouped BatchNorm -> 2x2 max-pool -> ReLU of the one-pass GPU trunk as two Triton kernels (opt-in).

On a GPU the batched engine runs each convolution once over the whole meta-batch
and normalises every task's slice with its own statistics
(`anil_engine.meta.batched.grouped_batch_norm`), then max-pools and applies ReLU with
PyTorch's ops. At 84x84 those are memory passes over the largest activations of
the run: the normalised tensor is written and read again, max-pool's backward
fills a full-size zero tensor and scatters into it, and BatchNorm's backward
reads that back. Here the forward reads the convolution output once for the
statistics (`torch.var_mean`) and once in a kernel that normalises, pools (first
maximum wins, NaN wins, as in `max_pool2d`) and applies ReLU, writing only
quarter-size tensors. The backward makes two quarter-size reductions and one
kernel that writes the input gradient, `dx = k * g + b * x + c` per task and
channel, with `g` the pooled gradient at each window's maximum.

Exactness against PyTorch's per-task ops is tested in Triton's interpreter on
CPU and, where a GPU is present, compiled (tests/test_fused_gpu.py). Its speed
has **not** been measured on a GPU yet, so it is off by default:
`ANIL_TRITON=1` turns it on for CUDA tensors. If Triton cannot compile (no
Triton, no C compiler for its launcher), the first call logs why and PyTorch's
ops are used from then on.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

import torch
from torch import nn

from anil_engine.meta import fused
from anil_engine.meta.statistics import update_running_statistics

try:
    import triton.language as tl
except ImportError:  # PyTorch wheels without Triton (CPU-only builds, macOS)
    tl = None

log = logging.getLogger(__name__)

_failed: str | None = None
calls = 0  # blocks that went through the kernels in this process (the speed benchmark checks it)
# Tests set this to run the kernels on CPU tensors through Triton's interpreter.
allow_cpu_interpreter = False


def enabled() -> bool:
    return os.environ.get("ANIL_TRITON", "0") == "1" and _failed is None


def fusable(bn: nn.Module, pool: nn.Module, x: torch.Tensor, groups: int) -> bool:
    """Whether `relu(pool(grouped_batch_norm(bn, x, groups)))` can go through the kernels."""
    if tl is None:
        return False
    device_ok = (x.device.type == "cuda" and enabled()) or (x.device.type == "cpu" and allow_cpu_interpreter)
    return device_ok and groups > 1 and x.shape[0] % groups == 0 and fused.block_fits(bn, pool, x)


def _forward_kernel(
    x_ptr,
    scale_ptr,
    shift_ptr,
    mean_ptr,
    invstd_ptr,
    out_ptr,
    xhat_ptr,
    idx_ptr,
    P,
    C,
    H,
    W,
    Ho,
    Wo,
    per_group,
    BLOCK_P: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    p = (tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)).to(tl.int64)  # pooled pixel, over N*Ho*Wo
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    mask = (p < P)[:, None] & (c < C)[None, :]
    wo = p % Wo
    ho = (p // Wo) % Ho
    n = p // (Wo * Ho)
    stat = (n // per_group)[:, None] * C + c[None, :]
    scale = tl.load(scale_ptr + stat, mask=mask, other=1.0)
    shift = tl.load(shift_ptr + stat, mask=mask, other=0.0)
    top_left = (((n * H + 2 * ho) * W + 2 * wo) * C)[:, None] + c[None, :]
    best_x = tl.load(x_ptr + top_left, mask=mask, other=0.0)
    best = best_x * scale + shift
    idx = tl.full([BLOCK_P, BLOCK_C], 0, tl.int32)  # (tl.zeros is a jit function: not in the interpreter)
    for j in tl.static_range(1, 4):
        xj = tl.load(x_ptr + top_left + ((j // 2) * W + (j % 2)) * C, mask=mask, other=0.0)
        vj = xj * scale + shift
        take = (vj > best) | (vj != vj)  # max_pool2d's rule: a later element wins only if larger, or NaN
        best = tl.where(take, vj, best)
        best_x = tl.where(take, xj, best_x)
        idx = tl.where(take, j, idx)
    out = tl.where(best <= 0, 0.0, best)  # ReLU that keeps NaN, like torch.relu
    xhat = (best_x - tl.load(mean_ptr + stat, mask=mask, other=0.0)) * tl.load(invstd_ptr + stat, mask=mask, other=0.0)
    pooled = p[:, None] * C + c[None, :]
    tl.store(out_ptr + pooled, out.to(out_ptr.dtype.element_ty), mask=mask)
    tl.store(xhat_ptr + pooled, xhat.to(xhat_ptr.dtype.element_ty), mask=mask)
    tl.store(idx_ptr + pooled, idx.to(tl.int8), mask=mask)


def _backward_kernel(
    x_ptr,
    gp_ptr,
    idx_ptr,
    k_ptr,
    b_ptr,
    c_ptr,
    dx_ptr,
    Q,
    C,
    H,
    W,
    Ho,
    Wo,
    per_group,
    BLOCK_Q: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    q = (tl.program_id(0) * BLOCK_Q + tl.arange(0, BLOCK_Q)).to(tl.int64)  # input pixel, over N*H*W
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    mask = (q < Q)[:, None] & (c < C)[None, :]
    w = q % W
    h = (q // W) % H
    n = q // (W * H)
    stat = (n // per_group)[:, None] * C + c[None, :]
    # The pooled element whose window holds this pixel; floor mode leaves the last odd row/column out.
    inside = ((h // 2) < Ho) & ((w // 2) < Wo)
    pooled = (((n * Ho + h // 2) * Wo + w // 2) * C)[:, None] + c[None, :]
    here = ((h % 2) * 2 + (w % 2)).to(tl.int8)
    in_window = mask & inside[:, None]
    idx = tl.load(idx_ptr + pooled, mask=in_window, other=-1)
    g = tl.load(gp_ptr + pooled, mask=in_window & (idx == here[:, None]), other=0.0)
    x = tl.load(x_ptr + q[:, None] * C + c[None, :], mask=mask, other=0.0)
    k = tl.load(k_ptr + stat, mask=mask, other=0.0)
    b = tl.load(b_ptr + stat, mask=mask, other=0.0)
    cc = tl.load(c_ptr + stat, mask=mask, other=0.0)
    dx = (cc + b * x) + k * g
    tl.store(dx_ptr + q[:, None] * C + c[None, :], dx.to(dx_ptr.dtype.element_ty), mask=mask)


@functools.cache
def _kernels(interpret: bool) -> tuple[Any, Any]:
    """The two kernels, compiled for the GPU or run by Triton's interpreter (read when `triton.jit` wraps)."""
    import triton

    saved = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1" if interpret else "0"
    try:
        return triton.jit(_forward_kernel), triton.jit(_backward_kernel)
    finally:
        if saved is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = saved


BLOCK_PIXELS = 64


def _block_c(channels: int) -> int:
    return min(64, max(16, 1 << (channels - 1).bit_length()))


def _grid(pixels: int, channels: int) -> tuple[int, int]:
    return (-(-pixels // BLOCK_PIXELS), -(-channels // _block_c(channels)))


def _groups_view(t: torch.Tensor, groups: int) -> torch.Tensor:
    """(N, C, H, W) channels_last -> the free (groups, N / groups * H * W, C) view."""
    return t.permute(0, 2, 3, 1).reshape(groups, -1, t.shape[1])


class _GroupedBlock(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,
        mean: torch.Tensor,
        invstd: torch.Tensor,
        groups: int,
    ) -> torch.Tensor:
        n, c, h, w = x.shape
        ho, wo = h // 2, w // 2
        scale = invstd * weight  # (groups, C), as grouped_batch_norm computes it
        shift = bias - mean * scale
        out = torch.empty((n, c, ho, wo), dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
        xhat = torch.empty_like(out)
        idx = torch.empty(out.shape, dtype=torch.int8, device=x.device, memory_format=torch.channels_last)
        forward, _ = _kernels(x.device.type == "cpu")
        pixels = n * ho * wo
        forward[_grid(pixels, c)](
            x, scale, shift, mean, invstd, out, xhat, idx, pixels, c, h, w, ho, wo, n // groups,
            BLOCK_P=BLOCK_PIXELS, BLOCK_C=_block_c(c),
        )  # fmt: skip
        ctx.save_for_backward(x, out, xhat, idx, weight, invstd, mean)
        ctx.groups = groups
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, out, xhat, idx, weight, invstd, mean = ctx.saved_tensors
        groups = ctx.groups
        n, c, h, w = x.shape
        ho, wo = out.shape[2:]
        gp = torch.where(out > 0, grad, 0).contiguous(memory_format=torch.channels_last)  # ReLU's backward
        sum_g = _groups_view(gp, groups).sum(1)  # (groups, C): max-pool moves g, it does not change its sum
        sum_g_xhat = _groups_view(gp * xhat, groups).sum(1)
        m = n // groups * h * w
        k = weight * invstd
        b = -k * invstd * sum_g_xhat / m
        cc = k * (invstd * sum_g_xhat * mean - sum_g) / m
        dx = torch.empty_like(x, memory_format=torch.channels_last)
        _, backward = _kernels(x.device.type == "cpu")
        pixels = n * h * w
        backward[_grid(pixels, c)](
            x, gp, idx, k.contiguous(), b.contiguous(), cc.contiguous(), dx, pixels, c, h, w, ho, wo, n // groups,
            BLOCK_Q=BLOCK_PIXELS, BLOCK_C=_block_c(c),
        )  # fmt: skip
        return dx, sum_g_xhat.sum(0).view_as(weight), sum_g.sum(0).view_as(weight), None, None, None


@functools.cache
def _compiles(device: torch.device, dtype: torch.dtype, channels: int) -> None:
    """Compile both kernels for this case on a tiny input (forward and backward), so that a failure shows
    before training starts rather than in its first backward pass."""
    x = torch.randn(2, channels, 3, 3, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    ones = torch.ones(1, channels, device=device, dtype=dtype)
    stats = torch.zeros(2, channels, device=device, dtype=dtype)
    _GroupedBlock.apply(x, ones, ones, stats, stats + 1, 2).sum().backward()


def grouped_bn_pool_relu(bn: nn.BatchNorm2d, x: torch.Tensor, groups: int) -> torch.Tensor | None:
    """`relu(max_pool2d(grouped_batch_norm(bn, x, groups), 2))` through the kernels; None if they failed to
    compile (logged once; PyTorch's ops from then on). Check `fusable` first."""
    global _failed, calls

    c = x.shape[1]
    if x.device.type != "cpu":
        try:
            _compiles(x.device, x.dtype, c)
        except Exception as exc:  # no compiler for Triton's launcher, a Triton bug: PyTorch's ops still work
            _failed = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
            log.warning("Triton block kernels unavailable, using PyTorch's ops: %s", _failed)
            return None
    xv = _groups_view(x, groups)
    with torch.no_grad():
        var, mean = torch.var_mean(xv, dim=1, correction=0)
        invstd = torch.rsqrt(var + bn.eps)
    out = _GroupedBlock.apply(x, bn.weight.view(1, c), bn.bias.view(1, c), mean, invstd, groups)
    update_running_statistics(bn, mean, var, groups, xv.shape[1])
    calls += 1
    return out
