"""The fused ops against float64 references, and their input validation."""

import pytest
import torch

from conftest import fp8_weight, rel_err
from xpu_inductor_ext import OpInputError
from xpu_inductor_ext.formats import quantize_per_row

ops = torch.ops.xpu_quant
E4M3 = torch.float8_e4m3fn


def manual_scaled_mm(a, b, sa, sb, bias):
    out = (a.double() * sa.double().reshape(-1, 1)) @ (b.double() * sb.double().reshape(-1, 1)).t()
    return out if bias is None else out + bias.double()


@pytest.mark.parametrize("out_dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("a_scale,b_scale", [("tensor", "tensor"), ("channel", "channel"), ("tensor", "channel")])
@pytest.mark.parametrize("with_bias", [False, True])
def test_scaled_mm_matches_float64(out_dtype, a_scale, b_scale, with_bias):
    a, sa = fp8_weight(12, 96, a_scale, std=1.0)
    b, sb = fp8_weight(40, 96, b_scale)
    bias = torch.randn(40).to(out_dtype) if with_bias else None
    out = ops.fp8_scaled_mm(a, b, sa, sb, bias, out_dtype)
    assert out.dtype == out_dtype and out.shape == (12, 40)
    tol = 1e-6 if out_dtype == torch.float32 else 1e-2
    assert rel_err(out, manual_scaled_mm(a, b, sa, sb, bias)) < tol


@pytest.mark.parametrize("x_dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("w_dtype", [torch.float8_e4m3fn, torch.float8_e5m2])
def test_weight_only_mm_matches_float64(x_dtype, w_dtype):
    x = torch.randn(5, 64).to(x_dtype)
    w, s = fp8_weight(24, 64, dtype=w_dtype)
    bias = torch.randn(24).to(x_dtype)
    out = ops.fp8_weight_only_mm(x, w, s, bias)
    ref = x.double() @ (w.double() * s.double()).t() + bias.double()
    assert out.dtype == x_dtype
    assert rel_err(out, ref) < (1e-6 if x_dtype == torch.float32 else 1e-2)


def test_block_scaled_mm_matches_float64_on_ragged_shapes():
    m, n, k, g = 6, 200, 328, 128
    a = torch.randn(m, k)
    b = torch.randn(n, k) * 0.05
    sa = torch.rand(m, 3) + 0.5
    sb = torch.rand(2, 3) * 0.01 + 0.001
    a8, b8 = (a / 2).to(E4M3), (b * 20).to(E4M3)
    out = ops.fp8_block_scaled_mm(a8, b8, sa, sb, None, torch.float32, g, g)
    full_a = sa.repeat_interleave(g, 1)[:, :k]
    full_b = sb.repeat_interleave(g, 0).repeat_interleave(g, 1)[:n, :k]
    ref = (a8.double() * full_a.double()) @ (b8.double() * full_b.double()).t()
    assert rel_err(out, ref) < 1e-6


def _args():
    a, sa = quantize_per_row(torch.randn(4, 32))
    b, sb = quantize_per_row(torch.randn(16, 32))
    return a, b, sa, sb


@pytest.mark.parametrize("mutate,arg,rule", [
    (lambda a, b, sa, sb: (a.float(), b, sa, sb), "'a'", "dtype in"),
    (lambda a, b, sa, sb: (a.unsqueeze(0), b, sa, sb), "'a'", "must be 2-D"),
    (lambda a, b, sa, sb: (a, b[:, :16], sa, sb), "'b'", r"K = a.shape\[1\] = 32"),
    (lambda a, b, sa, sb: (a, b, sa[:2], sb), "'scale_a'", r"\[M, 1\] = \[4, 1\]"),
    (lambda a, b, sa, sb: (a, b, sa, sb.reshape(1, 16)), "'scale_b'", r"\[N, 1\] = \[16, 1\]"),
    (lambda a, b, sa, sb: (a, b, sa.double(), sb), "'scale_a'", "float32"),
])
def test_scaled_mm_rejects_bad_inputs_naming_op_argument_rule(mutate, arg, rule):
    a, b, sa, sb = mutate(*_args())
    with pytest.raises(OpInputError, match=rf"xpu_quant::fp8_scaled_mm: argument {arg}.*{rule}"):
        ops.fp8_scaled_mm(a, b, sa, sb, None, torch.bfloat16)


def test_scaled_mm_rejects_bad_bias_and_out_dtype():
    a, b, sa, sb = _args()
    with pytest.raises(OpInputError, match=r"argument 'bias' must be None or of shape \[N\] = \[16\]"):
        ops.fp8_scaled_mm(a, b, sa, sb, torch.randn(8).bfloat16(), torch.bfloat16)
    with pytest.raises(OpInputError, match="argument 'out_dtype'"):
        ops.fp8_scaled_mm(a, b, sa, sb, None, torch.int32)


def test_weight_only_rejects_block_scale_of_wrong_shape():
    w, _ = fp8_weight(256, 256)
    with pytest.raises(OpInputError, match=r"fp8_weight_only_mm: argument 'w_scale' must have block shape "
                                           r"\[ceil\(256/128\), ceil\(256/128\)\] = \[2, 2\]"):
        ops.fp8_weight_only_mm(torch.randn(2, 256), w, torch.rand(2, 1), None, 128, 128)


def test_block_scaled_mm_rejects_nonpositive_group():
    a, b, _, _ = _args()
    with pytest.raises(OpInputError, match="argument 'group_k' must be a positive block size"):
        ops.fp8_block_scaled_mm(a, b, torch.rand(4, 1), torch.rand(1, 1), None, torch.bfloat16, 128, 0)


def test_validation_also_runs_at_compile_time():
    a, b, sa, sb = _args()
    bad = torch.compile(lambda a, b, sa, sb: ops.fp8_scaled_mm(a, b, sa, sb[:8], None, torch.bfloat16),
                        backend="xpu_quant", fullgraph=True)
    torch._dynamo.reset()
    with pytest.raises(Exception, match="argument 'scale_b'"):
        bad(a, b, sa, sb)
