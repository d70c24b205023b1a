"""The FP8 linear ops: W8A8 scaled matmul (tensor/row scales), block-scaled W8A8, weight-only.

Each op is a ``torch.library.custom_op`` in the ``xpu_quant`` namespace with a validating fake
implementation (so bad inputs fail at compile time with a clear message) and a reference
implementation in float32 that is the oracle for every kernel. Weights use the ``nn.Linear``
layout ``[N, K]``; activations are ``[M, K]``; outputs ``[M, N]``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..formats import ACTIVATION_DTYPES, FP8_DTYPES, block_count, expand_block_scale
from .checks import check_bias, check_dtype, check_rank, check_same_device, describe, fail
from .symbolic import differs, numel_is_one

SCALED_MM = "xpu_quant::fp8_scaled_mm"
BLOCK_SCALED_MM = "xpu_quant::fp8_block_scaled_mm"
WEIGHT_ONLY_MM = "xpu_quant::fp8_weight_only_mm"
SCALE_DTYPES = (torch.float32,)


def _check_operands(op: str, a: Tensor, b: Tensor, a_name: str, a_dtypes) -> None:
    check_dtype(op, a_name, a, a_dtypes)
    check_dtype(op, "b" if a_name == "a" else "w", b, FP8_DTYPES)
    check_rank(op, a_name, a, 2)
    check_rank(op, "b" if a_name == "a" else "w", b, 2)
    if differs(a.shape[1], b.shape[1]):
        fail(op, "b" if a_name == "a" else "w", f"must be [N, K] with K = {a_name}.shape[1] = {a.shape[1]}",
             describe(b))


def _check_row_scale(op: str, arg: str, scale: Tensor, rows, rows_name: str) -> None:
    """A tensor-or-row scale: one value, or ``[rows, 1]``."""
    check_dtype(op, arg, scale, SCALE_DTYPES)
    if numel_is_one(scale.shape):
        return
    if scale.dim() != 2 or differs(scale.shape[0], rows) or differs(scale.shape[1], 1):
        fail(op, arg, f"must hold one value (per-tensor) or have shape [{rows_name}, 1] = [{rows}, 1]",
             describe(scale))


def _check_block_scale(op: str, arg: str, scale: Tensor, rows, cols, block_rows: int, block_cols: int) -> None:
    check_dtype(op, arg, scale, SCALE_DTYPES)
    expected = [block_count(rows, block_rows), block_count(cols, block_cols)]
    if scale.dim() != 2 or differs(scale.shape[0], expected[0]) or differs(scale.shape[1], expected[1]):
        fail(op, arg, f"must have block shape [ceil({rows}/{block_rows}), ceil({cols}/{block_cols})] = {expected}",
             describe(scale))


def _check_out_dtype(op: str, out_dtype: torch.dtype) -> None:
    if out_dtype not in ACTIVATION_DTYPES:
        fail(op, "out_dtype", f"must be one of {ACTIVATION_DTYPES}", out_dtype)


def _check_block_sizes(op: str, **sizes: int) -> None:
    for name, size in sizes.items():
        if size <= 0:
            fail(op, name, "must be a positive block size", size)


def validate_scaled_mm(a, b, scale_a, scale_b, bias, out_dtype, op: str = SCALED_MM) -> None:
    """Raise OpInputError unless the inputs are valid for ``xpu_quant::fp8_scaled_mm`` (or ``op``)."""
    _check_operands(op, a, b, "a", FP8_DTYPES)
    _check_row_scale(op, "scale_a", scale_a, a.shape[0], "M")
    _check_row_scale(op, "scale_b", scale_b, b.shape[0], "N")
    _check_out_dtype(op, out_dtype)
    check_bias(op, bias, b.shape[0], (out_dtype, torch.float32))
    check_same_device(op, {"a": a, "b": b, "scale_a": scale_a, "scale_b": scale_b, "bias": bias})


def validate_block_scaled_mm(a, b, scale_a, scale_b, bias, out_dtype, group_n, group_k,
                             op: str = BLOCK_SCALED_MM) -> None:
    """Raise OpInputError unless the inputs are valid for ``xpu_quant::fp8_block_scaled_mm`` (or ``op``)."""
    _check_block_sizes(op, group_n=group_n, group_k=group_k)
    _check_operands(op, a, b, "a", FP8_DTYPES)
    _check_block_scale(op, "scale_a", scale_a, a.shape[0], a.shape[1], 1, group_k)
    _check_block_scale(op, "scale_b", scale_b, b.shape[0], b.shape[1], group_n, group_k)
    _check_out_dtype(op, out_dtype)
    check_bias(op, bias, b.shape[0], (out_dtype, torch.float32))
    check_same_device(op, {"a": a, "b": b, "scale_a": scale_a, "scale_b": scale_b, "bias": bias})


def validate_weight_only_mm(x, w, w_scale, bias, block_n, block_k, op: str = WEIGHT_ONLY_MM) -> None:
    """Raise OpInputError unless the inputs are valid for ``xpu_quant::fp8_weight_only_mm`` (or ``op``)."""
    _check_operands(op, x, w, "x", ACTIVATION_DTYPES)
    if block_n == 0 and block_k == 0:
        _check_row_scale(op, "w_scale", w_scale, w.shape[0], "N")
    else:
        _check_block_sizes(op, block_n=block_n, block_k=block_k)
        _check_block_scale(op, "w_scale", w_scale, w.shape[0], w.shape[1], block_n, block_k)
    check_bias(op, bias, w.shape[0], (x.dtype, torch.float32))
    check_same_device(op, {"x": x, "w": w, "w_scale": w_scale, "bias": bias})


def _finish(acc: Tensor, bias: Tensor | None, out_dtype: torch.dtype) -> Tensor:
    if bias is not None:
        acc = acc + bias.float()
    return acc.to(out_dtype)


def reference_scaled_mm(a, b, scale_a, scale_b, bias, out_dtype) -> Tensor:
    """Float32 oracle: ``(a @ b.T) * scale_a * scale_b.T + bias``."""
    acc = a.float() @ b.float().t()
    acc = acc * scale_a.float().reshape(-1, 1) * scale_b.float().reshape(1, -1)
    return _finish(acc, bias, out_dtype)


def reference_block_scaled_mm(a, b, scale_a, scale_b, bias, out_dtype, group_n, group_k) -> Tensor:
    """Float32 oracle: dequantize both operands block by block, then matmul."""
    m, k = a.shape
    n = b.shape[0]
    a_deq = a.float() * expand_block_scale(scale_a, m, k, 1, group_k)
    b_deq = b.float() * expand_block_scale(scale_b, n, k, group_n, group_k)
    return _finish(a_deq @ b_deq.t(), bias, out_dtype)


def reference_weight_only_mm(x, w, w_scale, bias, block_n, block_k) -> Tensor:
    """Float32 oracle: dequantize the weight, then ``x @ w.T + bias`` in x's dtype."""
    if block_n == 0:
        w_deq = w.float() * w_scale.float().reshape(-1, 1)
    else:
        w_deq = w.float() * expand_block_scale(w_scale, w.shape[0], w.shape[1], block_n, block_k)
    return _finish(x.float() @ w_deq.t(), bias, x.dtype)


