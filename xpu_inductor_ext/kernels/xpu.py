"""Intel XPU candidates: oneDNN GEMMs from vllm-xpu-kernels (``torch.ops._xpu_C``).

Every call follows shared/reference/xpu-kernels-contract.md: B is the ``.t()`` view of a
row-major ``[N, K]`` weight, scales are contiguous float32 and never None, ``out_dtype`` is always
passed. The library registers no fake kernels, so :func:`register_fake_kernels` supplies them
once the probe has found it. Block-scaled weights need their scale ``[N/g, K/g]`` as a contiguous
``[K/g, N/g]``: that transpose is made once per weight scale (:data:`block_scales_kn`), inside two
``xpu_quant`` ops that the compiled graphs call (a transpose traced into the graph would run on
every call), registered straight with the dispatcher (`dispatcher_ops`).
"""

from __future__ import annotations

import functools
from typing import Optional

import torch

from ..ops import BLOCK_SCALED_MM, SCALED_MM, WEIGHT_ONLY_MM
from . import platform
from .dispatcher_ops import define_op
from .registry import Candidate
from .weight_cache import DerivedCache

NATIVE_OUT_DTYPES = (torch.float16, torch.bfloat16)
"""fp8_gemm writes fp16 or bf16 only."""


def fp8_gemm_scales_tensorwise(a, b, scale_a, scale_b):
    """Per-tensor mode: both scales hold one value."""
    return scale_a.float().reshape(1).contiguous(), scale_b.float().reshape(1).contiguous()


def fp8_gemm_scales_rowwise(a, b, scale_a, scale_b):
    """Per-token x per-channel mode: A_scale ``[M, 1]``, B_scale ``[N]`` (per-tensor sides expanded)."""
    sa = scale_a.float().reshape(-1, 1).expand(a.shape[0], 1).contiguous()
    sb = scale_b.float().reshape(-1).expand(b.shape[0]).contiguous()
    return sa, sb


def _bias(bias, dtype):
    return None if bias is None else bias.to(dtype).contiguous()


def xpu_scaled_mm(scales_fn):
    """Lowering of ``fp8_scaled_mm`` to ``_xpu_C.fp8_gemm`` with scales laid out by ``scales_fn``."""

    def run(a, b, scale_a, scale_b, bias, out_dtype):
        sa, sb = scales_fn(a, b, scale_a, scale_b)
        return torch.ops._xpu_C.fp8_gemm(a.contiguous(), b.contiguous().t(), out_dtype, sa, sb,
                                         _bias(bias, out_dtype))

    return run


SCALE_LAYOUT_CACHE_SIZE = 4096
block_scales_kn = DerivedCache(lambda s: s.float().t().contiguous(), SCALE_LAYOUT_CACHE_SIZE)
"""A weight's block scales ``[N/g, K/g]`` as the contiguous float32 ``[K/g, N/g]`` both GEMMs take."""


def _gemm_blocks(a: torch.Tensor, b: torch.Tensor, scale_a: torch.Tensor, scale_b: torch.Tensor,
                 bias: Optional[torch.Tensor], out_dtype: torch.dtype) -> torch.Tensor:
    """Block mode of ``_xpu_C.fp8_gemm``: A_scale ``[M, K/gk]``, B_scale ``[K/gk, N/gn]`` contiguous."""
    return torch.ops._xpu_C.fp8_gemm(a.contiguous(), b.contiguous().t(), out_dtype, scale_a.float().contiguous(),
                                     block_scales_kn(scale_b), _bias(bias, out_dtype))


def _gemm_blocks_fake(a, b, scale_a, scale_b, bias, out_dtype):
    return a.new_empty((*a.shape[:-1], b.shape[0]), dtype=out_dtype)


def _gemm_w8a16_blocks(x: torch.Tensor, w: torch.Tensor, w_scale: torch.Tensor,
                       bias: Optional[torch.Tensor]) -> torch.Tensor:
    """``_xpu_C.fp8_gemm_w8a16`` with square block scales, B_scale ``[K/g, N/g]`` contiguous."""
    return torch.ops._xpu_C.fp8_gemm_w8a16(x.contiguous(), w.contiguous().t(), block_scales_kn(w_scale),
                                           _bias(bias, x.dtype))


def _gemm_w8a16_blocks_fake(x, w, w_scale, bias):
    return x.new_empty((*x.shape[:-1], w.shape[0]))


xpu_fp8_gemm_blocks = define_op("xpu_quant::xpu_fp8_gemm_blocks", _gemm_blocks, _gemm_blocks_fake)
xpu_fp8_gemm_w8a16_blocks = define_op("xpu_quant::xpu_fp8_gemm_w8a16_blocks", _gemm_w8a16_blocks,
                                      _gemm_w8a16_blocks_fake)


