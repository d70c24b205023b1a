"""Triton FP8 matmul kernels exposed as ops in the `xpu_quant` namespace.

- `xpu_quant::triton_fp8_weight_only_mm(x, w, w_scale, bias, block_n, block_k)`: W8A16, the fp8
  weight dequantized inside the kernel (per-tensor, per-channel or block scales).
- `xpu_quant::triton_fp8_block_scaled_mm(a, b, scale_a, scale_b, bias, out_dtype, group_n, group_k)`:
  DeepSeek-style W8A8 with 1 x group_k activation groups and group_n x group_k weight blocks.

Importing this package never imports triton; `register_triton_ops()` does, once, and is a no-op
returning False where triton is missing. The ops work eagerly (on CPU tensors under
`TRITON_INTERPRET=1` too); compiled graphs call them as opaque ops (see `ops.register`), except
where `graph_launch` fixes a decode launch in the graph for Inductor to make.
"""

import functools
from typing import Optional

import torch

from .validation import BLOCK_SCALED_OP, WEIGHT_ONLY_OP

__all__ = [
    "BLOCK_SCALED_OP",
    "WEIGHT_ONLY_OP",
    "fp8_block_scaled_mm",
    "fp8_weight_only_mm",
    "register_triton_ops",
    "triton_available",
]


@functools.lru_cache(maxsize=None)
def triton_available() -> bool:
    """True when triton imports."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


_registered: Optional[bool] = None  # None until register_triton_ops() first runs


@torch.compiler.assume_constant_result  # torch.compile runs it for real at trace time, not traced
def register_triton_ops() -> bool:
    """Register both triton ops (idempotent); return False, registering nothing, without triton."""
    global _registered
    if _registered is None:
        if triton_available():
            from . import ops

            ops.register()
        _registered = triton_available()
    return _registered


def _require_ops() -> None:
    # A plain flag read, so that torch.compile traces through it once the ops exist.
    if not (_registered or register_triton_ops()):
        raise RuntimeError("xpu_quant triton ops need triton, which is not importable")


def fp8_weight_only_mm(x: torch.Tensor, w: torch.Tensor, w_scale: torch.Tensor, bias: Optional[torch.Tensor],
                       block_n: int = 0, block_k: int = 0) -> torch.Tensor:
    """x @ (w.float() * scale).T (+ bias) in x.dtype, fp32 accumulation, the fp8 weight read once.

    x: bf16/fp16/fp32 [M, K]; w: float8_e4m3fn/e5m2 [N, K]; w_scale: float32 of numel 1 (per-tensor)
    or [N, 1] (per-channel) with block_n = block_k = 0, or [ceil(N/block_n), ceil(K/block_k)] with
    both block sizes > 0; bias: None or [N] in x.dtype or float32. Raises ValueError on bad inputs.
    """
    _require_ops()
    return torch.ops.xpu_quant.triton_fp8_weight_only_mm(x, w, w_scale, bias, block_n, block_k)


def fp8_block_scaled_mm(a: torch.Tensor, b: torch.Tensor, scale_a: torch.Tensor, scale_b: torch.Tensor,
                        bias: Optional[torch.Tensor], out_dtype: torch.dtype, group_n: int = 128,
                        group_k: int = 128) -> torch.Tensor:
    """sum_g (a_g @ b_g.T) * scale_a[:, g] * scale_b[n // group_n, g] (+ bias) in out_dtype.

    a: fp8 [M, K]; b: fp8 [N, K]; scale_a: float32 [M, ceil(K/group_k)]; scale_b: float32
    [ceil(N/group_n), ceil(K/group_k)]; bias: None or [N] in out_dtype or float32; out_dtype:
    bf16/fp16/fp32; group_k a multiple of 16. Raises ValueError on bad inputs.
    """
    _require_ops()
    return torch.ops.xpu_quant.triton_fp8_block_scaled_mm(a, b, scale_a, scale_b, bias, out_dtype, group_n, group_k)
