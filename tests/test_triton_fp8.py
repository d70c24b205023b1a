"""Triton FP8 kernels on CPU through the Triton interpreter, against float64 references.

Small shapes only (the interpreter is slow); the GPU check at full size is
benchmarks/bench_triton_fp8.py.
"""

import os

os.environ["TRITON_INTERPRET"] = "1"  # takes effect only if triton was not imported yet (see below)

from dataclasses import replace as dataclasses_replace

import pytest
import torch

triton = pytest.importorskip("triton")
tl_constexpr = triton.language.constexpr

from xpu_inductor_ext.kernels.triton_fp8 import (  # noqa: E402
    BLOCK_SCALED_OP,
    WEIGHT_ONLY_OP,
    fp8_block_scaled_mm,
    fp8_weight_only_mm,
    register_triton_ops,
    triton_available,
)
from xpu_inductor_ext.kernels.triton_fp8 import kernels, launches, ops  # noqa: E402
from xpu_inductor_ext.kernels.triton_fp8.validation import (  # noqa: E402
    SCALE_BLOCK,
    SCALE_PER_CHANNEL,
    SCALE_PER_TENSOR,
)

E4M3 = torch.float8_e4m3fn
E5M2 = torch.float8_e5m2
# Relative-error bounds vs the float64 reference, by output dtype: output rounding dominates.
REL_TOL = {torch.bfloat16: 1e-2, torch.float16: 2e-3, torch.float32: 1e-5}


def _interpreter_ready() -> bool:
    """Triton decorates its own library in interpreter mode only if TRITON_INTERPRET=1 preceded its import."""
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(triton.language.cdiv, InterpretedFunction)


@pytest.fixture(autouse=True)
def _require_interpreter():
    if not _interpreter_ready():
        pytest.fail("triton was imported before TRITON_INTERPRET=1 was set: set it at the top of "
                    "tests/conftest.py, before anything imports xpu_inductor_ext or triton", pytrace=False)


def cdiv(a, b):
    return (a + b - 1) // b


def quantize_blocks(t, block_rows, block_cols, dtype=E4M3, pow2_scales=False):
    """Per-block amax quantization: returns (q, scale[ceil(R/br), ceil(C/bc)]), t ~ q * scale."""
    rows, cols = t.shape
    padded = torch.nn.functional.pad(t, (0, cdiv(cols, block_cols) * block_cols - cols,
                                         0, cdiv(rows, block_rows) * block_rows - rows))
    blocks = padded.reshape(cdiv(rows, block_rows), block_rows, cdiv(cols, block_cols), block_cols)
    scale = blocks.abs().amax(dim=(1, 3)).clamp_min(1e-12) / torch.finfo(dtype).max
    if pow2_scales:  # UE8M0-style: the next power of two, so that no value saturates
        scale = torch.exp2(torch.ceil(torch.log2(scale)))
    q = (blocks / scale[:, None, :, None]).to(dtype).reshape(padded.shape)[:rows, :cols]
    return q, scale.float()


def expand_block_scale(scale, block_rows, block_cols, rows, cols):
    return scale.double().repeat_interleave(block_rows, 0)[:rows].repeat_interleave(block_cols, 1)[:, :cols]


def weight_only_reference(x, w, w_scale, bias, block_n, block_k):
    n, k = w.shape
    if block_n:
        scale = expand_block_scale(w_scale, block_n, block_k, n, k)
    else:
        scale = w_scale.double().reshape(-1, 1)
    out = x.double() @ (w.double() * scale).T
    return out if bias is None else out + bias.double()


def block_scaled_reference(a, b, a_scale, b_scale, bias, group_n, group_k):
    m, k = a.shape
    n = b.shape[0]
    a_deq = a.double() * expand_block_scale(a_scale, 1, group_k, m, k)
    b_deq = b.double() * expand_block_scale(b_scale, group_n, group_k, n, k)
    out = a_deq @ b_deq.T
    return out if bias is None else out + bias.double()


def rel_err(out, ref):
    return ((out.double() - ref).norm() / ref.norm()).item()


