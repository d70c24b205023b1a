"""``torch._scaled_mm`` candidates: cuBLASLt on CUDA, oneDNN on CPUs with native FP8.

Layouts follow what ``_scaled_mm`` demands: mat1 row-major ``[M, K]``, mat2 column-major
``[K, N]`` (the ``.t()`` of a row-major ``[N, K]`` weight), float32 scales that are both
per-tensor (one value each) or both row-wise (``[M, 1]`` and ``[1, N]``).
"""

from __future__ import annotations

import torch

from ..ops import BLOCK_SCALED_MM, SCALED_MM
from . import platform
from .registry import Candidate
from .triton_fp8 import triton_available

ALIGNMENT = 16
"""cuBLASLt FP8 GEMMs need K and N divisible by 16."""

CUBLAS_BLOCK = 128
"""The one block size of cuBLASLt's DeepSeek-style blockwise FP8 GEMM (1x128 acts, 128x128 weights)."""

CUBLAS_BLOCKWISE_M_MULTIPLE = 4
"""cuBLASLt's blockwise FP8 GEMM answers NOT_SUPPORTED unless M is a multiple of 4 (probed on an
H200, torch 2.11: M in 1, 2, 3, 15, 17, 33, 129 refused; 4, 8, 12, ..., 256 accepted)."""


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


def scaled_mm_blockwise(a, b, scale_a, scale_b, bias, out_dtype, group_n, group_k):
    """cuBLASLt blockwise: scale_a ``[M, K/128]`` outer-dim-major, scale_b the ``.t()`` of ``[N/128, K/128]``."""
    sa = scale_a.float().t().contiguous().t()
    sb = scale_b.float().contiguous().t()
    out = torch._scaled_mm(a.contiguous(), b.contiguous().t(), sa, sb, out_dtype=out_dtype)
    return out if bias is None else out + bias.to(out_dtype)


def _triton_decodes(m: int) -> bool:
    """Whether the Triton block-scaled kernel runs M rows with its decode plan (triton present)."""
    if not triton_available():
        return False
    from .triton_fp8 import ops  # imports triton

    return m <= ops.DECODE_MAX_M


def _check_layout(problem) -> tuple[bool, str]:
    if problem.a_dtype == problem.b_dtype == torch.float8_e5m2:
        return False, "_scaled_mm needs at least one e4m3 operand (both are e5m2)"
    for dim in ("k", "n"):
        size = getattr(problem, dim)
        if not isinstance(size, int) or size % ALIGNMENT:
            return False, f"{dim.upper()} = {size} is not a multiple of {ALIGNMENT}"
    return True, ""


def _lower(problem):
    if problem.op == BLOCK_SCALED_MM:
        return scaled_mm_blockwise
    return scaled_mm_tensorwise if problem.a_scale == problem.b_scale == "tensor" else scaled_mm_rowwise


class CudaScaledMm(Candidate):
    """cuBLASLt through ``torch._scaled_mm`` on CUDA GPUs with FP8 tensor cores."""

    name = "cuda_scaled_mm"
    ops = (SCALED_MM, BLOCK_SCALED_MM)
    platforms = "CUDA sm89+ (blockwise: sm90)"

    def is_supported(self, device):
        return platform.cuda_fp8(device)

    def can_implement(self, problem):
        ok, reason = _check_layout(problem)
        if not ok:
            return ok, reason
        if problem.op == BLOCK_SCALED_MM:
            return self._can_blockwise(problem)
        rowwise = not (problem.a_scale == problem.b_scale == "tensor")
        if rowwise and problem.out_dtype != torch.bfloat16:
            return False, f"row-wise _scaled_mm outputs bf16 only (out_dtype {problem.out_dtype})"
        return True, "row-wise" if rowwise else "tensor-wise"

    @staticmethod
    def _can_blockwise(problem):
        if (problem.group_n, problem.group_k) != (CUBLAS_BLOCK, CUBLAS_BLOCK):
            return False, f"blockwise _scaled_mm supports 128x128 blocks only (got {problem.group_n}x{problem.group_k})"
        if problem.n % CUBLAS_BLOCK or problem.k % CUBLAS_BLOCK:
            return False, f"blockwise _scaled_mm needs N and K multiples of 128 (N={problem.n}, K={problem.k})"
        if problem.out_dtype != torch.bfloat16:
            return False, f"blockwise _scaled_mm outputs bf16 only (out_dtype {problem.out_dtype})"
        if problem.m_static is None or problem.m_static % CUBLAS_BLOCKWISE_M_MULTIPLE:
            return False, (f"blockwise _scaled_mm needs M a multiple of {CUBLAS_BLOCKWISE_M_MULTIPLE} "
                           f"(M = {problem.m}; cuBLASLt answers NOT_SUPPORTED otherwise)")
        if platform.cuda_capability(torch.device("cuda")) < (9, 0):
            return False, "blockwise _scaled_mm needs sm90 (Hopper)"
        if _triton_decodes(problem.m_static):
            return False, (f"M = {problem.m_static}: the Triton block-scaled decode plan (split-K) is faster "
                           f"here (H200, M = 8/16: faster on all but one of the measured shapes, "
                           f"benchmarks/RESULTS.md)")
        return True, "blockwise 1x128 x 128x128"

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
