"""A fused CPU kernel for the CNN4 block's `BatchNorm -> max-pool 2x2 -> ReLU` in training mode.

On a CPU the batched engine runs the trunk once per task, and after the
convolutions most of its time goes to memory passes over the first blocks'
activations: eager PyTorch reads and writes each of them about seven times
(BatchNorm statistics and output, max-pool with indices, ReLU; then max-pool
backward's zero fill and scatter, BatchNorm backward's reductions and output).
`_fused_block.cpp` does the forward in two passes (statistics, then pooling of
the normalised values) and the backward in one, with the same results: the
maximum of each window is taken over the normalised values with PyTorch's tie
rule, and the gradients follow BatchNorm's formulas (tests/test_fused.py checks
values, gradients and running statistics against the eager ops, float64 to
1e-10).

The kernel is compiled on first use with `torch.utils.cpp_extension` (a C++
compiler, OpenMP and ninja; about a minute on 2 cores, cached in
`TORCH_EXTENSIONS_DIR`, by default `~/.cache/torch_extensions`). It is built for
x86-64-v3 (AVX2, FMA): without those vector instructions its loops measured
slower than the eager ops, so other CPUs do not use it. Where it cannot be
built `available()` is False and the engine uses the eager ops, which give the
same numbers, only slower. `ANIL_FUSED_CPU=0` turns the kernel off.
"""

from __future__ import annotations

import logging
import os
import platform
import threading
from pathlib import Path
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

_SOURCE = Path(__file__).with_name("_fused_block.cpp")
_NAME = "anil_fused_block_x86_64_v3"
_lock = threading.Lock()
_module: Any = None
_error: str | None = None
# x86-64-v3 as /proc/cpuinfo names its parts (lzcnt is "abm").
_V3_FLAGS = {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"}


def _cpu_is_x86_64_v3() -> bool:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return _V3_FLAGS <= set(line.split(":", 1)[1].split())
    return False


def _load() -> Any:
    global _module, _error
    with _lock:
        if _module is None and _error is None:
            if os.environ.get("ANIL_FUSED_CPU", "1") == "0":
                _error = "turned off by ANIL_FUSED_CPU=0"
            elif not _cpu_is_x86_64_v3():
                _error = "needs a Linux x86-64 CPU with AVX2 and FMA (x86-64-v3)"
            else:
                _module = _build()
        return _module


def _build() -> Any:
    global _error
    try:
        import ninja  # the pip package: put its binary where torch looks for it

        os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
    except ImportError:
        pass
    try:
        # Its import warns that there is no CUDA runtime: irrelevant to a CPU kernel.
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
        from torch.utils import cpp_extension

        # torch holds an OS-level lock on the build directory while it builds or loads, which a killed
        # process releases (torch 2.14.1's torch.utils.cpp_extension._jit_compile; the file itself stays).
        log.info("loading the fused CPU kernel (built once, about a minute; cached afterwards)")
        return cpp_extension.load(
            name=_NAME,
            sources=[str(_SOURCE)],
            extra_cflags=["-O3", "-march=x86-64-v3", "-fopenmp"],
            extra_ldflags=["-fopenmp"],
            verbose=False,
        )
    except Exception as exc:  # no compiler, no ninja, an unwritable cache: the eager ops still work
        _error = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
        log.warning("fused CPU kernel unavailable, using PyTorch's ops (same results, slower): %s", _error)
        return None


def available() -> bool:
    """Whether the fused kernel is compiled and loaded (compiles it on the first call)."""
    return _load() is not None


def checked() -> bool:
    """Whether this process has already tried to load the kernel (`available()` would not build now)."""
    return _module is not None or _error is not None


def unavailable_reason() -> str | None:
    """Why `available()` is False, else None."""
    _load()
    return _error


def fusable(bn: nn.Module, pool: nn.Module, x: torch.Tensor) -> bool:
    """Whether `relu(pool(bn(x)))` can go through the kernel: see `block_fits`, and x on the CPU."""
    return x.device.type == "cpu" and block_fits(bn, pool, x) and available()


def block_fits(bn: nn.Module, pool: nn.Module, x: torch.Tensor) -> bool:
    """What the CPU and GPU kernels both need: training-mode affine BatchNorm with running statistics (and a
    momentum), a 2x2 stride-2 max-pool without padding, x a 4-d float32/float64 channels_last tensor."""
    return (
        isinstance(bn, nn.BatchNorm2d)
        and bn.training
        and bn.affine
        and bn.track_running_stats
        and bn.momentum is not None
        and isinstance(pool, nn.MaxPool2d)
        and _pair(pool.kernel_size) == (2, 2)
        and _pair(pool.stride or pool.kernel_size) == (2, 2)
        and _pair(pool.padding) == (0, 0)
        and _pair(pool.dilation) == (1, 1)
        and not pool.ceil_mode
        and not pool.return_indices
        and x.dtype in (torch.float32, torch.float64)
        and x.dim() == 4
        and x.shape[2] >= 2
        and x.shape[3] >= 2
        and x.is_contiguous(memory_format=torch.channels_last)
    )


def _pair(v: Any) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


class _FusedBlock(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> Any:
        out, xsel, pos, mean, invstd, var = _module.forward(x, weight, bias, eps)
        ctx.save_for_backward(x, out, xsel, pos, weight, mean, invstd)
        ctx.mark_non_differentiable(mean, var)
        return out, mean, var

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor, *_: Any) -> tuple[torch.Tensor | None, ...]:
        x, out, xsel, pos, weight, mean, invstd = ctx.saved_tensors
        dx, dweight, dbias = _module.backward(grad, x, out, xsel, pos, weight, mean, invstd)
        return dx, dweight, dbias, None


def bn_pool_relu(bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """`relu(max_pool2d(bn(x), 2))` in training mode, running statistics updated as `bn` would (see `fusable`)."""
    out, mean, var = _FusedBlock.apply(x, bn.weight, bn.bias, bn.eps)
    with torch.no_grad():
        count = x.numel() // x.shape[1]
        m = bn.momentum
        bn.running_mean.mul_(1 - m).add_(mean, alpha=m)
        bn.running_var.mul_(1 - m).add_(var * (count / max(count - 1, 1)), alpha=m)
        bn.num_batches_tracked.add_(1)
    return out