def assert_close_rel(out, ref, dtype):
    assert out.dtype == dtype
    assert torch.isfinite(out).all()
    err = rel_err(out, ref)
    assert err < REL_TOL[dtype], f"relative error {err:.3g} >= {REL_TOL[dtype]:.1g}"


def make_weight(n, k, mode, dtype=E4M3, block=128, pow2_scales=False):
    """(w, w_scale, block_n, block_k) for scale mode 'tensor', 'channel' or 'block'."""
    wf = torch.randn(n, k) / 10
    if mode == "tensor":
        w, s = quantize_blocks(wf, n, k, dtype, pow2_scales)
        return w, s.reshape(()), 0, 0
    if mode == "channel":
        w, s = quantize_blocks(wf, 1, k, dtype, pow2_scales)
        return w, s, 0, 0
    w, s = quantize_blocks(wf, block, block, dtype, pow2_scales)
    return w, s, block, block


def test_registration_is_idempotent():
    assert triton_available()
    assert register_triton_ops()
    assert register_triton_ops()
    assert hasattr(torch.ops.xpu_quant, "triton_fp8_weight_only_mm")
    assert hasattr(torch.ops.xpu_quant, "triton_fp8_block_scaled_mm")


WEIGHT_ONLY_CASES = [
    # (m, n, k, scale mode, x dtype, weight dtype, bias, block)
    (1, 256, 1024, "channel", torch.bfloat16, E4M3, False, 128),
    (4, 256, 1024, "tensor", torch.bfloat16, E4M3, True, 128),
    (8, 512, 1024, "block", torch.bfloat16, E4M3, False, 128),
    (1, 256, 1024, "block", torch.float16, E4M3, True, 256),
    (4, 256, 1024, "channel", torch.float32, E5M2, True, 128),
    (1, 200, 328, "block", torch.float32, E4M3, False, 128),
    (5, 200, 328, "channel", torch.float16, E5M2, False, 128),
    (33, 200, 328, "block", torch.bfloat16, E4M3, True, 128),  # M > 16: the tiled kernel
    (20, 256, 1024, "tensor", torch.float32, E4M3, False, 128),
]


@pytest.mark.parametrize("m,n,k,mode,x_dtype,w_dtype,with_bias,block", WEIGHT_ONLY_CASES)
def test_weight_only_matches_reference(m, n, k, mode, x_dtype, w_dtype, with_bias, block):
    x = (torch.randn(m, k) / 10).to(x_dtype)
    w, w_scale, block_n, block_k = make_weight(n, k, mode, w_dtype, block)
    bias = torch.randn(n).to(x_dtype) if with_bias else None
    out = fp8_weight_only_mm(x, w, w_scale, bias, block_n, block_k)
    assert out.shape == (m, n)
    assert_close_rel(out, weight_only_reference(x, w, w_scale, bias, block_n, block_k), x_dtype)


def test_weight_only_strided_inputs_and_fp32_bias():
    m, n, k = 3, 256, 1024
    x = (torch.randn(k, m) / 10).to(torch.bfloat16).t()  # column-major activations
    w, w_scale, _, _ = make_weight(n, k, "channel")
    w = w.t().contiguous().t()  # column-major weight
    bias = torch.randn(n)
    out = fp8_weight_only_mm(x, w, w_scale, bias)
    assert_close_rel(out, weight_only_reference(x, w, w_scale, bias, 0, 0), torch.bfloat16)


DECODE_PLAN_CASES = [
    # (mma mode, rows per program, weight-scale block (rows, cols), plan block_n, plan block_k)
    (ops.MMA_FMA, 1, (128, 128), 32, 128),  # one scale row per program: the scale multiplies x
    (ops.MMA_FMA, 2, (128, 128), 16, 64),
    (ops.MMA_FMA, 1, (16, 128), 32, 64),  # two scale rows per program: per-row scales, K-tile in a block
    (ops.MMA_FMA, 2, (1, 64), 16, 64),  # 1 x 64 weight blocks
    (ops.MMA_DOT, ops.DECODE_BLOCK_M, (128, 128), 32, 64),
    (ops.MMA_DOT_SWAPPED, ops.DECODE_BLOCK_M, (128, 128), 32, 64),
]


