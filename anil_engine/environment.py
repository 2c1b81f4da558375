"""What this installation runs on: versions, devices, kernels, bundled models and folders.

`anil-studio info` prints it (add `--json`); the app's Help ▸ About shows the same rows. Meant for bug
reports and for checking a GPU server before a long run.
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path

# Shown name -> distribution names to try (PySide6 is often installed as PySide6_Essentials).
PACKAGES = {
    "anil-studio": ["anil-studio"],
    "torch": ["torch"],
    "torchvision": ["torchvision"],
    "learn2learn": ["learn2learn"],
    "onnxruntime": ["onnxruntime", "onnxruntime-gpu"],
    "PySide6": ["PySide6", "PySide6_Essentials"],
    "numpy": ["numpy"],
    "pillow": ["pillow"],
    "triton": ["triton"],
}


def machine_description(device: str = "cpu") -> str:
    """ "<CPU model>, <n> cores, <OS>", preceded by the GPU's name when `device` is a CUDA device."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    host = f"{cpu}, {os.cpu_count()} cores, {platform.system()}"
    if str(device).startswith("cuda"):
        import torch

        return f"{torch.cuda.get_device_name(torch.device(device))}; host {host}"
    return host


# CPU flags (Linux /proc/cpuinfo) of instructions that compute in bfloat16: x86 AVX-512 BF16 and AMX, Arm BF16.
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str] | None:
    """The CPU's feature flags ("flags" on x86, "Features" on Arm), from `cpuinfo` or /proc/cpuinfo; None where
    unknown (no /proc/cpuinfo: macOS, Windows)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return None
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return None


def slow_bfloat16_note(device: str, cpuinfo: str | None = None) -> str | None:
    """Why `--compute bfloat16` would be slow on `device`, or None (a GPU, a CPU with bfloat16 instructions, or
    one whose flags are unknown). Without such instructions PyTorch emulates bfloat16 on the CPU: a CNN4-128
    pre-training step on Omniglot (batch 256) took 23.0 s against 3.7 s in float32 on a 2-core AVX2 AMD EPYC
    (`benchmarks/pretrain_speed.py --hidden 128 --steps 4`), where one with AVX-512 BF16 took half float32's time."""
    if not str(device).startswith("cpu"):
        return None
    flags = cpu_flags(cpuinfo)
    if flags is None or flags & BF16_FLAGS:
        return None
    return (
        "--compute bfloat16: this CPU has no bfloat16 instructions (AVX-512 BF16, AMX or Arm BF16), so it is "
        "emulated and usually several times slower than float32; stop with Ctrl-C and run with --compute float32 "
        "(benchmarks/pretrain_speed.py measures both on this machine)"
    )


def cpu_bfloat16(cpuinfo: str | None = None) -> str:
    """`info`'s row: whether `pretrain --compute bfloat16` has the CPU's own instructions here."""
    flags = cpu_flags(cpuinfo)
    if flags is None:
        return "unknown (this system does not list the CPU's flags)"
    native = sorted(flags & BF16_FLAGS)
    if native:
        return f"yes ({', '.join(native)})"
    return "no: emulated, `pretrain --compute bfloat16` is slow; use float32"


def package_versions() -> dict[str, str]:
    """Installed version of each package ANIL Studio runs on ("not installed" where missing)."""
    versions = {}
    for shown, distributions in PACKAGES.items():
        versions[shown] = "not installed"
        for name in distributions:
            try:
                versions[shown] = metadata.version(name)
                break
            except metadata.PackageNotFoundError:
                continue
    return versions


def gpu_description() -> str:
    import torch

    if not torch.cuda.is_available():
        return "none found by torch"
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return ", ".join(names)


def fused_kernel_status(build: bool) -> str:
    """The fused CPU kernel's state; with `build`, load it (compiles once, about a minute, then cached)."""
    from anil_engine.meta import fused

    if not build and not fused.checked():
        return "not loaded yet (training loads it; `anil-studio info` builds and checks it)"
    reason = fused.unavailable_reason()
    return "loaded" if reason is None else f"unavailable, PyTorch's ops are used (same results): {reason}"


def environment_report(build_kernel: bool = False) -> dict[str, str]:
    """Ordered rows: Python, package versions, torch's CUDA build, GPUs, CPU, kernel, folders, bundled models."""
    import torch

    from anil_engine.registry import MODELS_DIR, bundled_models

    versions = package_versions()
    versions["torch"] = f"{torch.__version__} (CUDA build: {torch.version.cuda or 'none'})"
    rows = {"Python": f"{platform.python_version()} ({sys.executable})", **versions}
    rows["GPU"] = gpu_description()
    rows["CPU"] = f"{platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"
    rows["CPU bfloat16"] = cpu_bfloat16()
    rows["Fused CPU kernel"] = fused_kernel_status(build_kernel)
    rows["Kernel cache"] = os.environ.get("TORCH_EXTENSIONS_DIR", "~/.cache/torch_extensions")
    rows["Models folder"] = str(MODELS_DIR)
    rows["Bundled models"] = ", ".join(m.name for m in bundled_models()) or "none"
    return rows
