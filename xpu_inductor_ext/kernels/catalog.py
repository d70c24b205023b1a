"""The candidate order of every fused op: native first, Triton next, generated, decomposition last."""

from __future__ import annotations

from .generic import CpuFusedGemv, Decomposition, DequantGemm
from .registry import register
from .scaled_mm import CpuOnednnFp8, CudaScaledMm
from .triton import TritonFp8BlockScaledMm, TritonFp8WeightOnly
from .xpu import XpuFp8Gemm, XpuFp8GemmW8A16

ORDER = (
    XpuFp8Gemm(),
    XpuFp8GemmW8A16(),
    CudaScaledMm(),
    CpuOnednnFp8(),
    TritonFp8BlockScaledMm(),
    TritonFp8WeightOnly(),
    CpuFusedGemv(),
    DequantGemm(),
    Decomposition(),
)

for _candidate in ORDER:
    register(_candidate)