@pytest.mark.parametrize("mma_mode,rows,scale_block,block_n,block_k", DECODE_PLAN_CASES)
@pytest.mark.parametrize("split_k", [1, 3])
def test_weight_only_decode_plans(mma_mode, rows, scale_block, block_n, block_k, split_k):
    """Every small-M code path, with and without the split-K reduction, in block-scale mode (ragged K)."""
    m = 3 if rows == 2 else (1 if mma_mode == ops.MMA_FMA else 4)  # 3 rows: a GEMV pair and a lone row
    n, k = 200, 328
    x = (torch.randn(m, k) / 10).to(torch.bfloat16)
    w, w_scale = quantize_blocks(torch.randn(n, k) / 10, *scale_block)
    bias = torch.randn(n).to(torch.bfloat16)
    plan = ops.DecodePlan(mma_mode, rows, block_n, block_k, split_k, 4, 1, 2)
    out = ops.launch_weight_only(x, w, w_scale, bias, *scale_block, SCALE_BLOCK, plan=plan)
    assert_close_rel(out, weight_only_reference(x, w, w_scale, bias, *scale_block), torch.bfloat16)


SCALE_MODES = {"channel": SCALE_PER_CHANNEL, "tensor": SCALE_PER_TENSOR, "block": SCALE_BLOCK}
@pytest.mark.parametrize("mma_mode", [ops.MMA_DOT, ops.MMA_DOT_SWAPPED])
@pytest.mark.parametrize("scales", ["channel", "tensor", "block"])
@pytest.mark.parametrize("split_k", [1, 2])
def test_weight_only_two_accumulator_plans(mma_mode, scales, split_k):
    """The decode kernel at M = 5 (rows wrap inside the 16-row tile), ragged N and a K that is not a
    multiple of its two-tile step (masked loads), with bias and the split-K reduction."""
    m, n, k = 5, 200, 328
    x = (torch.randn(m, k) / 10).to(torch.bfloat16)
    if scales == "block":
        w, w_scale = quantize_blocks(torch.randn(n, k) / 10, 16, 32)
        blocks = (16, 32)
    else:
        w, w_scale, *blocks = make_weight(n, k, scales)
    bias = torch.randn(n).to(torch.bfloat16)
    plan = ops.DecodePlan(mma_mode, 16, 32, 32, split_k, 4, 1, accumulators=2)
    out = ops.launch_weight_only(x, w, w_scale, bias, *blocks, SCALE_MODES[scales], plan=plan)
    assert_close_rel(out, weight_only_reference(x, w, w_scale, bias, *blocks), torch.bfloat16)



def test_decode_step_past_k_reads_no_scale_out_of_bounds():
    """K = 3 K-tiles: the last step's second tile lies past K. Its scale column must not be read:
    the column after the scale tensor holds NaN here, which would poison the (zero) partial."""
    n, k, blocks = 48, 96, (16, 32)
    w, w_scale = quantize_blocks(torch.randn(n, k) / 10, *blocks)
    padded = torch.cat([w_scale, torch.full((w_scale.shape[0], 1), float("nan"))], dim=1)
    x = (torch.randn(3, k) / 10).to(torch.bfloat16)
    plan = ops.DecodePlan(ops.MMA_DOT, 16, 32, 32, 1, 4, 1, accumulators=2)
    out = ops.launch_weight_only(x, w, padded[:, :-1], None, *blocks, SCALE_BLOCK, plan=plan)
    assert_close_rel(out, weight_only_reference(x, w, w_scale, None, *blocks), torch.bfloat16)


def test_default_mma_decode_plan_runs_and_matches():
    """M = 9 through fp8_weight_only_mm picks the two-accumulator plan; numerics hold."""
    m, n, k = 9, 192, 512
    assert ops.decode_plan(m, n, k, 0, 0, num_sms=1).accumulators == 2
    x = (torch.randn(m, k) / 10).to(torch.bfloat16)
    w, w_scale, _, _ = make_weight(n, k, "channel")
    out = fp8_weight_only_mm(x, w, w_scale, None)
    assert_close_rel(out, weight_only_reference(x, w, w_scale, None, 0, 0), torch.bfloat16)


