"""FP8 formats: limits, scale rules, round trips, scale classification."""

import pytest
import torch

from conftest import rel_err
from xpu_inductor_ext import formats


@pytest.mark.parametrize("dtype", formats.FP8_DTYPES)
def test_per_row_round_trip_error_is_of_fp8_order(dtype):
    x = torch.randn(64, 256) * 3
    q, s = formats.quantize_per_row(x, dtype)
    assert q.dtype == dtype and s.shape == (64, 1) and s.dtype == torch.float32
    err = rel_err(formats.dequantize(q, s), x)
    mantissa_bits = 3 if dtype == torch.float8_e4m3fn else 2
    assert 0 < err < 2.0 ** -mantissa_bits


def test_row_scale_maps_row_amax_to_fp8_max():
    x = torch.randn(8, 32)
    q, s = formats.quantize_per_row(x)
    assert torch.allclose(s.squeeze(1), x.abs().amax(1) / 448.0)
    assert torch.equal(q.float().abs().amax(1), torch.full((8,), 448.0))


def test_quantize_saturates_instead_of_overflowing():
    x = torch.tensor([1000.0, -1000.0, 1.0])
    q = formats.quantize(x, torch.tensor(1.0))
    assert q.float().tolist() == [448.0, -448.0, 1.0]


def test_per_tensor_scale_is_0d():
    q, s = formats.quantize_per_tensor(torch.randn(16, 16))
    assert s.dim() == 0


def test_zero_row_gets_finite_scale():
    q, s = formats.quantize_per_row(torch.zeros(2, 8))
    assert torch.isfinite(s).all() and (q.float() == 0).all()


@pytest.mark.parametrize("shape,expected", [
    ((), "tensor"), ((1,), "tensor"), ((1, 1), "tensor"), ((6, 1), "row"),
    ((4,), "col"), ((1, 4), "col"), ((6, 4), None), ((1, 6, 1), None), ((3, 1), None),
])
def test_scale_axis(shape, expected):
    assert formats.scale_axis(shape, 6, 4) == expected


def test_expand_block_scale_handles_ragged_edges():
    s = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    full = formats.expand_block_scale(s, 5, 7, 3, 3)
    assert full.shape == (5, 7)
    assert full[4, 6] == s[1, 2] and full[2, 2] == s[0, 0] and full[3, 3] == s[1, 1]


def test_fp8_max_rejects_other_dtypes():
    with pytest.raises(ValueError, match="not an FP8 dtype"):
        formats.fp8_max(torch.bfloat16)


@pytest.mark.parametrize("pow2", [False, True])
def test_per_block_quantization_handles_ragged_edges(pow2):
    w = torch.randn(200, 328)
    q, s = formats.quantize_per_block(w, 128, pow2_scale=pow2)
    assert q.shape == (200, 328) and s.shape == (2, 3)
    assert torch.allclose(s[1, 2], w[128:, 256:].abs().amax() / 448) or pow2
    if pow2:
        assert torch.equal(s, torch.exp2(torch.log2(s).round()))
    assert 0 < rel_err(formats.dequantize_blocks(q, s, 128, torch.float32), w) < 2 ** -3


def test_per_group_quantization_round_trip():
    x = torch.randn(3, 5, 256) * 4
    q, s = formats.quantize_per_group(x, 128)
    assert q.shape == (3, 5, 2, 128) and s.shape == (3, 5, 2, 1)
    assert 0 < rel_err(formats.dequantize_groups(q, s, torch.float32), x) < 2 ** -3
    with pytest.raises(ValueError, match="not a multiple of group 128"):
        formats.quantize_per_group(torch.randn(2, 200), 128)


@pytest.mark.parametrize("dtype", formats.FP8_DTYPES)
def test_fp8_layout_matches_torch(dtype):
    """The bit fields the Triton widening and the NaN/inf weight check are built from."""
    layout = formats.FP8_LAYOUT[dtype]
    codes = torch.arange(256, dtype=torch.int32).to(torch.uint8)
    values = codes.view(dtype).float()
    assert 1 + layout.exponent_bits + layout.mantissa_bits == 8
    smallest_normal = 1 << layout.mantissa_bits  # exponent field 1, mantissa 0
    assert values[smallest_normal] == 2.0 ** (1 - layout.bias) == torch.finfo(dtype).tiny
    non_finite = (codes & layout.non_finite_bits) == layout.non_finite_bits
    assert torch.equal(non_finite, ~torch.isfinite(values))
