"""Triton candidates: the FP8 GEMMs of :mod:`.triton_fp8` on GPUs (CUDA today, XPU through Intel's Triton).

They run where a GPU and Triton are present; on the CPU Triton only interprets (tests call the
kernels directly under ``TRITON_INTERPRET=1``), so the CPU is refused with that reason.
"""

from __future__ import annotations

import functools

import torch

from ..ops import BLOCK_SCALED_MM, WEIGHT_ONLY_MM
from .registry import Candidate
from .triton_fp8 import register_triton_ops, triton_available
from .triton_fp8.validation import MIN_GROUP_K_MULTIPLE as TL_DOT_MIN_K

TRITON_DEVICES = ("cuda", "xpu")


def triton_weight_only_mm(x, w, w_scale, bias, block_n=0, block_k=0):
    """``xpu_quant::triton_fp8_weight_only_mm``: the FP8 weight dequantized inside the kernel."""
    return torch.ops.xpu_quant.triton_fp8_weight_only_mm(x, w, w_scale, bias, block_n, block_k)


def triton_block_scaled_mm(a, b, scale_a, scale_b, bias, out_dtype, group_n, group_k):
    """``xpu_quant::triton_fp8_block_scaled_mm``: FP8 tensor-core GEMM with per-group scaling."""
    return torch.ops.xpu_quant.triton_fp8_block_scaled_mm(a, b, scale_a, scale_b, bias, out_dtype,
                                                          group_n, group_k)


class _TritonCandidate(Candidate):
    platforms = "CUDA, XPU (Triton)"
    fixes_launches = True

    def is_supported(self, device):
        if device.type not in TRITON_DEVICES:
            return False, f"Triton kernels need a GPU (device {device.type}; the CPU only interprets them)"
        if not triton_available():
            return False, "triton is not importable"
        register_triton_ops()
        return True, "Triton available"


class TritonFp8WeightOnly(_TritonCandidate):
    """W8A16 GEMM/GEMV that reads 1 byte per weight (split-K at small M)."""

    name = "triton_fp8_weight_only"
    ops = (WEIGHT_ONLY_MM,)

    def can_implement(self, problem):
        if problem.b_scale == "block" and problem.group_k % TL_DOT_MIN_K:
            return False, f"block_k = {problem.group_k} is not a multiple of {TL_DOT_MIN_K} (tl.dot tile)"
        return True, "any shape (masked edges)"

    def lower(self, problem):
        return triton_weight_only_mm

    def lower_fixed(self, args):
        from .triton_fp8 import graph_launch

        launch, why = graph_launch.fixed_weight_only_launch(
            args["x"], args["w"], args["w_scale"], args["bias"], args["block_n"], args["block_k"])
        return (functools.partial(graph_launch.weight_only_in_graph, launch) if launch is not None else None), why


class TritonFp8BlockScaledMm(_TritonCandidate):
    """Block-scaled W8A8 GEMM on FP8 tensor cores."""

    name = "triton_fp8_block_scaled_mm"
    ops = (BLOCK_SCALED_MM,)

    def can_implement(self, problem):
        if problem.group_k % TL_DOT_MIN_K:
            return False, f"group_k = {problem.group_k} is not a multiple of {TL_DOT_MIN_K} (tl.dot tile)"
        return True, "any N, K (masked edges)"

    def lower(self, problem):
        return triton_block_scaled_mm

    def lower_fixed(self, args):
        from .triton_fp8 import graph_launch

        launch, why = graph_launch.fixed_block_scaled_launch(
            args["a"], args["b"], args["scale_a"], args["scale_b"], args["bias"], args["out_dtype"],
            args["group_n"], args["group_k"])
        return (functools.partial(graph_launch.block_scaled_in_graph, launch) if launch is not None else None), why