@pytest.mark.parametrize("plan,message", [
    (ops.DecodePlan(ops.MMA_DOT, 16, 32, 32, 1, 4, 1, accumulators=4), "accumulators must be 1 or 2"),
    (ops.DecodePlan(ops.MMA_FMA, 1, 32, 32, 1, 4, 1, accumulators=2), "two accumulators need an MMA mode"),
])
def test_forced_decode_plans_the_kernels_cannot_run_are_refused(plan, message):
    w, w_scale, _, _ = make_weight(64, 256, "channel")
    with pytest.raises(ValueError, match=message):
        ops.launch_weight_only(torch.randn(1, 256).to(torch.bfloat16), w, w_scale, None, 0, 0,
                               SCALE_PER_CHANNEL, plan=plan)


def test_mma_decode_plan_splits_k_to_two_programs_per_sm():
    """On 132 SMs: 128 N-tiles of 64 rows split K in 2, 224 tiles not at all, 64 tiles in 4."""
    for n, k, split in ((8192, 8192, 2), (14336, 4096, 1), (4096, 14336, 4)):
        plan = ops.decode_plan(16, n, k, 0, 0, num_sms=132)
        assert (plan.mma_mode, plan.block_n, plan.accumulators) == (ops.MMA_DOT, 64, 2)
        assert plan.split_k == split, (n, k, plan)
    assert ops.decode_plan(4, 4096, 1024, 0, 0, num_sms=132).split_k == 1  # too little K to split
    assert ops.decode_plan(8, 8192, 8192, 128, 128, num_sms=132).block_k == 128
    assert ops.decode_plan(8, 8192, 8192, 1, 64, num_sms=132).block_k == 64  # K-tiles inside 1 x 64 blocks


def test_decode_plan_refuses_k_tiles_across_scale_blocks():
    w, w_scale = quantize_blocks(torch.randn(64, 256) / 10, 16, 128)
    plan = ops.DecodePlan(ops.MMA_FMA, 1, 32, 256, 1, 4, 1, 2)
    with pytest.raises(ValueError, match="block_k must divide the scale block 128"):
        ops.launch_weight_only(torch.randn(1, 256), w, w_scale, None, 16, 128, SCALE_BLOCK, plan=plan)


def test_decode_plan_splits_k_to_fill_the_device():
    assert ops.decode_plan(1, 1024, 8192, 0, 0, num_sms=132).split_k > 1
    assert ops.decode_plan(1, 1024, 8192, 0, 0, num_sms=1).split_k == 1
    assert ops.decode_plan(1, 8192, 8192, 0, 0, num_sms=132).split_k == 1  # 512 GEMV programs already
    assert ops.decode_plan(4, 8192, 8192, 64, 64, num_sms=132).block_k <= 64


def test_decode_plan_modes_and_block_scales():
    assert ops.decode_plan(2, 8192, 8192, 0, 0, num_sms=132).mma_mode == ops.MMA_FMA
    assert ops.decode_plan(3, 8192, 8192, 0, 0, num_sms=132).mma_mode == ops.MMA_DOT
    square = ops.decode_plan(1, 8192, 8192, 128, 128, num_sms=132)  # K-tile within a block, rows in a scale row
    assert 128 % square.block_k == 0 and ops.gemv_scales_x(square.block_n, 128)
    assert square.block_n * square.block_k == ops.GEMV_TILE_BYTES and square.split_k > 1  # 128 programs alone
    per_row = ops.decode_plan(1, 8192, 8192, 1, 128, num_sms=132)  # 1 x 128 blocks: a scale per row
    assert 128 % per_row.block_k == 0 and not ops.gemv_scales_x(per_row.block_n, 1)


BLOCK_CASES = [
    # (m, n, k, group, out dtype, pow2 scales, bias)
    (1, 256, 1024, 128, torch.bfloat16, False, False),
    (4, 256, 1024, 256, torch.bfloat16, True, True),
    (8, 512, 1024, 128, torch.float32, False, True),
    (8, 512, 1024, 256, torch.float16, True, False),
    (8, 200, 328, 128, torch.float32, True, True),
    (3, 200, 328, 256, torch.bfloat16, False, False),
]


