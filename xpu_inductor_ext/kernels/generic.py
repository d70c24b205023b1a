"""Candidates that every device has: Inductor-generated dequantize + GEMM, and the decomposition."""

from __future__ import annotations

import torch

from ..formats import expand_block_scale
from ..ops import BLOCK_SCALED_MM, SCALED_MM, WEIGHT_ONLY_MM
from ..ops.fp8_linear import reference_block_scaled_mm, reference_scaled_mm, reference_weight_only_mm
from . import platform
from .registry import LAST_RESORT, Candidate

GENERATED_GEMM_DEVICES = ("cpu", "cuda", "xpu")
"""Devices where Inductor fuses the dequantization into one kernel and a vendor BLAS runs the GEMM."""


def gemm_dtype(problem) -> torch.dtype:
    """The dtype the dequantized GEMM runs in.

    float32 when the output is float32, or on CPUs without bf16 GEMM hardware (where fp32 is
    faster); otherwise bf16, which holds every e4m3/e5m2 value exactly and cannot overflow on
    unscaled products the way fp16 can (448 * 448 * K).
    """
    if problem.out_dtype == torch.float32:
        return torch.float32
    if problem.device == "cpu" and not platform.cpu_fast_bf16():
        return torch.float32
    return torch.bfloat16


def _add_bias(out: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return out if bias is None else out + bias.float()


def widen_fp8(t: torch.Tensor, cdt: torch.dtype) -> torch.Tensor:
    """FP8 values in ``cdt``, exactly, through float32: Inductor's CPU code converts fp8 -> float32
    in vector instructions but fp8 -> bf16 one element at a time (2-7x slower; `cpu_widening` in
    benchmarks/bench_fp8_linear.py)."""
    return t.float().to(cdt)


def dequant_scaled_mm(cdt: torch.dtype):
    """W8A8 as an exact GEMM over the raw FP8 values cast to ``cdt``, scales applied after."""

    def run(a, b, scale_a, scale_b, bias, out_dtype):
        acc = torch.mm(widen_fp8(a, cdt), widen_fp8(b, cdt).t()).float()
        acc = acc * scale_a.float().reshape(-1, 1) * scale_b.float().reshape(1, -1)
        return _add_bias(acc, bias).to(out_dtype)

    return run


def dequant_block_scaled_mm(cdt: torch.dtype):
    """Block W8A8: both operands dequantized block by block to ``cdt`` (fused by Inductor), then a GEMM."""

    def run(a, b, scale_a, scale_b, bias, out_dtype, group_n, group_k):
        m, k = a.shape
        n = b.shape[0]
        a_deq = (a.float() * expand_block_scale(scale_a, m, k, 1, group_k)).to(cdt)
        b_deq = (b.float() * expand_block_scale(scale_b, n, k, group_n, group_k)).to(cdt)
        return _add_bias(torch.mm(a_deq, b_deq.t()).float(), bias).to(out_dtype)

    return run


def dequant_weight_only_mm(cdt: torch.dtype):
    """W8A16: the weight dequantized to ``cdt`` (fused by Inductor), then a GEMM in ``cdt``."""

    def run(x, w, w_scale, bias, block_n=0, block_k=0):
        if block_n:
            scale = expand_block_scale(w_scale, w.shape[0], w.shape[1], block_n, block_k)
        else:
            scale = w_scale.float().reshape(-1, 1)
        w_deq = (w.float() * scale).to(cdt)
        out = torch.nn.functional.linear(x.to(cdt), w_deq, None if bias is None else bias.to(cdt))
        return out.to(x.dtype)

    return run


CPU_GEMV_MAX_M = 4
"""At or below (M known at compile time): the CPU weight-only linear as one fused multiply-reduce.

Inductor then widens each fp8 weight in registers once per activation row and never writes the
dequantized weight, which dequantize-then-GEMM writes and rereads. The margin shrinks with M
because the widening repeats per row: on a 2-core Xeon with AMX-BF16, K = N = 4096, 4.5-5.3x plain
Inductor at M = 1, 1.3-1.4x at M = 4, and slower than the GEMM from M = 8 (the "fused GEMV form"
column of benchmarks/bench_fp8_linear.py; benchmarks/RESULTS.md, 2026-12-01).
"""


def gemv_weight_only_mm(x, w, w_scale, bias, block_n=0, block_k=0):
    """W8A16 as sum_k x[m, k] * widen(w[n, k]) (* scale) in float32, for Inductor to fuse."""
    rows = x.float()[:, None, :]
    if block_n:
        scale = expand_block_scale(w_scale, w.shape[0], w.shape[1], block_n, block_k)
        out = (rows * (w.float() * scale)[None]).sum(-1)
    else:  # one scale per output channel (or one in all): applied after the reduction
        out = (rows * w.float()[None]).sum(-1) * w_scale.float().reshape(1, -1)
    return _add_bias(out, bias).to(x.dtype)


class CpuFusedGemv(Candidate):
    """CPU weight-only linear at small M: dequantization fused into the reduction (no GEMM call)."""

    name = "cpu_fused_gemv"
    ops = (WEIGHT_ONLY_MM,)
    platforms = "CPU"

    def is_supported(self, device):
        if device.type == "cpu":
            return True, "Inductor fuses the fp8 widening into a vectorized reduction on CPU"
        return False, f"device {device.type} is not a CPU (GPUs have the Triton GEMV)"

    def can_implement(self, problem):
        m = problem.m_static
        if m is None:
            return False, f"M is only known at run time ({problem.m}); the fused GEMV pays only at M <= {CPU_GEMV_MAX_M}"
        if m > CPU_GEMV_MAX_M:
            return False, f"M = {m} > {CPU_GEMV_MAX_M}: the fused GEMV widens the weight once per row"
        return True, f"M = {m} <= {CPU_GEMV_MAX_M}"

    def lower(self, problem):
        return gemv_weight_only_mm


class DequantGemm(Candidate):
    """Dequantize in a fused pointwise kernel, GEMM in bf16/fp16/fp32 through the vendor BLAS."""

    name = "dequant_gemm"
    ops = (SCALED_MM, BLOCK_SCALED_MM, WEIGHT_ONLY_MM)
    platforms = "CPU, CUDA, XPU"
    _functions = {SCALED_MM: dequant_scaled_mm, BLOCK_SCALED_MM: dequant_block_scaled_mm,
                  WEIGHT_ONLY_MM: dequant_weight_only_mm}

    def is_supported(self, device):
        if device.type in GENERATED_GEMM_DEVICES:
            return True, f"Inductor generates the dequantization for {device.type}"
        return False, f"no generated GEMM path is known for device '{device.type}'"

    def can_implement(self, problem):
        return True, "any shape"

    def lower(self, problem):
        cdt = gemm_dtype(problem)
        if problem.op == WEIGHT_ONLY_MM and problem.a_dtype != torch.float32 and cdt == torch.bfloat16:
            cdt = problem.a_dtype  # the GEMM runs in the activation's own dtype (fp16 stays fp16)
        return self._functions[problem.op](cdt)


class Decomposition(Candidate):
    """The op's float32 reference, left for Inductor to compile: slow, exact, always available."""

    name = LAST_RESORT
    ops = (SCALED_MM, BLOCK_SCALED_MM, WEIGHT_ONLY_MM)
    platforms = "any"
    _functions = {SCALED_MM: reference_scaled_mm, BLOCK_SCALED_MM: reference_block_scaled_mm,
                  WEIGHT_ONLY_MM: reference_weight_only_mm}

    def is_supported(self, device):
        return True, "plain PyTorch"

    def can_implement(self, problem):
        return True, "any shape"

    def lower(self, problem):
        return self._functions[problem.op]
