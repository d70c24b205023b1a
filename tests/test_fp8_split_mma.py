"""The fp8 split MMA (weight-only decode with bf16 activations split into two e4m3 terms).

The rule it rests on is checked exhaustively in torch (every bf16 mantissa, exponents across the
range a row can span); the kernel runs through the Triton interpreter against float64 references;
its sm_90 build is checked for fp8 MMAs fed by asynchronous copies. The GPU check at full size,
with every fp8 code and with NaN/inf activations, is benchmarks/bench_triton_fp8.py.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

triton = pytest.importorskip("triton")
import triton.language as tl  # noqa: E402

from xpu_inductor_ext.kernels import platform  # noqa: E402
from xpu_inductor_ext.kernels.triton_fp8 import fp8_weight_only_mm, kernels, ops  # noqa: E402
from xpu_inductor_ext.kernels.triton_fp8.validation import SCALE_PER_CHANNEL  # noqa: E402
from test_triton_fp8 import (  # noqa: E402
    SCALE_MODES,
    assert_close_rel,
    make_weight,
    quantize_blocks,
    weight_only_reference,
)

E4M3 = torch.float8_e4m3fn
E5M2 = torch.float8_e5m2


def all_bf16_mantissas(exponent: int) -> torch.Tensor:
    """Every bf16 value of one binade, both signs, as float32."""
    mantissas = torch.arange(128, dtype=torch.float32)
    values = (1 + mantissas / 128) * 2.0 ** exponent
    return torch.cat([values, -values])


@pytest.mark.parametrize("spread", [0, 3, 7, 12])
def test_two_e4m3_terms_hold_every_bf16_value_exactly(spread):
    """The rule of kernels._split_bf16_rows, in torch: with the row's largest magnitude scaled into
    [2^SPLIT_TOP, 2^(SPLIT_TOP + 1)), every bf16 value down to 2^-12 of it is hi + lo * 2^-SPLIT_LO
    exactly, hi and lo being round-to-nearest e4m3 (neither saturates)."""
    top = ops.SPLIT_TOP
    scaled = all_bf16_mantissas(top - spread)
    hi = scaled.to(E4M3).float()
    lo = ((scaled - hi) * 2.0 ** ops.SPLIT_LO).to(E4M3).float()
    assert torch.equal(hi + lo * 2.0 ** -ops.SPLIT_LO, scaled)
    assert hi.abs().max() <= 2 ** (top + 1) < torch.finfo(E4M3).max
    assert lo.abs().max() < torch.finfo(E4M3).max


@triton.jit
def _split_probe(x_ptr, hi_ptr, lo_ptr, down_ptr, TOP: tl.constexpr, LO: tl.constexpr, ROWS: tl.constexpr,
                 COLS: tl.constexpr):
    offs = tl.arange(0, ROWS)[:, None] * COLS + tl.arange(0, COLS)[None, :]
    hi, lo, down, _ = kernels._split_bf16_rows(tl.load(x_ptr + offs), TOP, LO, True)
    tl.store(hi_ptr + offs, hi)
    tl.store(lo_ptr + offs, lo)
    tl.store(down_ptr + tl.arange(0, ROWS), down)


def test_split_rows_reconstruct_bf16_tiles_exactly():
    """The kernel helper (its interpreter form) on rows of very different magnitudes, zeros among them."""
    x = torch.randn(8, 64)
    x *= torch.tensor([1.0, 1e30, 1e-30, 0.0, 3e-5, 7e3, 1e-3, 2.0 ** 100])[:, None]
    x = x.to(torch.bfloat16)
    hi, lo, down = torch.empty(8, 64), torch.empty(8, 64), torch.empty(8)
    _split_probe[(1,)](x, hi, lo, down, ops.SPLIT_TOP, ops.SPLIT_LO, 8, 64)
    rebuilt = (hi.double() + lo.double() * 2.0 ** -ops.SPLIT_LO) * down.double()[:, None]
    assert torch.equal(rebuilt, x.double())
    assert (hi.abs().amax(1)[[0, 1, 2, 4, 5, 6, 7]] >= 2 ** ops.SPLIT_TOP).all()  # each row's largest scaled up


def split_plan(split_k=1, block_n=32, block_k=32):
    return ops.DecodePlan(ops.MMA_FP8_SPLIT, 16, block_n, block_k, split_k, 4, 1)


@pytest.mark.parametrize("scales", ["channel", "tensor", "block"])
@pytest.mark.parametrize("fmt", [E4M3, E5M2])
@pytest.mark.parametrize("split_k", [1, 3])
def test_split_kernel_matches_the_reference(scales, fmt, split_k):
    """M = 5 (rows wrap in the 16-row tile), ragged N and K (masked loads), bias, split-K."""
    m, n, k = 5, 200, 328
    x = (torch.randn(m, k) / 10).to(torch.bfloat16)
    if scales == "block":
        w, w_scale = quantize_blocks(torch.randn(n, k) / 10, 32, 32, fmt)
        blocks = (32, 32)
    else:
        w, w_scale, *blocks = make_weight(n, k, scales, dtype=fmt)
    bias = torch.randn(n).to(torch.bfloat16)
    out = ops.launch_weight_only(x, w, w_scale, bias, *blocks, SCALE_MODES[scales], plan=split_plan(split_k))
    assert_close_rel(out, weight_only_reference(x, w, w_scale, bias, *blocks), torch.bfloat16)


def test_split_kernel_keeps_each_row_exact_whatever_its_magnitude():
    """Rows of zeros, of 1e30 and of 1e-30: each within bf16 rounding of its own reference."""
    m, n, k = 4, 96, 256
    x = torch.randn(m, k) / 10
    x[1] = 0
    x[2] *= 1e30
    x[3] *= 1e-30
    x = x.to(torch.bfloat16)
    w, w_scale, _, _ = make_weight(n, k, "channel")
    out = ops.launch_weight_only(x, w, w_scale, None, 0, 0, SCALE_PER_CHANNEL, plan=split_plan())
    ref = weight_only_reference(x, w, w_scale, None, 0, 0)
    assert torch.equal(out[1], torch.zeros_like(out[1]))
    for row in (0, 2, 3):
        err = ((out[row].double() - ref[row]).norm() / ref[row].norm()).item()
        assert err < 1e-2, f"row {row}: relative error {err:.3g}"


def test_nan_and_inf_activations_give_ieee_results():
    """A program whose activations hold inf/NaN computes its tile again widened: NaN and inf land
    where float32 math puts them, and the other rows keep their values."""
    m, n, k = 4, 64, 128
    x = (torch.randn(m, k) / 10).to(torch.bfloat16)
    x[0, 5] = float("inf")
    x[2, 9] = float("nan")
    w, w_scale, _, _ = make_weight(n, k, "channel")
    out = ops.launch_weight_only(x, w, w_scale, None, 0, 0, SCALE_PER_CHANNEL, plan=split_plan(split_k=2))
    ref = x.float() @ (w.float() * w_scale).t()
    assert torch.equal(out.float().isnan(), ref.isnan()) and torch.equal(out.float().isinf(), ref.isinf())
    assert out.float().isinf()[0].any() and out.float().isnan()[2].all()
    finite = torch.isfinite(ref)
    assert ((out.float()[finite] - ref[finite]).norm() / ref[finite].norm()).item() < 1e-2


def test_split_plan_refuses_what_it_cannot_run():
    w, w_scale, _, _ = make_weight(64, 256, "channel")
    for x in (torch.randn(2, 256).to(torch.float16), torch.randn(17, 256).to(torch.bfloat16)):
        with pytest.raises(ValueError, match="split MMA needs bf16 activations, M <= block_m"):
            ops.launch_weight_only(x, w, w_scale, None, 0, 0, SCALE_PER_CHANNEL, plan=split_plan())


def test_decode_plan_takes_the_split_mma_for_block_scales_above_gemv():
    plan = ops.decode_plan(4, 8192, 8192, 128, 128, num_sms=132, split_mma=True)
    assert (plan.mma_mode, plan.block_n, plan.block_k, plan.split_k) == (ops.MMA_FP8_SPLIT, 128, 128, 4)
    assert ops.decode_plan(16, 4096, 14336, 128, 128, num_sms=132, split_mma=True).split_k == 8
    assert ops.decode_plan(16, 8192, 8192, 128, 64, num_sms=132, split_mma=True).block_k == 64
    # per-channel scales (0, 0): 128-column K-tiles
    plan = ops.decode_plan(16, 8192, 8192, 0, 0, num_sms=132, split_mma=True)
    assert (plan.mma_mode, plan.block_k) == (ops.MMA_FP8_SPLIT, 128)
    # where it lost or cannot run: GEMV sizes, 16-column scale blocks, not asked for
    assert ops.decode_plan(2, 8192, 8192, 128, 128, num_sms=132, split_mma=True).mma_mode == ops.MMA_FMA
    assert ops.decode_plan(16, 8192, 8192, 128, 16, num_sms=132, split_mma=True).mma_mode == ops.MMA_DOT
    assert ops.decode_plan(16, 8192, 8192, 128, 128, num_sms=132).mma_mode == ops.MMA_DOT
    # 8 tiles of 128 rows, K split at most 8 ways: 64 programs cannot fill 132 SMs
    assert ops.decode_plan(8, 1024, 4096, 128, 128, num_sms=132, split_mma=True).mma_mode == ops.MMA_DOT
    assert ops.decode_plan(8, 4096, 4096, 128, 128, num_sms=132, split_mma=True).mma_mode == ops.MMA_FP8_SPLIT


def test_block_scaled_decode_through_the_op_matches(monkeypatch):
    """fp8_weight_only_mm with block scales at M = 6, the split MMA forced available (as on an sm_90)."""
    monkeypatch.setattr(ops, "split_mma_available", lambda x, w, read_codes=True: True)
    chosen = []
    real_check = ops._check_decode_plan
    monkeypatch.setattr(ops, "_check_decode_plan", lambda plan, *a: (chosen.append(plan), real_check(plan, *a)))
    m, n, k = 6, 160, 512
    x = (torch.randn(m, k) / 10).to(torch.bfloat16)
    w, w_scale, *blocks = make_weight(n, k, "block")
    out = fp8_weight_only_mm(x, w, w_scale, None, *blocks)
    assert chosen and chosen[-1].mma_mode == ops.MMA_FP8_SPLIT
    assert_close_rel(out, weight_only_reference(x, w, w_scale, None, *blocks), torch.bfloat16)


@pytest.fixture
def on_fake_sm(monkeypatch):
    """A stand-in bf16 CUDA activation on a GPU of the capability set by the returned setter."""
    monkeypatch.setattr(ops, "_interpreting", lambda: False)

    def capability(cap):
        monkeypatch.setattr(platform, "cuda_capability", lambda device: cap)
    capability((9, 0))
    return SimpleNamespace(dtype=torch.bfloat16, device=torch.device("cuda", 0)), capability


def test_split_mma_is_available_for_bf16_on_hopper_and_finite_weights(on_fake_sm):
    x, capability = on_fake_sm
    w = torch.randn(32, 64).to(E5M2)
    assert ops.split_mma_available(x, w)
    assert not ops.split_mma_available(SimpleNamespace(dtype=torch.float16, device=x.device), w)
    assert not ops.split_mma_available(torch.randn(2, 64).to(torch.bfloat16), w)  # a CPU tensor
    w.view(torch.uint8)[1, 2] = 0x7C  # e5m2 inf: met by a zero lo term it would read NaN
    assert not ops.split_mma_available(x, w) and not ops.split_mma_available(x, w, read_codes=False)
    e4m3 = torch.randn(32, 64).to(E4M3)
    e4m3.view(torch.uint8)[1, 2] = 0x7F  # NaN stays NaN through both terms: the codes are not read
    assert ops.split_mma_available(x, e4m3) and ops.split_mma_available(x, e4m3, read_codes=False)
    capability((8, 9))  # fp8 MMA, but not measured there
    assert not ops.split_mma_available(x, torch.randn(32, 64).to(E4M3))


def test_split_kernel_feeds_fp8_mmas_from_async_copies():
    """Compiled for sm_90: fp8 tensor-core MMAs (QGMMA) whose weight tiles arrive by cp.async, and
    fp32 -> e4m3 conversions for the split; a branch inside the K loop would have stopped the
    pipelining (no cp.async), which is why the NaN/inf path sits after it."""
    env = dict(os.environ, TRITON_INTERPRET="0")
    script = Path(__file__).with_name("sass_counts.py")
    done = subprocess.run([sys.executable, str(script), "split"], capture_output=True, text=True, env=env,
                          timeout=300)
    if done.returncode:
        pytest.fail(f"compiling for sm_90 failed:\n{done.stderr[-3000:]}")
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    assert any(op.startswith("QGMMA") for op in counts)
    assert counts["cp.async"] > 0 and any(op.startswith("LDGSTS") for op in counts)
    assert any(op.startswith("F2FP.SATFINITE.E4M3") for op in counts)


def test_per_channel_split_mma_only_where_the_codes_cannot_be_read(on_fake_sm, monkeypatch):
    """Per-channel e4m3 at M = 8: the op (which checks the codes) keeps the bf16 MMA with the
    finite-only bit moves, faster there; a launch fixed without the weight takes the split MMA,
    which beat the exact bit moves (benchmarks/RESULTS.md, seventh session)."""
    x, _ = on_fake_sm
    x = SimpleNamespace(shape=(8, 8192), dtype=x.dtype, device=x.device)
    monkeypatch.setattr(ops, "_num_sms", lambda device: 132)
    w = SimpleNamespace(shape=(8192, 8192), dtype=E4M3)
    op_plan = ops.default_decode_plan(x, w, SCALE_PER_CHANNEL, 0, 0)
    fixed = ops.default_decode_plan(x, w, SCALE_PER_CHANNEL, 0, 0, read_codes=False)
    assert (op_plan.mma_mode, op_plan.widen) == (ops.MMA_DOT, None)
    assert (fixed.mma_mode, fixed.block_k) == (ops.MMA_FP8_SPLIT, ops.SPLIT_BLOCK_K)
    e5m2 = SimpleNamespace(shape=(8192, 8192), dtype=E5M2)
    exact = ops.default_decode_plan(x, e5m2, SCALE_PER_CHANNEL, 0, 0, read_codes=False)
    assert (exact.mma_mode, exact.widen) == (ops.MMA_DOT, ops.WIDEN_BITS_EXACT)