@pytest.mark.parametrize("m,n,k,group,out_dtype,pow2_scales,with_bias", BLOCK_CASES)
def test_block_scaled_matches_reference(m, n, k, group, out_dtype, pow2_scales, with_bias):
    a, a_scale = quantize_blocks(torch.randn(m, k) / 10, 1, group, pow2_scales=pow2_scales)
    b, b_scale = quantize_blocks(torch.randn(n, k) / 10, group, group, pow2_scales=pow2_scales)
    bias = torch.randn(n).to(out_dtype) if with_bias else None
    out = fp8_block_scaled_mm(a, b, a_scale, b_scale, bias, out_dtype, group, group)
    assert out.shape == (m, n)
    assert_close_rel(out, block_scaled_reference(a, b, a_scale, b_scale, bias, group, group), out_dtype)


@pytest.mark.parametrize("group_n", [64, 48])  # a tile inside one weight block / straddling two
def test_block_scaled_mixed_fp8_and_strided_scales(group_n):
    """e5m2 activations x e4m3 weights, a_scale outer-dim-major (as cuBLASLt wants it), group_n != group_k."""
    m, n, k, group_k = 6, 192, 512, 128
    a, a_scale = quantize_blocks(torch.randn(m, k) / 10, 1, group_k, E5M2)
    b, b_scale = quantize_blocks(torch.randn(n, k) / 10, group_n, group_k)
    a_scale = a_scale.t().contiguous().t()
    out = fp8_block_scaled_mm(a, b, a_scale, b_scale, None, torch.float32, group_n, group_k)
    assert_close_rel(out, block_scaled_reference(a, b, a_scale, b_scale, None, group_n, group_k), torch.float32)



@pytest.mark.parametrize("swapped", [True, False])
@pytest.mark.parametrize("m,n,k,group_n,group_k,splits", [
    (1, 256, 1024, 128, 128, 3),  # 8 K-tiles in 3 splits: 3 + 3 + 2
    (5, 200, 328, 64, 128, 2),  # ragged N and K, two weight-scale rows per tile
    (16, 192, 512, 48, 128, 4),  # weight-scale rows straddling the tile
])
def test_block_scaled_decode_plans_match_reference(m, n, k, group_n, group_k, splits, swapped):
    """The M <= 16 decode launch (split-K partials + reduction, bias added once) in both MMA
    orientations, through pointer loads (the interpreter has no tensor descriptors)."""
    a, a_scale = quantize_blocks(torch.randn(m, k) / 10, 1, group_k, pow2_scales=True)
    b, b_scale = quantize_blocks(torch.randn(n, k) / 10, group_n, group_k)
    bias = torch.randn(n).to(torch.bfloat16)
    plan = ops.BlockScaledDecodePlan(block_n=64, split_k=splits, swapped=swapped, descriptors=False)
    out = ops.launch_block_scaled(a, b, a_scale, b_scale, bias, torch.bfloat16, group_n, group_k, decode=plan)
    assert_close_rel(out, block_scaled_reference(a, b, a_scale, b_scale, bias, group_n, group_k), torch.bfloat16)
    out32 = ops.launch_block_scaled(a, b, a_scale, b_scale, None, torch.float32, group_n, group_k, decode=plan)
    assert_close_rel(out32, block_scaled_reference(a, b, a_scale, b_scale, None, group_n, group_k), torch.float32)


def test_block_scaled_decode_plan_fills_the_gpu():
    """On 132 SMs: 32 tiles of 128 rows at N = 4096 split K eight ways (about two programs per SM),
    but K = 1024 only twice (at least 4 K-tiles each); N = 28672 (224 tiles) needs no split."""
    assert ops.block_scaled_decode_plan(4096, 4096, 128, 132).split_k == 8
    assert ops.block_scaled_decode_plan(4096, 14336, 128, 132).split_k == 8
    assert ops.block_scaled_decode_plan(28672, 4096, 128, 132).split_k == 1
    assert ops.block_scaled_decode_plan(4096, 1024, 128, 132).split_k == 2