def xpu_block_scaled_mm(a, b, scale_a, scale_b, bias, out_dtype, group_n, group_k):
    """Lowering of ``fp8_block_scaled_mm`` (the group sizes follow from the scale shapes)."""
    return xpu_fp8_gemm_blocks(a, b, scale_a, scale_b, bias, out_dtype)


def xpu_weight_only_mm(x, w, w_scale, bias, block_n=0, block_k=0):
    """``_xpu_C.fp8_gemm_w8a16``: B_scale one value, ``[N]``, or square blocks ``[K/g, N/g]``."""
    if block_n:
        return xpu_fp8_gemm_w8a16_blocks(x, w, w_scale, bias)
    if w_scale.numel() == 1:
        scale = w_scale.float().reshape(1).contiguous()
    else:
        scale = w_scale.float().reshape(-1).contiguous()
    return torch.ops._xpu_C.fp8_gemm_w8a16(x.contiguous(), w.contiguous().t(), scale, _bias(bias, x.dtype))


def _xpu_supported(device, op):
    if device.type != "xpu":
        return False, f"device {device.type} is not an Intel XPU"
    ok, reason = platform.xpu_kernels(op)
    if ok:
        register_fake_kernels()
    return ok, reason


def _divisible(problem, **pairs) -> tuple[bool, str]:
    for label, (size, block) in pairs.items():
        if not isinstance(size, int) or size % block:
            return False, f"{label} = {size} is not a multiple of the block size {block}"
    return True, ""


class XpuFp8Gemm(Candidate):
    """oneDNN W8A8 GEMM (per-tensor, per-token x per-channel, and block modes)."""

    name = "xpu_fp8_gemm"
    ops = (SCALED_MM, BLOCK_SCALED_MM)
    platforms = "Intel XPU + vllm-xpu-kernels"

    def is_supported(self, device):
        return _xpu_supported(device, "fp8_gemm")

    def can_implement(self, problem):
        if problem.a_dtype != problem.b_dtype:
            return False, f"fp8_gemm needs A and B of one FP8 dtype ({problem.a_dtype} vs {problem.b_dtype})"
        if problem.out_dtype not in NATIVE_OUT_DTYPES:
            return False, f"fp8_gemm writes fp16/bf16 only (out_dtype {problem.out_dtype})"
        if problem.op != BLOCK_SCALED_MM:
            return True, "per-tensor" if problem.a_scale == problem.b_scale == "tensor" else "per-token x per-channel"
        if problem.k == problem.group_k:
            return False, "K equals the group size: fp8_gemm would take its per-token branch"
        return _divisible(problem, K=(problem.k, problem.group_k), N=(problem.n, problem.group_n))

    def lower(self, problem):
        if problem.op == BLOCK_SCALED_MM:
            return xpu_block_scaled_mm
        if problem.a_scale == problem.b_scale == "tensor":
            return xpu_scaled_mm(fp8_gemm_scales_tensorwise)
        return xpu_scaled_mm(fp8_gemm_scales_rowwise)


class XpuFp8GemmW8A16(Candidate):
    """oneDNN weight-only FP8 GEMM (per-tensor, per-channel, square blocks)."""

    name = "xpu_fp8_gemm_w8a16"
    ops = (WEIGHT_ONLY_MM,)
    platforms = "Intel XPU + vllm-xpu-kernels"

    def is_supported(self, device):
        return _xpu_supported(device, "fp8_gemm_w8a16")

    def can_implement(self, problem):
        if problem.a_dtype not in NATIVE_OUT_DTYPES:
            return False, f"fp8_gemm_w8a16 takes fp16/bf16 activations only (x is {problem.a_dtype})"
        if problem.b_scale != "block":
            return True, problem.b_scale
        if problem.group_n != problem.group_k:
            return False, f"fp8_gemm_w8a16 supports square blocks only (got {problem.group_n}x{problem.group_k})"
        return _divisible(problem, K=(problem.k, problem.group_k), N=(problem.n, problem.group_n))

    def lower(self, problem):
        return xpu_weight_only_mm


def _fp8_gemm_fake(A, B, out_dtype, A_scale, B_scale, bias):
    return A.new_empty((*A.shape[:-1], B.shape[-1]), dtype=out_dtype or torch.float16)


def _fp8_gemm_w8a16_fake(A, B, B_scale, bias):
    return A.new_empty((*A.shape[:-1], B.shape[-1]))


@functools.lru_cache(maxsize=None)
def register_fake_kernels() -> None:
    """Give the library's GEMMs fake kernels so torch.compile can trace them (once per process)."""
    for op, fake in (("_xpu_C::fp8_gemm", _fp8_gemm_fake), ("_xpu_C::fp8_gemm_w8a16", _fp8_gemm_w8a16_fake)):
        if torch._C._dispatch_has_kernel_for_dispatch_key(op, "Meta"):
            continue
        try:
            torch.library.register_fake(op)(fake)
        except RuntimeError:
            pass  # a fake is already registered (by the library or a test double)
