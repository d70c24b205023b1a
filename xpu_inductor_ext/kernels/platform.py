"""What the device at hand can run natively: safe probes that never raise.

Each probe answers ``(ok, reason)``; reasons end up in the report, so they say what was checked.
"""

from __future__ import annotations

import functools
import importlib

import torch

CPU_FP8_FLAGS = ("amx_fp8",)
"""/proc/cpuinfo flags of CPUs whose oneDNN FP8 GEMM runs natively (not the reference kernel)."""

CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
"""Flags of CPUs with bf16 dot-product hardware; without them a bf16 GEMM is several times slower
than an fp32 one (measured on an AVX2 EPYC: 800 ms vs 153 ms at 256x4096x4096)."""
MIN_CUDA_FP8_CAPABILITY = (8, 9)
"""cuBLASLt FP8 GEMMs need Ada (8.9) or Hopper (9.0) and newer."""

XPU_OPS_MODULE = "vllm_xpu_kernels._xpu_C"


@functools.lru_cache(maxsize=None)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags Linux reports (empty where /proc/cpuinfo is unreadable)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_native_fp8() -> tuple[bool, str]:
    """Whether oneDNN runs FP8 GEMMs natively on this CPU (AMX-FP8)."""
    if not torch.backends.mkldnn.is_available():
        return False, "this torch build has no oneDNN"
    if not any(flag in cpu_flags() for flag in CPU_FP8_FLAGS):
        return False, ("this CPU has no AMX-FP8: oneDNN would run its reference FP8 kernel "
                       "(19.7 s for 1024^3 measured), ~1000x slower than dequantize + bf16 GEMM")
    return True, "CPU has AMX-FP8"


def cpu_fast_bf16() -> bool:
    """Whether this CPU has bf16 GEMM hardware (AVX512-BF16 or AMX-BF16)."""
    return any(flag in cpu_flags() for flag in CPU_BF16_FLAGS)


def cuda_fp8(device: torch.device) -> tuple[bool, str]:
    """Whether ``device`` is a CUDA GPU with FP8 tensor cores."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return False, f"device {device.type} is not CUDA"
    cap = torch.cuda.get_device_capability(device)
    if cap < MIN_CUDA_FP8_CAPABILITY:
        return False, f"compute capability {cap} < {MIN_CUDA_FP8_CAPABILITY}: no FP8 tensor cores"
    return True, f"CUDA compute capability {cap}"


@functools.lru_cache(maxsize=None)
def cuda_capability(device: torch.device) -> tuple[int, int] | None:
    """Compute capability of a CUDA device, or None for other devices (cached: eager Triton calls
    ask it on every call)."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_capability(device)


@functools.lru_cache(maxsize=None)
def xpu_kernels(op: str = "fp8_gemm") -> tuple[bool, str]:
    """Whether vllm-xpu-kernels is loaded with an XPU kernel for ``_xpu_C::<op>``.

    Follows the contract's safe probe: torch.xpu available, the extension imports (ImportError,
    OSError and RuntimeError mean no), the op exists, and it has a kernel for the XPU key.
    """
    xpu = getattr(torch, "xpu", None)
    if xpu is None or not xpu.is_available():
        return False, "torch.xpu is not available"
    try:
        importlib.import_module(XPU_OPS_MODULE)
    except (ImportError, OSError, RuntimeError) as e:
        return False, f"{XPU_OPS_MODULE} did not load: {type(e).__name__}: {e}"
    if not hasattr(torch.ops._xpu_C, op):
        return False, f"vllm-xpu-kernels has no _xpu_C::{op}"
    if not torch._C._dispatch_has_kernel_for_dispatch_key(f"_xpu_C::{op}", "XPU"):
        return False, f"_xpu_C::{op} has no XPU kernel"
    return True, f"vllm-xpu-kernels provides _xpu_C::{op}"