@pytest.mark.parametrize("n,split", [(8192, 2), (14336, 1), (4096, 4), (28672, 3), (32000, 3)])
def test_mma_decode_split_fills_one_wave_or_makes_several(n, split):
    """64-row MMA decode tiles on 132 SMs, K = 8192: about two programs per SM (14336: 224 tiles,
    no split); where the tiles overfill that (28672: 448), K splits into at least four such waves."""
    assert ops.decode_plan(4, n, 8192, 0, 0, 132).split_k == split

def test_empty_batch():
    w, w_scale, _, _ = make_weight(64, 128, "channel")
    assert fp8_weight_only_mm(torch.randn(0, 128), w, w_scale, None).shape == (0, 64)
    b, b_scale = quantize_blocks(torch.randn(64, 128), 128, 128)
    a = torch.randn(0, 128).to(E4M3)
    out = fp8_block_scaled_mm(a, b, torch.ones(0, 1), b_scale, None, torch.bfloat16)
    assert out.shape == (0, 64)


def _weight_only_inputs():
    x = torch.randn(4, 256, dtype=torch.bfloat16)
    w, w_scale, _, _ = make_weight(64, 256, "channel")
    return dict(x=x, w=w, w_scale=w_scale, bias=None, block_n=0, block_k=0)


WEIGHT_ONLY_BAD = [
    ("x", dict(x=torch.randn(4, 256, dtype=torch.float64)), "dtype"),
    ("x", dict(x=torch.randn(2, 4, 256, dtype=torch.bfloat16)), "2-D"),
    ("w", dict(w=torch.randn(64, 256)), "dtype"),
    ("w", dict(w=torch.randn(64, 128).to(E4M3)), "K = x.shape[1] = 256"),
    ("w_scale", dict(w_scale=torch.rand(32, 1)), "[N, 1] = [64, 1]"),
    ("w_scale", dict(w_scale=torch.rand(64, 1, dtype=torch.float64)), "dtype"),
    ("w_scale", dict(w_scale=torch.rand(1, 1), block_n=32, block_k=128), "= [2, 2]"),
    ("block_k", dict(block_n=128, block_k=0), "positive"),
    ("block_k", dict(w_scale=torch.rand(1, 7), block_n=128, block_k=40), "multiple of 16"),
    ("bias", dict(bias=torch.randn(32, dtype=torch.bfloat16)), "[N] = [64]"),
    ("bias", dict(bias=torch.randn(64, dtype=torch.float16)), "dtype"),
]


@pytest.mark.parametrize("arg,override,rule", WEIGHT_ONLY_BAD)
def test_weight_only_rejects_bad_inputs(arg, override, rule):
    inputs = {**_weight_only_inputs(), **override}
    with pytest.raises(ValueError) as err:
        fp8_weight_only_mm(**inputs)
    assert WEIGHT_ONLY_OP in str(err.value) and f"argument '{arg}'" in str(err.value) and rule in str(err.value)


def _block_inputs():
    a, a_scale = quantize_blocks(torch.randn(4, 1024), 1, 128)
    b, b_scale = quantize_blocks(torch.randn(256, 1024), 128, 128)
    return dict(a=a, b=b, scale_a=a_scale, scale_b=b_scale, bias=None, out_dtype=torch.bfloat16,
                group_n=128, group_k=128)


BLOCK_BAD = [
    ("a", dict(a=torch.randn(4, 1024, dtype=torch.bfloat16)), "dtype"),
    ("b", dict(b=torch.randn(256, 512).to(E4M3)), "K = a.shape[1] = 1024"),
    ("scale_b", dict(scale_b=torch.rand(2, 4)), "= [2, 8]; got torch.float32 tensor of shape [2, 4]"),
    ("scale_a", dict(scale_a=torch.rand(4, 4)), "= [4, 8]"),
    ("scale_a", dict(scale_a=torch.rand(4, 8, dtype=torch.bfloat16)), "dtype"),
    ("out_dtype", dict(out_dtype=torch.float8_e4m3fn), "one of"),
    ("group_k", dict(group_k=0), "positive"),
    ("group_k", dict(group_k=100, scale_a=torch.rand(4, 11), scale_b=torch.rand(2, 11)), "multiple of 16"),
    ("bias", dict(bias=torch.randn(256, dtype=torch.float16)), "dtype"),
]


