"""The problem a fused node poses to kernel selection: shapes, dtypes, scale kinds, device."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from ..formats import scale_axis
from ..ops import BLOCK_SCALED_MM, SCALED_MM, WEIGHT_ONLY_MM
from ..ops.fp8_linear import fp8_block_scaled_mm, fp8_scaled_mm, fp8_weight_only_mm

OP_FUNCTIONS = {
    SCALED_MM: fp8_scaled_mm,
    BLOCK_SCALED_MM: fp8_block_scaled_mm,
    WEIGHT_ONLY_MM: fp8_weight_only_mm,
}
"""Each fused op's Python entry point, whose signature names its arguments."""


@dataclass(frozen=True)
class LinearProblem:
    """One fused FP8 linear: ``out[M, N] = A[M, K] @ B[N, K].T`` with scales and optional bias.

    ``a_scale`` is None for weight-only ops (A is high precision). Scale kinds are
    ``"tensor"``, ``"row"`` (per-token for A, per-channel for B) or ``"block"``.
    ``m`` may be symbolic (a string such as ``"s0"`` when the token dimension is dynamic).
    """

    op: str
    device: str
    m: int | str
    n: int
    k: int
    a_dtype: torch.dtype
    b_dtype: torch.dtype
    out_dtype: torch.dtype
    a_scale: str | None
    b_scale: str
    group_n: int = 0
    group_k: int = 0
    bias_dtype: torch.dtype | None = None

    @property
    def m_static(self) -> int | None:
        """M when known at compile time, else None."""
        return self.m if isinstance(self.m, int) else None

    def describe(self) -> dict:
        """JSON-friendly view for reports."""
        return {k: (str(v).replace("torch.", "") if isinstance(v, torch.dtype) else v)
                for k, v in asdict(self).items()}


def _size(s) -> int | str:
    return int(s) if isinstance(s, int) or (hasattr(s, "node") and s.node.is_constant()) else str(s)


def _kind(scale: torch.Tensor, rows) -> str:
    return "tensor" if scale_axis(scale.shape, rows, 1) == "tensor" else "row"


def linear_problem(op: str, args: dict) -> LinearProblem:
    """Build the problem from a fused op's arguments (real or fake tensors), keyed by name."""
    if op == WEIGHT_ONLY_MM:
        a, b, bias = args["x"], args["w"], args["bias"]
        block = args.get("block_n", 0) > 0
        out_dtype = a.dtype
        a_scale = None
        b_scale = "block" if block else _kind(args["w_scale"], b.shape[0])
        group_n, group_k = args.get("block_n", 0), args.get("block_k", 0)
    else:
        a, b, bias, out_dtype = args["a"], args["b"], args["bias"], args["out_dtype"]
        if op == BLOCK_SCALED_MM:
            a_scale = b_scale = "block"
            group_n, group_k = args["group_n"], args["group_k"]
        else:
            a_scale, b_scale = _kind(args["scale_a"], a.shape[0]), _kind(args["scale_b"], b.shape[0])
            group_n = group_k = 0
    return LinearProblem(
        op=op, device=a.device.type, m=_size(a.shape[0]), n=_size(b.shape[0]), k=_size(b.shape[1]),
        a_dtype=a.dtype, b_dtype=b.dtype, out_dtype=out_dtype, a_scale=a_scale, b_scale=b_scale,
        group_n=group_n, group_k=group_k, bias_dtype=None if bias is None else bias.dtype)
