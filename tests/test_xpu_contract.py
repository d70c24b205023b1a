"""XPU candidates against the published vllm-xpu-kernels 0.1.16.2 contract.

No Intel GPU is available: test doubles are registered under ``_xpu_C`` with the exact published
schemas; their CPU kernels assert the contract's layout rules and compute what the library would,
so our lowered calls are checked for layouts, dtypes, scale shapes and numerics.
"""

import pytest
import torch

from conftest import fp8_weight, rel_err
from xpu_inductor_ext.formats import quantize_per_row
from xpu_inductor_ext.kernels import LinearProblem, platform
from xpu_inductor_ext.kernels.xpu import XpuFp8Gemm, XpuFp8GemmW8A16, register_fake_kernels
from xpu_inductor_ext.ops import BLOCK_SCALED_MM, SCALED_MM, WEIGHT_ONLY_MM
from xpu_inductor_ext.ops.fp8_linear import reference_block_scaled_mm, reference_scaled_mm, reference_weight_only_mm

SCHEMAS = {  # copied from shared/reference/xpu-kernels-contract.md
    "fp8_gemm": "fp8_gemm(Tensor A, Tensor B, ScalarType? out_dtype, Tensor? A_scale_, Tensor? B_scale_, "
                "Tensor? bias_) -> Tensor",
    "fp8_gemm_w8a16": "fp8_gemm_w8a16(Tensor A, Tensor B, Tensor? B_scale_, Tensor? bias_) -> Tensor",
}
CALLS = []


def _check_b(B):
    assert B.stride(-2) == 1 or B.is_contiguous(), "B must be w.t() of a row-major [N, K] weight or contiguous [K, N]"


def _check_scale(name, s):
    assert s is not None, f"{name} must never be None"
    assert s.dtype == torch.float32 and s.is_contiguous(), f"{name} must be contiguous float32"