@pytest.mark.parametrize("arg,override,rule", BLOCK_BAD)
def test_block_scaled_rejects_bad_inputs(arg, override, rule):
    inputs = {**_block_inputs(), **override}
    with pytest.raises(ValueError) as err:
        fp8_block_scaled_mm(**inputs)
    assert BLOCK_SCALED_OP in str(err.value) and f"argument '{arg}'" in str(err.value) and rule in str(err.value)


def test_repeated_calls_reuse_their_launch_with_the_new_tensors():
    """A second call with the same shapes takes the cached launch (no validation, no planning) but
    reads its own tensors; other shapes, strides or dtypes plan anew."""
    m, n, k = 3, 320, 768  # the cache starts empty (conftest): the first call adds a launch
    before = len(ops.launch_cache._launches)
    for trial in range(3):
        x = (torch.randn(m, k) / 10).to(torch.bfloat16)
        w, w_scale, _, _ = make_weight(n, k, "channel")
        bias = torch.randn(n).to(torch.bfloat16)
        out = fp8_weight_only_mm(x, w, w_scale, bias)
        assert_close_rel(out, weight_only_reference(x, w, w_scale, bias, 0, 0), torch.bfloat16)
        if trial == 0:
            first = len(ops.launch_cache._launches)
            assert first == before + 1
    assert len(ops.launch_cache._launches) == first
    x_t = (torch.randn(k, m) / 10).to(torch.bfloat16).t()  # other strides: a launch of its own
    assert_close_rel(fp8_weight_only_mm(x_t, w, w_scale, None), weight_only_reference(x_t, w, w_scale, None, 0, 0),
                     torch.bfloat16)
    assert len(ops.launch_cache._launches) == first + 1
    a, a_scale = quantize_blocks(torch.randn(m, k), 1, 128)
    b, b_scale = quantize_blocks(torch.randn(n, k), 128, 128)
    for _ in range(2):
        b, b_scale = quantize_blocks(torch.randn(n, k), 128, 128)
        out = fp8_block_scaled_mm(a, b, a_scale, b_scale, None, torch.float32)
        assert_close_rel(out, block_scaled_reference(a, b, a_scale, b_scale, None, 128, 128), torch.float32)
    assert len(ops.launch_cache._launches) == first + 2


def test_launch_cache_drops_the_first_key_met_when_full():
    cache = launches.LaunchCache(2)
    made = [launches.KernelLaunch(None, (1,), (i,), {}) for i in range(3)]
    for i, launch in enumerate(made):
        cache.put(("key", i), launch)
    assert cache.get(("key", 0)) is None and cache.get(("key", 2)) is made[2]
    cache.put(None, made[0])  # a trace: nothing kept
    assert cache.get(None) is None


def test_call_key_is_none_for_fake_tensors():
    from torch._subclasses.fake_tensor import FakeTensorMode

    x = torch.randn(4, 8)
    assert launches.call_key("op", x, None, 3) == ("op", (x.shape, x.stride(), x.dtype, x.device, x.data_ptr() % 16 == 0),
                                              None, 3)
    with FakeTensorMode() as mode:
        assert launches.call_key("op", mode.from_tensor(x), 3) is None


