"""The Triton kernels of the one-pass GPU trunk against PyTorch's ops, one BatchNorm call per task.

On CPU the kernels run in Triton's interpreter (the same kernel code, executed with
NumPy); on a GPU they are compiled. Either way, values, gradients and running
statistics must equal the eager ops'.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

fused_gpu = pytest.importorskip("anil_engine.meta.fused_gpu")
if fused_gpu.tl is None:
    pytest.skip("Triton is not installed", allow_module_level=True)

from test_batched import CASES, assert_same_gradients, make_model, make_tasks, relative_error  # noqa: E402

from anil_engine._l2l import learn2learn  # noqa: E402
from anil_engine.meta.batched import batched_meta_step  # noqa: E402
from anil_engine.meta.reference import reference_meta_step  # noqa: E402

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


@pytest.fixture(autouse=True)
def interpreter(monkeypatch):
    monkeypatch.setattr(fused_gpu, "allow_cpu_interpreter", True)
    monkeypatch.setenv("ANIL_TRITON", "1")


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().abs().max() / b.detach().abs().max().clamp_min(1e-12))


def eager(bn: nn.BatchNorm2d, x: torch.Tensor, groups: int) -> torch.Tensor:
    return torch.cat([F.relu(F.max_pool2d(bn(part), 2)) for part in x.chunk(groups)])


def block_case(device, dtype, groups, n, c, h, w, seed=0, integers=False):
    g = torch.Generator().manual_seed(seed)
    if integers:  # many ties inside the 2x2 windows
        x = torch.randint(-3, 4, (groups * n, c, h, w), generator=g).to(dtype)
    else:
        x = torch.randn(groups * n, c, h, w, generator=g, dtype=dtype) * 2 + 0.5
    bn = nn.BatchNorm2d(c).to(dtype)
    with torch.no_grad():
        bn.weight.copy_(torch.randn(c, generator=g, dtype=dtype))
        bn.weight[0] = 0.0  # a zero and negative scales: the maximum is not where x's maximum is
        bn.bias.copy_(torch.randn(c, generator=g, dtype=dtype))
        bn.running_mean.copy_(torch.randn(c, generator=g, dtype=dtype))
        bn.running_var.uniform_(0.5, 2.0, generator=g)
    upstream = torch.randn(groups * n, c, h // 2, w // 2, generator=g, dtype=dtype)
    return x.to(device), bn.to(device), upstream.to(device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(
    ("groups", "n", "c", "h", "w", "integers"),
    [(3, 2, 5, 6, 6, False), (2, 3, 4, 7, 9, False), (4, 1, 3, 5, 4, True), (2, 2, 70, 4, 4, False)],
)
def test_kernels_equal_one_batch_norm_call_per_task(device, dtype, groups, n, c, h, w, integers):
    x, bn, upstream = block_case(device, dtype, groups, n, c, h, w, integers=integers)
    ref_bn = copy.deepcopy(bn)
    x_ref = x.clone().requires_grad_()
    ref = eager(ref_bn, x_ref, groups)
    (ref * upstream).sum().backward()

    x_cl = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    assert fused_gpu.fusable(bn, nn.MaxPool2d(2), x_cl, groups)
    out = fused_gpu.grouped_bn_pool_relu(bn, x_cl, groups)
    assert out.is_contiguous(memory_format=torch.channels_last)
    (out * upstream).sum().backward()
    tol = TOL[dtype]
    assert rel(out, ref) <= tol
    assert rel(x_cl.grad, x_ref.grad) <= tol
    assert rel(bn.weight.grad, ref_bn.weight.grad) <= tol
    assert rel(bn.bias.grad, ref_bn.bias.grad) <= tol
    assert rel(bn.running_mean, ref_bn.running_mean) <= tol
    assert rel(bn.running_var, ref_bn.running_var) <= tol
    assert int(bn.num_batches_tracked) == int(ref_bn.num_batches_tracked) == groups


def test_nan_wins_its_window_and_stays_through_relu():
    x, bn, _ = block_case("cpu", torch.float64, 2, 1, 2, 4, 4)
    bn.momentum = 0.0  # the NaN would otherwise reach the running statistics (it does in PyTorch too)
    x[0, 1, 1, 1] = float("nan")
    ref = eager(copy.deepcopy(bn), x.clone(), 2)
    out = fused_gpu.grouped_bn_pool_relu(bn, x.contiguous(memory_format=torch.channels_last), 2)
    assert torch.equal(out.isnan(), ref.isnan())
    assert out.isnan().any()
    finite = ~ref.isnan()
    assert torch.allclose(out[finite], ref[finite], rtol=1e-12, atol=1e-12)


def test_not_fusable_where_the_kernels_do_not_apply():
    x, bn, _ = block_case("cpu", torch.float64, 2, 2, 3, 4, 4)
    cl = x.contiguous(memory_format=torch.channels_last)
    pool = nn.MaxPool2d(2)
    assert fused_gpu.fusable(bn, pool, cl, 2)
    assert not fused_gpu.fusable(bn, pool, x, 2)  # contiguous layout
    assert not fused_gpu.fusable(bn, pool, cl, 3)  # 4 images do not split into 3 tasks
    assert not fused_gpu.fusable(bn, nn.MaxPool2d(2, ceil_mode=True), cl, 2)
    assert not fused_gpu.fusable(bn.eval(), pool, cl, 2)
    assert not fused_gpu.fusable(nn.BatchNorm2d(3, momentum=None).double(), pool, cl, 2)


@pytest.mark.parametrize("device", DEVICES)
def test_compile_check_runs_both_kernels_on_a_tiny_input(device, monkeypatch):
    fused_gpu._compiles.cache_clear()
    fused_gpu._compiles(torch.device(device), torch.float32, 5)  # raises if either kernel does not run
    fused_gpu._compiles(torch.device(device), torch.float32, 5)
    info = fused_gpu._compiles.cache_info()
    assert (info.misses, info.hits) == (1, 1)  # checked once per device, type and channel count
    # It runs the forward and the backward kernel: a failure in either one is what it reports.
    for step in ("forward", "backward"):

        def broken(*args: object, step: str = step) -> None:
            raise RuntimeError(f"{step} kernel failed")

        with monkeypatch.context() as m:
            m.setattr(fused_gpu._GroupedBlock, step, staticmethod(broken))
            fused_gpu._compiles.cache_clear()
            with pytest.raises(RuntimeError, match=f"{step} kernel failed"):
                fused_gpu._compiles(torch.device(device), torch.float32, 5)
    fused_gpu._compiles.cache_clear()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_kernel_that_does_not_compile_falls_back_to_pytorch(monkeypatch):
    x, bn, _ = block_case("cuda", torch.float32, 2, 2, 3, 4, 4)
    x = x.contiguous(memory_format=torch.channels_last)
    monkeypatch.setattr(fused_gpu, "_compiles", lambda *a: 1 / 0)
    monkeypatch.setattr(fused_gpu, "_failed", None)
    assert fused_gpu.grouped_bn_pool_relu(bn, x, 2) is None
    assert not fused_gpu.enabled() and "ZeroDivisionError" in fused_gpu._failed


def arg_type(name: str, dtype: str) -> str:
    """Triton's signature type of a kernel argument."""
    if name.startswith("BLOCK_"):
        return "constexpr"
    if name == "idx_ptr":
        return "*i8"
    return f"*{dtype}" if name.endswith("_ptr") else "i32"


