"""Block-scaled FP8 linears: every spelling of the block broadcast, activation groups, candidates."""

import pytest
import torch
import torch.nn.functional as F

from conftest import rel_err
from xpu_inductor_ext.formats import (
    dequantize_blocks,
    dequantize_groups,
    expand_block_scale,
    quantize_per_block,
    quantize_per_group,
)
from xpu_inductor_ext.kernels import LinearProblem
from xpu_inductor_ext.kernels.scaled_mm import CudaScaledMm
from xpu_inductor_ext.kernels.triton import TritonFp8BlockScaledMm, TritonFp8WeightOnly
from xpu_inductor_ext.nn import Fp8Linear
from xpu_inductor_ext.ops import BLOCK_SCALED_MM, WEIGHT_ONLY_MM

BF16 = torch.bfloat16


def block_weight(n, k, block=128, pow2=False):
    return quantize_per_block(torch.randn(n, k) * 0.05, block, pow2_scale=pow2)


def reshape_broadcast(x, w, s):
    n, k = w.shape
    b = n // s.shape[0]
    wd = (w.float().reshape(n // b, b, k // b, b) * s[:, None, :, None]).reshape(n, k)
    return F.linear(x, wd.to(x.dtype))


def repeat_interleave(x, w, s):
    b = 128
    full = s.repeat_interleave(b, 0).repeat_interleave(b, 1)[: w.shape[0], : w.shape[1]]
    return x @ (w.float() * full).to(x.dtype).t()


def formats_helper(x, w, s):
    return F.linear(x, dequantize_blocks(w, s, 128, x.dtype))


@pytest.mark.parametrize("spelling", [reshape_broadcast, repeat_interleave, formats_helper])
@pytest.mark.parametrize("n,k", [(256, 384), (200, 328)], ids=["even", "ragged"])
def test_weight_only_block_spellings(compile_quant, spelling, n, k):
    if spelling is reshape_broadcast and n % 128:
        pytest.skip("the reshape spelling needs whole blocks")
    w, s = block_weight(n, k)
    x = torch.randn(2, 3, k).to(BF16)
    compiled = compile_quant(spelling)
    out = compiled(x, w, s)
    fused = compiled.fused()
    assert [(e["pattern"], e["detail"]["block"]) for e in fused] == [("fp8_block_linear.weight_only", [128, 128])]
    assert rel_err(out, spelling(x, w, s)) < 1e-2


@pytest.mark.parametrize("group", [128, 256])
@pytest.mark.parametrize("pow2", [False, True], ids=["fp32_scales", "ue8m0_scales"])
def test_group_quantized_activation_fuses_to_block_w8a8(compile_quant, group, pow2):
    n, k = 512, 1024
    w, s = block_weight(n, k, group, pow2)

    def fn(x, w, s):
        xq, xs = quantize_per_group(x, group, pow2_scale=pow2)
        return F.linear(dequantize_groups(xq, xs, x.dtype), dequantize_blocks(w, s, group, x.dtype))

    x = torch.randn(8, k).to(BF16) / 10
    compiled = compile_quant(fn)
    out = compiled(x, w, s)
    fused = compiled.fused()
    assert [(e["op"], e["detail"]["a_scale"]) for e in fused] == [("xpu_quant::fp8_block_scaled_mm", "group")]
    assert fused[0]["problem"]["group_k"] == group
    assert rel_err(out, fn(x, w, s)) < 1e-2


def test_block_linear_module_dynamic_tokens(compile_quant):
    layer = Fp8Linear.from_linear(torch.nn.Linear(256, 200).to(BF16), "dynamic", "block")
    compiled = compile_quant(layer, dynamic=True)
    for m in (3, 9):
        x = torch.randn(m, 5, 256).to(BF16)
        with torch.no_grad():
            assert rel_err(compiled(x), layer(x)) < 1e-2
    assert len(compiled.reports()) == 1
    assert compiled.fused()[0]["pattern"] == "fp8_block_linear.w8a8"


def test_per_channel_scale_is_left_to_the_fp8_linear_family(compile_quant):
    w, s = quantize_per_block(torch.randn(256, 256) * 0.05, 128)
    s_row = s.new_ones(256, 1) * 0.001
    fn = lambda x, w, s: F.linear(x, (w.float() * s).to(x.dtype))  # noqa: E731
    compiled = compile_quant(fn)
    compiled(torch.randn(2, 256).to(BF16), w, s_row)
    assert compiled.fused()[0]["pattern"] == "fp8_linear.weight_only"


def test_scale_that_is_not_a_block_broadcast_of_its_leaf_is_left_alone(compile_quant):
    w, _ = quantize_per_block(torch.randn(256, 256) * 0.05, 128)
    s = torch.rand(2, 2) * 0.01
    fn = lambda x, w, s: F.linear(x, (w.float() * expand_block_scale(s, 256, 256, 128, 128).t()).to(x.dtype))  # noqa
    x = torch.randn(2, 256).to(BF16)
    compiled = compile_quant(fn)
    out = compiled(x, w, s)
    report = compiled.reports()[-1]
    assert report["fused"] == []
    assert any("not a block broadcast" in m["reason"] or "not per-tensor" in m["reason"]
               for m in report["near_misses"]), report["near_misses"]
    assert rel_err(out, fn(x, w, s)) < 1e-2


def problem(op=BLOCK_SCALED_MM, m=256, n=512, k=1024, g=128, out=BF16, b_scale="block"):
    return LinearProblem(op=op, device="cuda", m=m, n=n, k=k, a_dtype=torch.float8_e4m3fn,
                         b_dtype=torch.float8_e4m3fn, out_dtype=out, a_scale="block", b_scale=b_scale,
                         group_n=g, group_k=g)


@pytest.mark.parametrize("kw,reason", [
    ({"g": 256}, "128x128 blocks only"),
    ({"n": 208}, "N and K multiples of 128"),
    ({"out": torch.float16}, "bf16 only"),
    ({"m": 3}, "M a multiple of 4"),
    ({"m": "s0"}, "M a multiple of 4"),
])
def test_cublas_blockwise_refusals(monkeypatch, kw, reason):
    from xpu_inductor_ext.kernels import platform

    monkeypatch.setattr(platform, "cuda_capability", lambda device: (9, 0))
    ok, why = CudaScaledMm().can_implement(problem(**kw))
    assert not ok and reason in why


@pytest.mark.parametrize("m,accepted", [(4, False), (16, False), (20, True), (256, True)])
def test_cublas_blockwise_leaves_decode_sizes_to_triton(monkeypatch, m, accepted):
    """At M <= 16 the Triton decode plan was faster than cuBLASLt's blockwise GEMM; without triton
    cuBLASLt keeps them."""
    from xpu_inductor_ext.kernels import platform, scaled_mm

    monkeypatch.setattr(platform, "cuda_capability", lambda device: (9, 0))
    ok, why = CudaScaledMm().can_implement(problem(m=m))
    assert ok == accepted and ("Triton block-scaled decode" in why) != accepted
    monkeypatch.setattr(scaled_mm, "triton_available", lambda: False)
    assert CudaScaledMm().can_implement(problem(m=m))[0]


def test_triton_candidates_refuse_the_cpu_and_odd_k_groups():
    ok, why = TritonFp8WeightOnly().is_supported(torch.device("cpu"))
    assert not ok and "need a GPU" in why
    ok, why = TritonFp8BlockScaledMm().can_implement(problem(g=40))
    assert not ok and "multiple of 16" in why
    ok, why = TritonFp8WeightOnly().can_implement(problem(op=WEIGHT_ONLY_MM, g=40))
    assert not ok and "multiple of 16" in why


def test_triton_lowerings_call_the_kernels():
    """What selection splices in for the Triton candidates, run eagerly by the interpreter on the CPU.

    (Traced through torch.compile the interpreter cannot run on fake tensors; the compiled GPU path
    at full size is checked by benchmarks/bench_block_fp8.py.)"""
    pytest.importorskip("triton")
    from xpu_inductor_ext.kernels.triton_fp8 import register_triton_ops
    from xpu_inductor_ext.ops import reference_block_scaled_mm, reference_weight_only_mm

    assert register_triton_ops()
    w, s = block_weight(256, 256)
    x = torch.randn(4, 256).to(BF16) / 10
    xq, xs = quantize_per_group(x, 128)
    a, sa = xq.reshape(4, 256), xs.reshape(4, 2)
    weight_only = TritonFp8WeightOnly().lower(problem(op=WEIGHT_ONLY_MM))
    block = TritonFp8BlockScaledMm().lower(problem())
    assert rel_err(weight_only(x, w, s, None, 128, 128), reference_weight_only_mm(x, w, s, None, 128, 128)) < 1e-2
    assert rel_err(block(a, w, sa, s, None, BF16, 128, 128),
                   reference_block_scaled_mm(a, w, sa, s, None, BF16, 128, 128)) < 1e-2


def test_one_by_b_weight_blocks_with_bias(compile_quant):
    """1 x 128 weight blocks (one scale per row and K-group) and a bias, through addmm."""
    n, k = 96, 256
    w = torch.randn(n, k) * 0.05
    s = w.abs().reshape(n, k // 128, 128).amax(-1) / 448
    q = (w / s.repeat_interleave(128, 1)).to(torch.float8_e4m3fn)
    bias = torch.randn(n).to(BF16)
    fn = lambda x, q, s, b: F.linear(x, (q.float() * expand_block_scale(s, n, k, 1, 128)).to(x.dtype), b)  # noqa
    x = torch.randn(2, 5, k).to(BF16)
    compiled = compile_quant(fn)
    out = compiled(x, q, s, bias)
    entry = compiled.fused()[0]
    assert entry["detail"]["block"] == [1, 128] and entry["detail"]["bias"] == "fused"
    assert rel_err(out, fn(x, q, s, bias)) < 1e-2