def test_ops_are_plain_dispatcher_ops_with_validating_fakes():
    """Registered straight with the dispatcher (no custom-op autograd/check layers on the host path);
    the fake validates, so a trace of bad inputs fails with the op's message."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    assert register_triton_ops()
    op = torch.ops.xpu_quant.triton_fp8_weight_only_mm.default
    assert torch._C._dispatch_has_kernel_for_dispatch_key(op.name(), "CompositeExplicitAutograd")
    assert torch._library.custom_ops._maybe_get_opdef(op.name()) is None
    w, w_scale, _, _ = make_weight(64, 128, "channel")
    with FakeTensorMode() as mode:
        x = mode.from_tensor(torch.randn(2, 128).to(torch.bfloat16))
        assert op(x, mode.from_tensor(w), mode.from_tensor(w_scale), None, 0, 0).shape == (2, 64)
        with pytest.raises(ValueError, match=WEIGHT_ONLY_OP):
            op(mode.from_tensor(torch.randn(2, 96).to(torch.bfloat16)), mode.from_tensor(w),
               mode.from_tensor(w_scale), None, 0, 0)


def test_inference_weights_are_known_without_a_version_counter():
    from xpu_inductor_ext.kernels.weight_cache import tensor_key, version_or_none

    with torch.inference_mode():
        w = torch.randn(8, 8)
    v = torch.randn(8, 8)
    assert version_or_none(w) is None and version_or_none(v) == v._version
    assert tensor_key(w) == tensor_key(w[:]) and tensor_key(w) != tensor_key(v)


def _three_args_kernel(a_ptr, b_ptr, n, stride, SPLIT: tl_constexpr, MODE: tl_constexpr = 7):  # noqa: ARG001
    pass


def test_direct_relaunch_passes_what_the_jit_launch_passes(monkeypatch):
    """After a first launch, a call key's kernel is relaunched through the compiled kernel's own
    launcher with JITFunction.run's arguments: the 3-D grid, the stream, the function and its
    metadata, the hooks, then every parameter in signature order (constexprs from the launch's
    keywords or their defaults). Pinned against a recording fake, since the CPU has no launcher."""
    import types

    from triton.runtime import driver
    from triton.runtime.jit import JITFunction

    calls = []
    compiled = types.SimpleNamespace(
        metadata=types.SimpleNamespace(target=types.SimpleNamespace(backend="cuda")),
        run=lambda *args: calls.append(args), function="fn", packed_metadata="packed",
        launch_metadata=lambda grid, stream, *args: ("meta", grid, stream))
    fake_driver = types.SimpleNamespace(get_current_device=lambda: 3, get_current_stream=lambda device: f"stream{device}")
    monkeypatch.setattr(driver, "_active", fake_driver)
    monkeypatch.setattr(triton, "__version__", launches.DIRECT_LAUNCH_TRITON[0] + "0")
    launch = launches.KernelLaunch(JITFunction(_three_args_kernel), (5, 2), (10, 1), dict(SPLIT=4, num_warps=4))
    relaunch = launches.direct_launcher(launch, 4, compiled)
    relaunch(("a", "b", 10, 1))
    (args,) = calls
    assert args[:7] == (5, 2, 1, "stream3", "fn", "packed", ("meta", (5, 2, 1), "stream3"))
    assert args[9:] == ("a", "b", 10, 1, 4, 7)
    assert launches.direct_launcher(dataclasses_replace(launch, grid=lambda meta: (1,)), 4, compiled) is None
    assert launches.direct_launcher(launch, 4, types.SimpleNamespace(metadata=None)) is None  # not a CUDA kernel
    monkeypatch.setattr(triton, "__version__", "9.9.9")
    assert launches.direct_launcher(launch, 4, compiled) is None


@pytest.mark.parametrize("m, n, k", [(5, 96, 200), (3, 64, 512), (15, 40, 136)])
def test_masked_x_rows_past_m_leave_the_decode_output_unchanged(m, n, k):
    """The MMA decode kernel without a K split (the interpreter has one SM) masks the tile's x rows
    past M instead of reading copies of rows below M (ops.MASK_X_ROWS_UNSPLIT); those rows feed only
    accumulator rows that are never stored, so both ways give the same bits, ragged K included."""
    x = (torch.randn(m, k) / 10).to(torch.bfloat16)
    w, w_scale, *_ = make_weight(n, k, "channel")
    launch = ops.weight_only_launch(x, w, w_scale, None, 0, 0, SCALE_PER_CHANNEL)
    assert launch.kernel is kernels.fp8_weight_only_decode_kernel and launch.meta["MASK_X_ROWS"] is True
    outs = []
    for masked in (True, False):
        fixed = dataclasses_replace(launch, meta={**launch.meta, "MASK_X_ROWS": masked}, direct=None)
        tensors, out = ops.weight_only_operands(x, w, w_scale, None)
        outs.append(launches.run_launch(fixed, tensors, out, None))
    assert torch.equal(outs[0], outs[1])
    assert_close_rel(outs[0], weight_only_reference(x, w, w_scale, None, 0, 0), torch.bfloat16)