def fp8_gemm_double(A, B, out_dtype, A_scale, B_scale, bias):
    """What the library computes, after asserting the contract's rules."""
    CALLS.append(("fp8_gemm", A, B, out_dtype, A_scale, B_scale, bias))
    assert A.dtype == B.dtype and A.dtype in (torch.float8_e4m3fn, torch.float8_e5m2)
    _check_b(B)
    assert out_dtype in (torch.float16, torch.bfloat16), "always pass out_dtype fp16/bf16"
    _check_scale("A_scale", A_scale)
    _check_scale("B_scale", B_scale)
    m, k = A.shape
    n = B.shape[1]
    if A_scale.dim() == 2 and A_scale.shape[1] > 1:  # block mode, decided from A_scale alone
        gk, gn = k // A_scale.shape[1], n // B_scale.shape[1]
        assert B_scale.shape == (k // gk, n // gn)
        a = A.float() * A_scale.repeat_interleave(gk, 1)
        b = B.float() * B_scale.repeat_interleave(gk, 0).repeat_interleave(gn, 1)
    elif A_scale.numel() == 1:
        assert B_scale.numel() == 1, "per-tensor A with a per-channel B silently takes another branch"
        a, b = A.float() * A_scale, B.float() * B_scale
    else:
        assert A_scale.shape == (m, 1) and B_scale.shape in ((n,), (n, 1), (1, n))
        a, b = A.float() * A_scale, B.float() * B_scale.reshape(1, n)
    out = a @ b
    if bias is not None:
        assert bias.is_contiguous()
        out = out + bias.float()
    return out.to(out_dtype)


def fp8_gemm_w8a16_double(A, B, B_scale, bias):
    CALLS.append(("fp8_gemm_w8a16", A, B, B_scale, bias))
    assert A.dtype in (torch.float16, torch.bfloat16)
    _check_b(B)
    _check_scale("B_scale", B_scale)
    k, n = B.shape
    if B_scale.numel() == 1 or B_scale.dim() == 1 or B_scale.shape[0] == 1:
        scale = B_scale.reshape(1, -1) if B_scale.numel() > 1 else B_scale
    else:
        g = k // B_scale.shape[0]
        assert B_scale.shape == (k // g, n // g), "square blocks only"
        scale = B_scale.repeat_interleave(g, 0).repeat_interleave(g, 1)
    out = A.float() @ (B.float() * scale)
    return (out if bias is None else out + bias.float()).to(A.dtype)


@pytest.fixture(scope="module", autouse=True)
def xpu_library_double():
    lib = torch.library.Library("_xpu_C", "DEF")
    for name, schema in SCHEMAS.items():
        lib.define(schema)
    lib.impl("fp8_gemm", fp8_gemm_double, "CPU")
    lib.impl("fp8_gemm_w8a16", fp8_gemm_w8a16_double, "CPU")
    yield lib
    lib._destroy()


def problem(op, a_scale, b_scale, out=torch.bfloat16, a=torch.float8_e4m3fn, n=256, k=1024, g=0):
    return LinearProblem(op=op, device="xpu", m=8, n=n, k=k, a_dtype=a, b_dtype=torch.float8_e4m3fn,
                         out_dtype=out, a_scale=a_scale, b_scale=b_scale, group_n=g, group_k=g)


@pytest.mark.parametrize("a_kind,b_kind", [("tensor", "tensor"), ("row", "row"), ("tensor", "row"), ("row", "tensor")])
@pytest.mark.parametrize("with_bias", [False, True])
def test_fp8_gemm_call_follows_the_contract(a_kind, b_kind, with_bias):
    a, sa = fp8_weight(8, 1024, "channel" if a_kind == "row" else "tensor", std=1.0)
    b, sb = fp8_weight(256, 1024, "channel" if b_kind == "row" else "tensor")
    bias = torch.randn(256).bfloat16() if with_bias else None
    fn = XpuFp8Gemm().lower(problem(SCALED_MM, a_kind, b_kind))
    CALLS.clear()
    out = fn(a, b, sa, sb, bias, torch.bfloat16)
    assert CALLS and CALLS[0][0] == "fp8_gemm" and CALLS[0][3] == torch.bfloat16
    assert rel_err(out, reference_scaled_mm(a, b, sa, sb, bias, torch.bfloat16)) < 1e-2


@pytest.mark.parametrize("m,n,k", [(1, 256, 1024), (4, 256, 1024), (8, 256, 1024), (8, 512, 1024)])
@pytest.mark.parametrize("g", [128, 256])
def test_fp8_gemm_block_mode_layouts(m, n, k, g):
    a = (torch.randn(m, k) / 10)
    b = (torch.randn(n, k) / 10)
    sa = a.abs().reshape(m, k // g, g).amax(-1) / 448
    sb = b.abs().reshape(n // g, g, k // g, g).amax((1, 3)) / 448
    a8 = (a / sa.repeat_interleave(g, 1)).to(torch.float8_e4m3fn)
    b8 = (b / sb.repeat_interleave(g, 0).repeat_interleave(g, 1)).to(torch.float8_e4m3fn)
    fn = XpuFp8Gemm().lower(problem(BLOCK_SCALED_MM, "block", "block", n=n, k=k, g=g))
    CALLS.clear()
    out = fn(a8, b8, sa, sb, None, torch.bfloat16, g, g)
    _, _, B, _, A_scale, B_scale, _ = CALLS[0]
    assert A_scale.shape == (m, k // g) and B_scale.shape == (k // g, n // g) and B_scale.is_contiguous()
    assert rel_err(out, reference_block_scaled_mm(a8, b8, sa, sb, None, torch.bfloat16, g, g)) < 1e-2
    assert rel_err(out, a @ b.t()) < 6e-2


@pytest.mark.parametrize("kind", ["tensor", "row", "block"])
def test_fp8_gemm_w8a16_call_follows_the_contract(kind):
    x = torch.randn(4, 512).bfloat16()
    if kind == "block":
        w = torch.randn(256, 512) / 10
        s = w.abs().reshape(2, 128, 4, 128).amax((1, 3)) / 448
        w8 = (w / s.repeat_interleave(128, 0).repeat_interleave(128, 1)).to(torch.float8_e4m3fn)
        args = (x, w8, s, None, 128, 128)
    else:
        w8, s = fp8_weight(256, 512, "channel" if kind == "row" else "tensor")
        args = (x, w8, s, None, 0, 0)
    fn = XpuFp8GemmW8A16().lower(problem(WEIGHT_ONLY_MM, None, kind, a=torch.bfloat16, n=256, k=512,
                                         g=128 if kind == "block" else 0))
    CALLS.clear()
    out = fn(*args)
    assert CALLS[0][0] == "fp8_gemm_w8a16"
    assert rel_err(out, reference_weight_only_mm(*args)) < 1e-2


@pytest.mark.parametrize("kw,reason", [
    ({"out": torch.float32}, "fp16/bf16 only"),
    ({"a": torch.float8_e5m2}, "one FP8 dtype"),
])
def test_fp8_gemm_refusals(kw, reason):
    ok, why = XpuFp8Gemm().can_implement(problem(SCALED_MM, "row", "row", **kw))
    assert not ok and reason in why


def test_block_mode_refuses_k_equal_to_group_and_ragged_shapes():
    ok, why = XpuFp8Gemm().can_implement(problem(BLOCK_SCALED_MM, "block", "block", k=128, g=128))
    assert not ok and "per-token branch" in why
    ok, why = XpuFp8Gemm().can_implement(problem(BLOCK_SCALED_MM, "block", "block", n=200, g=128))
    assert not ok and "N = 200 is not a multiple" in why


def test_w8a16_refuses_non_square_blocks_and_fp32_activations():
    p = LinearProblem(op=WEIGHT_ONLY_MM, device="xpu", m=8, n=256, k=512, a_dtype=torch.bfloat16,
                      b_dtype=torch.float8_e4m3fn, out_dtype=torch.bfloat16, a_scale=None, b_scale="block",
                      group_n=1, group_k=128)
    ok, why = XpuFp8GemmW8A16().can_implement(p)
    assert not ok and "square blocks only" in why
    ok, why = XpuFp8GemmW8A16().can_implement(problem(WEIGHT_ONLY_MM, None, "row", a=torch.float32))
    assert not ok and "fp16/bf16 activations" in why


def test_probe_is_safe_without_an_xpu():
    platform.xpu_kernels.cache_clear()
    ok, why = platform.xpu_kernels("fp8_gemm")
    assert not ok and why
    ok, why = XpuFp8Gemm().is_supported(torch.device("cpu"))
    assert not ok and "not an Intel XPU" in why


def test_fake_kernels_let_the_native_call_compile():
    register_fake_kernels.cache_clear()
    register_fake_kernels()
    a, sa = quantize_per_row(torch.randn(8, 256))
    b, sb = fp8_weight(128, 256)
    fn = XpuFp8Gemm().lower(problem(SCALED_MM, "row", "row", n=128, k=256))
    torch._dynamo.reset()
    compiled = torch.compile(fn, fullgraph=True)
    out = compiled(a, b, sa, sb, None, torch.bfloat16)
    assert rel_err(out, reference_scaled_mm(a, b, sa, sb, None, torch.bfloat16)) < 1e-2


def _block_weight(n=256, k=512, g=128):
    w = torch.randn(n, k) / 10
    s = w.abs().reshape(n // g, g, k // g, g).amax((1, 3)) / 448
    return (w / s.repeat_interleave(g, 0).repeat_interleave(g, 1)).to(torch.float8_e4m3fn), s


def test_block_scale_transpose_is_made_once_per_weight_scale():
    """Two calls with one weight scale pass the very same [K/g, N/g] tensor; an in-place update of
    the scale makes a new one (and the numerics follow it)."""
    x = torch.randn(4, 512).bfloat16()
    w8, s = _block_weight()
    fn = XpuFp8GemmW8A16().lower(problem(WEIGHT_ONLY_MM, None, "block", a=torch.bfloat16, n=256, k=512, g=128))
    CALLS.clear()
    fn(x, w8, s, None, 128, 128)
    fn(x, w8, s[:], None, 128, 128)  # a fresh view of the same scale hits too
    first, second = CALLS[0][3], CALLS[1][3]
    assert first is second and first.shape == (4, 2) and first.is_contiguous()
    s.mul_(2)
    CALLS.clear()
    out = fn(x, w8, s, None, 128, 128)
    assert CALLS[0][3] is not first and torch.equal(CALLS[0][3], s.t())
    assert rel_err(out, reference_weight_only_mm(x, w8, s, None, 128, 128)) < 1e-2


def test_block_mode_gemms_compile_with_the_cached_layout():
    """Compiled (fullgraph), the block W8A8 and W8A16 lowerings call the xpu_quant custom ops, which
    take the cached layout at run time: no transpose is traced into the graph."""
    from xpu_inductor_ext.kernels import xpu

    register_fake_kernels.cache_clear()
    register_fake_kernels()
    w8, s = _block_weight()
    a = (torch.randn(8, 512) / 10).to(torch.float8_e4m3fn)
    sa = torch.rand(8, 4) + 0.5
    x = torch.randn(8, 512).bfloat16()
    w8a8 = XpuFp8Gemm().lower(problem(BLOCK_SCALED_MM, "block", "block", n=256, k=512, g=128))
    w8a16 = XpuFp8GemmW8A16().lower(problem(WEIGHT_ONLY_MM, None, "block", a=torch.bfloat16, n=256, k=512, g=128))
    torch._dynamo.reset()
    graphs = []

    def capture(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    out_a = torch.compile(w8a8, backend=capture, fullgraph=True)(a, w8, sa, s, None, torch.bfloat16, 128, 128)
    out_x = torch.compile(w8a16, backend=capture, fullgraph=True)(x, w8, s, None, 128, 128)
    nodes = [n for gm in graphs for n in gm.graph.nodes]
    called = {str(n.target) for n in nodes if n.op == "call_function"}
    methods = {n.target for n in nodes if n.op == "call_method"}  # a traced scale.t() would be one
    assert {"xpu_quant.xpu_fp8_gemm_blocks.default", "xpu_quant.xpu_fp8_gemm_w8a16_blocks.default"} <= called
    assert not methods & {"t", "transpose", "permute", "contiguous"}
    assert not any("transpose" in t or "permute" in t for t in called)
    assert rel_err(out_a, reference_block_scaled_mm(a, w8, sa, s, None, torch.bfloat16, 128, 128)) < 1e-2
    assert rel_err(out_x, reference_weight_only_mm(x, w8, s, None, 128, 128)) < 1e-2
    assert xpu.block_scales_kn(s) is xpu.block_scales_kn(s)
