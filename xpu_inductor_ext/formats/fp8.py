"""FP8 (OCP e4m3fn / e5m2) formats: limits, scale rules and reference (de)quantization.

Every other layer takes its FP8 facts from here: the largest finite values, which dtypes count
as FP8, how a scale is derived from an absolute maximum, and what a scale of each granularity
looks like. The functions are plain PyTorch so that compiled graphs built from them are the
spellings the patterns recognise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.fx.experimental.symbolic_shapes import guard_or_false

FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)
"""The FP8 storage dtypes the fused ops accept (weights and activations alike)."""

ACTIVATION_DTYPES = (torch.bfloat16, torch.float16, torch.float32)
"""High-precision dtypes of activations and outputs."""

FP8_MAX = {torch.float8_e4m3fn: 448.0, torch.float8_e5m2: 57344.0}
"""Largest finite magnitude of each FP8 dtype."""

@dataclass(frozen=True)
class Fp8Layout:
    """The bit fields of an FP8 format: 1 sign bit, then exponent and mantissa bits."""

    exponent_bits: int
    mantissa_bits: int
    bias: int
    non_finite_bits: int
    """Bits that are all ones in every NaN and infinity code of the format, and in no finite code."""


FP8_LAYOUT = {
    torch.float8_e4m3fn: Fp8Layout(exponent_bits=4, mantissa_bits=3, bias=7, non_finite_bits=0x7F),  # NaN only
    torch.float8_e5m2: Fp8Layout(exponent_bits=5, mantissa_bits=2, bias=15, non_finite_bits=0x7C),  # inf, NaN
}

AMAX_EPS = 1e-12
"""Floor applied to an absolute maximum before it becomes a scale (keeps all-zero rows finite)."""


def fp8_max(dtype: torch.dtype) -> float:
    """Largest finite value of FP8 ``dtype``; raises for non-FP8 dtypes."""
    if dtype not in FP8_MAX:
        raise ValueError(f"{dtype} is not an FP8 dtype; expected one of {FP8_DTYPES}")
    return FP8_MAX[dtype]


def scale_from_amax(amax: torch.Tensor, dtype: torch.dtype = torch.float8_e4m3fn) -> torch.Tensor:
    """Float32 scale that maps ``amax`` onto the largest finite value of ``dtype``."""
    return amax.float().clamp(min=AMAX_EPS) / fp8_max(dtype)


def quantize(x: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = torch.float8_e4m3fn) -> torch.Tensor:
    """``x / scale`` saturated to the finite range of ``dtype`` and rounded to it.

    ``scale`` broadcasts against ``x`` (0-d per-tensor, ``[M, 1]`` per-token, ``[N, 1]`` per-channel).
    """
    limit = fp8_max(dtype)
    return (x.float() / scale.float()).clamp(-limit, limit).to(dtype)


def dequantize(q: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``q * scale`` in float32, cast to ``dtype``."""
    return (q.float() * scale.float()).to(dtype)


def quantize_per_tensor(x: torch.Tensor, dtype: torch.dtype = torch.float8_e4m3fn):
    """Per-tensor quantization: returns ``(q, scale)`` with a 0-d float32 scale."""
    scale = scale_from_amax(x.abs().amax(), dtype)
    return quantize(x, scale, dtype), scale


def quantize_per_row(x: torch.Tensor, dtype: torch.dtype = torch.float8_e4m3fn):
    """One scale per row (per-token for activations, per-output-channel for ``[N, K]`` weights).

    Returns ``(q, scale)`` with scale float32 of shape ``x.shape[:-1] + (1,)``.
    """
    scale = scale_from_amax(x.abs().amax(dim=-1, keepdim=True), dtype)
    return quantize(x, scale, dtype), scale


