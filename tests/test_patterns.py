"""Every FP8-linear spelling is fused (count, op, numerics); near misses are left untouched."""

import pytest
import torch
import torch.nn.functional as F

from conftest import fp8_weight, rel_err
from xpu_inductor_ext.formats import quantize, quantize_per_row

N, K = 48, 64
BF16, FP16, FP32 = torch.bfloat16, torch.float16, torch.float32
TOL = {BF16: 2e-2, FP16: 5e-3, FP32: 1e-5}


def scale_like(s, shape, dtype):
    return s.reshape(shape).to(dtype)


# name -> (fn(x, w, s, bias), scale shape, scale dtype (None: x dtype), uses bias)
WEIGHT_ONLY_SPELLINGS = {
    "linear_bias": (lambda x, w, s, b: F.linear(x, w.to(x.dtype) * s, b), (N, 1), None, True),
    "linear_0d_fp32_scale": (lambda x, w, s, b: F.linear(x, w.to(x.dtype) * s), (), FP32, False),
    "matmul_at_t_1elem_scale": (lambda x, w, s, b: x @ (w.to(x.dtype) * s).t(), (1,), None, False),
    "torch_matmul_float_cast": (lambda x, w, s, b: torch.matmul(x, (w.float() * s).to(x.dtype).t()), (N, 1), FP32,
                                False),
    "linear_float_dequant_bias": (lambda x, w, s, b: F.linear(x, (w.float() * s).to(x.dtype), b), (N, 1), FP32,
                                  True),
    "scale_first": (lambda x, w, s, b: x @ (s * w.to(x.dtype)).t() + 0, (N, 1), None, False),
}


@pytest.mark.parametrize("spelling", WEIGHT_ONLY_SPELLINGS)
@pytest.mark.parametrize("x_shape", [(5, K), (2, 3, K)], ids=["2d", "3d"])
@pytest.mark.parametrize("dtype", [BF16, FP16, FP32])
def test_weight_only_spellings_fuse(compile_quant, spelling, x_shape, dtype):
    fn, s_shape, s_dtype, with_bias = WEIGHT_ONLY_SPELLINGS[spelling]
    w, s = fp8_weight(N, K)
    s = scale_like(s if s_shape == (N, 1) else s.mean(), s_shape, s_dtype or dtype)
    bias = torch.randn(N).to(dtype) if with_bias else None
    x = torch.randn(*x_shape).to(dtype)
    compiled = compile_quant(fn)
    out = compiled(x, w, s, bias)
    fused = compiled.fused()
    assert [e["op"] for e in fused] == ["xpu_quant::fp8_weight_only_mm"]
    assert fused[0]["pattern"] == "fp8_linear.weight_only" and fused[0]["kernel"] == "dequant_gemm"
    assert rel_err(out, fn(x, w, s, bias)) < TOL[dtype]


def test_weight_stored_k_by_n_with_column_scale(compile_quant):
    w, s = fp8_weight(N, K)
    w_kn, s_n = w.t().contiguous(), s.reshape(1, N).to(BF16)
    x = torch.randn(4, K).to(BF16)
    fn = lambda x, w, s: x @ (w.to(x.dtype) * s)  # noqa: E731
    compiled = compile_quant(fn)
    out = compiled(x, w_kn, s_n)
    assert compiled.fused()[0]["detail"]["weight_layout"] == "[K, N]"
    assert rel_err(out, fn(x, w_kn, s_n)) < TOL[BF16]


def dynamic_w8a8(x, w, s, b):
    amax = x.abs().amax(dim=-1, keepdim=True).float().clamp(min=1e-12)
    x_scale = amax / 448.0
    x_q = (x.float() / x_scale).clamp(-448.0, 448.0).to(torch.float8_e4m3fn)
    return F.linear((x_q.float() * x_scale).to(x.dtype), (w.float() * s).to(x.dtype), b)


def static_w8a8(x, w, s, b, x_scale=torch.tensor(0.01)):
    x_q = quantize(x, x_scale)
    return F.linear(x_q.to(x.dtype) * x_scale.to(x.dtype), w.to(x.dtype) * s.to(x.dtype), b)


@pytest.mark.parametrize("quant,a_scale", [(dynamic_w8a8, "row"), (static_w8a8, "tensor")])
@pytest.mark.parametrize("x_shape", [(7, K), (2, 5, K)], ids=["2d", "3d"])
@pytest.mark.parametrize("with_bias", [False, True])
def test_w8a8_quant_then_scaled_mm(compile_quant, quant, a_scale, x_shape, with_bias):
    w, s = fp8_weight(N, K)
    x = torch.randn(*x_shape).to(BF16)
    bias = torch.randn(N).to(BF16) if with_bias else None
    compiled = compile_quant(quant)
    out = compiled(x, w, s, bias)
    fused = compiled.fused()
    assert [e["op"] for e in fused] == ["xpu_quant::fp8_scaled_mm"]
    assert fused[0]["detail"]["a_scale"] == a_scale and fused[0]["detail"]["b_scale"] == "row"
    assert rel_err(out, quant(x, w, s, bias)) < TOL[BF16]
    graph_after = (compiled.dump_dir / compiled.reports()[-1]["graph"] / "02_after_fp8_linear.py").read_text()
    assert "xpu_quant.fp8_scaled_mm" in graph_after and "aten.mm" not in graph_after