@torch.library.custom_op(SCALED_MM, mutates_args=())
def fp8_scaled_mm(a: Tensor, b: Tensor, scale_a: Tensor, scale_b: Tensor, bias: Tensor | None,
                  out_dtype: torch.dtype) -> Tensor:
    """FP8 W8A8 matmul with per-tensor or per-token (a) and per-tensor or per-channel (b) scales."""
    validate_scaled_mm(a, b, scale_a, scale_b, bias, out_dtype)
    return reference_scaled_mm(a, b, scale_a, scale_b, bias, out_dtype)


@fp8_scaled_mm.register_fake
def _(a, b, scale_a, scale_b, bias, out_dtype):
    validate_scaled_mm(a, b, scale_a, scale_b, bias, out_dtype)
    return a.new_empty((a.shape[0], b.shape[0]), dtype=out_dtype)


@torch.library.custom_op(BLOCK_SCALED_MM, mutates_args=())
def fp8_block_scaled_mm(a: Tensor, b: Tensor, scale_a: Tensor, scale_b: Tensor, bias: Tensor | None,
                        out_dtype: torch.dtype, group_n: int, group_k: int) -> Tensor:
    """FP8 W8A8 matmul with 1 x group_k activation groups and group_n x group_k weight blocks."""
    validate_block_scaled_mm(a, b, scale_a, scale_b, bias, out_dtype, group_n, group_k)
    return reference_block_scaled_mm(a, b, scale_a, scale_b, bias, out_dtype, group_n, group_k)


@fp8_block_scaled_mm.register_fake
def _(a, b, scale_a, scale_b, bias, out_dtype, group_n, group_k):
    validate_block_scaled_mm(a, b, scale_a, scale_b, bias, out_dtype, group_n, group_k)
    return a.new_empty((a.shape[0], b.shape[0]), dtype=out_dtype)


@torch.library.custom_op(WEIGHT_ONLY_MM, mutates_args=())
def fp8_weight_only_mm(x: Tensor, w: Tensor, w_scale: Tensor, bias: Tensor | None,
                       block_n: int = 0, block_k: int = 0) -> Tensor:
    """FP8 weight, high-precision activation matmul (W8A16); block scales when block_n/block_k > 0."""
    validate_weight_only_mm(x, w, w_scale, bias, block_n, block_k)
    return reference_weight_only_mm(x, w, w_scale, bias, block_n, block_k)


@fp8_weight_only_mm.register_fake
def _(x, w, w_scale, bias, block_n=0, block_k=0):
    validate_weight_only_mm(x, w, w_scale, bias, block_n, block_k)
    return x.new_empty((x.shape[0], w.shape[0]))