def scale_axis(scale_shape, rows, cols) -> str | None:
    """Classify a scale broadcast against a ``[rows, cols]`` tensor.

    Returns ``"tensor"`` (one value), ``"row"`` (one value per row: ``[rows, 1]``), ``"col"``
    (one value per column: ``[cols]`` or ``[1, cols]``), or ``None`` for anything else.
    ``rows``/``cols`` may be symbolic: only sizes that are certainly 1 count as not varying.
    """
    shape = list(scale_shape)
    if len(shape) > 2:
        return None
    r, c = [1] * (2 - len(shape)) + shape
    r_one, c_one = guard_or_false(r == 1), guard_or_false(c == 1)
    if r_one and c_one:
        return "tensor"
    if c_one and guard_or_false(r == rows):
        return "row"
    if r_one and guard_or_false(c == cols):
        return "col"
    return None


def block_count(size, block: int):
    """Number of ``block``-sized groups covering ``size`` elements (the last may be partial)."""
    return -(-size // block)


def expand_block_scale(scale: torch.Tensor, rows, cols, block_rows: int, block_cols: int) -> torch.Tensor:
    """Expand a ``[ceil(rows/br), ceil(cols/bc)]`` block scale to a full ``[rows, cols]`` float32 map."""
    full = scale.float().repeat_interleave(block_rows, 0).repeat_interleave(block_cols, 1)
    return full[:rows, :cols]


DEFAULT_BLOCK = 128
"""DeepSeek-V3 / Qwen3-FP8 block size: 1x128 activation groups, 128x128 weight blocks."""


def pow2_ceil(scale: torch.Tensor) -> torch.Tensor:
    """Round a positive scale up to a power of two (UE8M0 scales, as DeepGEMM/MX use)."""
    return torch.exp2(torch.ceil(torch.log2(scale)))


def quantize_per_group(x: torch.Tensor, group: int = DEFAULT_BLOCK, dtype: torch.dtype = torch.float8_e4m3fn,
                       pow2_scale: bool = False):
    """One scale per ``1 x group`` run along the last dim (per-token-group activation quantization).

    Returns ``(q, scale)`` grouped: q ``[..., K/group, group]``, scale float32 ``[..., K/group, 1]``;
    :func:`dequantize_groups` flattens back. K must be a multiple of ``group``.
    """
    if x.shape[-1] % group:
        raise ValueError(f"quantize_per_group: last dim {x.shape[-1]} is not a multiple of group {group}")
    grouped = x.float().reshape(*x.shape[:-1], x.shape[-1] // group, group)
    scale = scale_from_amax(grouped.abs().amax(dim=-1, keepdim=True), dtype)
    if pow2_scale:
        scale = pow2_ceil(scale)
    return quantize(grouped, scale, dtype), scale


def dequantize_groups(q: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Inverse of :func:`quantize_per_group`: ``[..., K/group, group]`` back to ``[..., K]`` in ``dtype``."""
    return (q.float() * scale).reshape(*q.shape[:-2], q.shape[-2] * q.shape[-1]).to(dtype)


def quantize_per_block(w: torch.Tensor, block: int = DEFAULT_BLOCK, dtype: torch.dtype = torch.float8_e4m3fn,
                       pow2_scale: bool = False):
    """One scale per ``block x block`` tile of a 2-D weight (ragged edges allowed).

    Returns ``(q [R, C], scale [ceil(R/block), ceil(C/block)])`` — the checkpoint layout of
    ``weight`` / ``weight_scale_inv``.
    """
    rows, cols = w.shape
    br, bc = block_count(rows, block), block_count(cols, block)
    padded = torch.zeros(br * block, bc * block, dtype=torch.float32, device=w.device)
    padded[:rows, :cols] = w.float()
    amax = padded.reshape(br, block, bc, block).abs().amax(dim=(1, 3))
    scale = scale_from_amax(amax, dtype)
    if pow2_scale:
        scale = pow2_ceil(scale)
    return quantize(w, expand_block_scale(scale, rows, cols, block, block), dtype), scale


def dequantize_blocks(q: torch.Tensor, scale: torch.Tensor, block: int, dtype: torch.dtype) -> torch.Tensor:
    """Inverse of :func:`quantize_per_block` in ``dtype``."""
    rows, cols = q.shape
    return (q.float() * expand_block_scale(scale, rows, cols, block, block)).to(dtype)