def test_e5m2_weight_and_fp16_activations(compile_quant):
    w, s = fp8_weight(N, K, dtype=torch.float8_e5m2)
    x = torch.randn(3, K).to(FP16)
    fn = WEIGHT_ONLY_SPELLINGS["linear_bias"][0]
    s16, b = s.to(FP16), torch.randn(N).to(FP16)
    compiled = compile_quant(fn)
    out = compiled(x, w, s16, b)
    assert compiled.fused()[0]["detail"]["weight_dtype"] == "float8_e5m2"
    assert rel_err(out, fn(x, w, s16, b)) < TOL[FP16]


def test_two_layers_fuse_twice(compile_quant):
    w1, s1 = fp8_weight(N, K)
    w2, s2 = fp8_weight(K, N)
    fn = lambda x, w1, s1, w2, s2: F.linear(torch.relu(F.linear(x, (w1.float() * s1).to(x.dtype))),  # noqa: E731
                                            (w2.float() * s2).to(x.dtype))
    x = torch.randn(6, K).to(BF16)
    compiled = compile_quant(fn)
    out = compiled(x, w1, s1, w2, s2)
    passes = {p["name"]: p["matches"] for p in compiled.reports()[-1]["passes"]}
    assert len(compiled.fused()) == 2 and passes == {"fp8_block_linear": 0, "fp8_linear": 2, "kernel_selection": 2}
    assert rel_err(out, fn(x, w1, s1, w2, s2)) < TOL[BF16]


def _untouched(compiled, reason_part):
    report = compiled.reports()[-1]
    assert report["fused"] == []
    assert any(reason_part in m["reason"] for m in report["near_misses"]), report["near_misses"]


def test_scale_varying_along_k_is_left_alone(compile_quant):
    w, _ = fp8_weight(N, K)
    s = (torch.rand(1, K) * 0.01).to(BF16)
    fn = lambda x, w, s: F.linear(x, w.to(x.dtype) * s)  # noqa: E731
    x = torch.randn(4, K).to(BF16)
    compiled = compile_quant(fn)
    out = compiled(x, w, s)
    _untouched(compiled, "not per-tensor or per-output-channel")
    assert rel_err(out, fn(x, w, s)) < 1e-2


def test_dequantized_weight_used_twice_is_left_alone(compile_quant):
    w, s = fp8_weight(N, K)
    fn = lambda x, w, s: (lambda wd: (F.linear(x, wd), wd.sum()))((w.float() * s).to(x.dtype))  # noqa: E731
    x = torch.randn(4, K).to(BF16)
    compiled = compile_quant(fn)
    out, total = compiled(x, w, s)
    _untouched(compiled, "users")
    ref, ref_total = fn(x, w, s)
    assert rel_err(out, ref) < 1e-2 and rel_err(total, ref_total) < 1e-2


def test_rounding_to_narrower_dtype_inside_dequant_is_left_alone(compile_quant):
    w, s = fp8_weight(N, K)
    fn = lambda x, w, s: x @ (w.to(BF16) * s.to(BF16)).float().t()  # noqa: E731
    x = torch.randn(4, K)
    compiled = compile_quant(fn)
    out = compiled(x, w, s)
    _untouched(compiled, "rounded to torch.bfloat16")
    assert rel_err(out, fn(x, w, s)) < 1e-2  # Inductor itself may skip the bf16 rounding


def test_activation_with_k_varying_scale_falls_back_to_weight_only(compile_quant):
    w, s = fp8_weight(N, K)
    x_q, _ = quantize_per_row(torch.randn(4, K))
    x_s = (torch.rand(1, K) * 0.01).to(BF16)
    fn = lambda xq, xs, w, s: F.linear(xq.to(BF16) * xs, w.to(BF16) * s.to(BF16))  # noqa: E731
    compiled = compile_quant(fn)
    out = compiled(x_q, x_s, w, s)
    fused = compiled.fused()
    assert fused[0]["op"] == "xpu_quant::fp8_weight_only_mm"
    assert "varies along K" in fused[0]["detail"]["activation_not_fused"]
    assert rel_err(out, fn(x_q, x_s, w, s)) < 1e-2


def test_disabled_family_leaves_graph_untouched(compile_quant):
    w, s = fp8_weight(N, K)
    fn = WEIGHT_ONLY_SPELLINGS["linear_bias"][0]
    compiled = compile_quant(fn, fuse_fp8_linear=False)
    compiled(torch.randn(2, K).to(BF16), w, s.to(BF16), None)
    report = compiled.reports()[-1]
    assert report["fused"] == [] and "fp8_linear: disabled by option fuse_fp8_linear" in report["notes"]


def test_non_contiguous_3d_activation_bmm_form_fuses(compile_quant):
    w, s = fp8_weight(N, K)
    fn = lambda x, w, s: x.transpose(0, 1) @ (w.float() * s).to(x.dtype).t()  # noqa: E731
    x = torch.randn(5, 3, K).to(BF16)
    compiled = compile_quant(fn)
    out = compiled(x, w, s)
    assert out.shape == (3, 5, N)
    assert [e["replaced"] for e in compiled.fused()] == ["bmm"]
    assert rel_err(out, fn(x, w, s)) < TOL[BF16]


def test_bmm_with_a_batched_weight_is_left_alone(compile_quant):
    w, s = fp8_weight(N, K)
    fn = lambda x, w, s: torch.bmm(x, (w.float() * s).to(x.dtype).t().unsqueeze(0).repeat(2, 1, 1) * 1.5)  # noqa
    x = torch.randn(2, 4, K).to(BF16)
    compiled = compile_quant(fn)
    out = compiled(x, w, s)
    assert compiled.fused() == []
    assert rel_err(out, fn(x, w, s)) < TOL[BF16]
