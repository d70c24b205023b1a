"""``torch._scaled_mm`` candidates: cuBLASLt on CUDA, oneDNN on CPUs with native FP8.

Layouts follow what ``_scaled_mm`` demands: mat1 row-major ``[M, K]``, mat2 column-major
``[K, N]`` (the ``.t()`` of a row-major ``[N, K]`` weight), float32 scales that are both
per-tensor (one value each) or both row-wise (``[M, 1]`` and ``[1, N]``).
"""

from __future__ import annotations

import torch

from ..ops import SCALED_MM
from . import platform
from .registry import Candidate

ALIGNMENT = 16
"""cuBLASLt FP8 GEMMs need K and N divisible by 16."""


def _rowwise_scales(a, b, scale_a, scale_b):
    sa = scale_a.float().reshape(-1, 1).expand(a.shape[0], 1).contiguous()
    sb = scale_b.float().reshape(1, -1).expand(1, b.shape[0]).contiguous()
    return sa, sb


def scaled_mm_tensorwise(a, b, scale_a, scale_b, bias, out_dtype):
    """Both scales per-tensor: one ``_scaled_mm`` call with the bias fused."""
    b_cm = b.contiguous().t()
    bias = None if bias is None else bias.to(out_dtype)
    return torch._scaled_mm(a.contiguous(), b_cm, scale_a.float().reshape(()), scale_b.float().reshape(()),
                            bias=bias, out_dtype=out_dtype)


def scaled_mm_rowwise(a, b, scale_a, scale_b, bias, out_dtype):
    """Per-token/per-channel (per-tensor sides expanded): row-wise ``_scaled_mm``, bias added after."""
    sa, sb = _rowwise_scales(a, b, scale_a, scale_b)
    out = torch._scaled_mm(a.contiguous(), b.contiguous().t(), sa, sb, out_dtype=out_dtype)
    return out if bias is None else out + bias.to(out_dtype)


def _check_layout(problem) -> tuple[bool, str]:
    if problem.a_dtype == problem.b_dtype == torch.float8_e5m2:
        return False, "_scaled_mm needs at least one e4m3 operand (both are e5m2)"
    for dim in ("k", "n"):
        size = getattr(problem, dim)
        if not isinstance(size, int) or size % ALIGNMENT:
            return False, f"{dim.upper()} = {size} is not a multiple of {ALIGNMENT}"
    return True, ""


def _lower(problem):
    return scaled_mm_tensorwise if problem.a_scale == problem.b_scale == "tensor" else scaled_mm_rowwise


class CudaScaledMm(Candidate):
    """cuBLASLt through ``torch._scaled_mm`` on CUDA GPUs with FP8 tensor cores."""

    name = "cuda_scaled_mm"
    ops = (SCALED_MM,)
    platforms = "CUDA sm89+"

    def is_supported(self, device):
        return platform.cuda_fp8(device)

    def can_implement(self, problem):
        ok, reason = _check_layout(problem)
        if not ok:
            return ok, reason
        rowwise = not (problem.a_scale == problem.b_scale == "tensor")
        if rowwise and problem.out_dtype != torch.bfloat16:
            return False, f"row-wise _scaled_mm outputs bf16 only (out_dtype {problem.out_dtype})"
        return True, "row-wise" if rowwise else "tensor-wise"

    def lower(self, problem):
        return _lower(problem)


class CpuOnednnFp8(Candidate):
    """oneDNN FP8 GEMM through ``torch._scaled_mm`` on CPUs that run FP8 natively (AMX-FP8)."""

    name = "cpu_onednn_fp8"
    ops = (SCALED_MM,)
    platforms = "CPU with AMX-FP8"

    def is_supported(self, device):
        if device.type != "cpu":
            return False, f"device {device.type} is not the CPU"
        return platform.cpu_native_fp8()

    def can_implement(self, problem):
        return _check_layout(problem)

    def lower(self, problem):
        return _lower(problem)