@pytest.mark.parametrize("arch", [80, 90])  # Ampere (A100), Hopper (H100, H200)
def test_kernels_compile_to_gpu_machine_code(arch):
    """Triton compiles both kernels down to a cubin with its bundled ptxas, no GPU needed: this catches what
    the interpreter cannot (types, layouts, code generation), for the block sizes the engine launches."""
    import inspect

    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, compile

    kernels = fused_gpu._kernels(False)
    for dtype in ("fp32", "fp64"):
        for kernel, source in zip(kernels, (fused_gpu._forward_kernel, fused_gpu._backward_kernel), strict=True):
            names = list(inspect.signature(source).parameters)
            signature = {n: arg_type(n, dtype) for n in names}
            constexprs = {n: fused_gpu._block_c(64) if n == "BLOCK_C" else fused_gpu.BLOCK_PIXELS for n in names}
            constexprs = {n: v for n, v in constexprs.items() if n.startswith("BLOCK_")}
            compiled = compile(ASTSource(kernel, signature, constexprs), target=GPUTarget("cuda", arch, 32))
            assert compiled.asm["cubin"]
            assert ".local" not in compiled.asm["ptx"]  # no register spills to local memory


def test_off_on_a_gpu_unless_asked_for(monkeypatch):
    monkeypatch.delenv("ANIL_TRITON")
    assert not fused_gpu.enabled()
    monkeypatch.setenv("ANIL_TRITON", "1")
    assert fused_gpu.enabled()


@pytest.mark.parametrize("dtype,tolerance", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("ways,shots,query,steps,first_order,lr", [CASES[0], CASES[2], CASES[5]])
def test_one_pass_trunk_through_the_kernels_equals_learn2learn_loop(
    ways, shots, query, steps, first_order, lr, dtype, tolerance, monkeypatch
):
    """The whole batched step with the one-pass trunk through the kernels, against learn2learn's per-task loop."""
    calls = []
    original = fused_gpu.grouped_bn_pool_relu
    monkeypatch.setattr(fused_gpu, "grouped_bn_pool_relu", lambda *a: calls.append(1) or original(*a))
    reference = make_model(ways, dtype, size=16)  # 16 pixels: the interpreter is slow
    batched = copy.deepcopy(reference).to(memory_format=torch.channels_last)
    tasks = make_tasks(4, ways, shots, query, dtype, size=16)
    maml = learn2learn().algorithms.MAML(reference.head, lr=lr, first_order=first_order)
    ref = reference_meta_step(reference.trunk, maml, tasks, steps, shots, query, first_order)
    laid_out = [(x.contiguous(memory_format=torch.channels_last), y) for x, y in tasks]
    got = batched_meta_step(batched.trunk, batched.head, laid_out, lr, steps, shots, query, first_order, True)
    assert len(calls) == 4  # every block went through the kernels
    assert got.loss == pytest.approx(ref.loss, rel=tolerance)
    assert got.accuracy == pytest.approx(ref.accuracy)
    assert_same_gradients(reference, batched, tolerance)
    expected, buffers = dict(reference.named_buffers()), dict(batched.named_buffers())
    for name, a in expected.items():
        if name.endswith("running_var"):
            assert relative_error(buffers[name], a) <= tolerance, name
        elif name.endswith("running_mean"):  # on the scale of the data, as in test_batched
            scale = float(a.abs().max() + expected[name.replace("_mean", "_var")].sqrt().max())
            assert float((buffers[name] - a).abs().max()) <= tolerance * scale, name
