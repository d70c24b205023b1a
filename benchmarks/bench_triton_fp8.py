"""Check and time the Triton FP8 kernels on a CUDA GPU beside the paths users have today.

    PYTHONPATH=. python3 benchmarks/bench_triton_fp8.py [--sweep] [--out DIR]

1. Ceilings of this GPU in this run: device-to-device copy bandwidth (read + write), bf16 matmul
   8192^3, fp8 `_scaled_mm` tensorwise 8192^3.
2. Correctness at full size against float32 references (outputs poisoned with NaN first).
3. Tables: weight-only FP8 at decode (M = 1, 4, 16) and block-scaled W8A8 at prefill
   (M = 2048, 8192), each with eager dequant-then-linear, plain Inductor of it, bf16 `F.linear`,
   cuBLASLt `_scaled_mm` and the floor, plus a torch.compile check of both ops.
   Decode paths are timed as CUDA-graph replays (no launch overhead) rotating through enough
   weight copies to defeat L2; prefill with `triton.testing.do_bench` (L2 flushed per call).
`--sweep` instead times launch-plan and config candidates (for tuning ops.py). Exits cleanly
without a GPU.
"""

import argparse
import datetime
import itertools
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

SHAPES = [(8192, 8192), (14336, 4096), (4096, 14336)]  # (N, K)
DECODE_MS = [1, 4, 16]
SWEEP_DECODE_MS = [1, 2, 3, 4, 8, 16]
PREFILL_MS = [2048, 8192]
GROUP = 128
FP8 = torch.float8_e4m3fn
ACT = torch.bfloat16
L2_DEFEAT_BYTES = 256 << 20  # rotate weight copies until this many bytes are in the cycle
CEILING_SIZE = 8192
COPY_BYTES = 1 << 30
WARMUP_MS, REP_MS = 10, 40
SWEEP_REP_MS = 10
SWEEP_DEADLINE_S = 480  # stop sweeping new shapes after this many seconds
TOL_BF16 = 1e-2
FP8_MMA_TOL = 5e-4


def cdiv(a, b):
    return (a + b - 1) // b


def quantize_blocks(t, block_rows, block_cols):
    """amax/448 quantization per [block_rows, block_cols] block (dims assumed multiples)."""
    rows, cols = t.shape
    blocks = t.float().reshape(rows // block_rows, block_rows, cols // block_cols, block_cols)
    scale = blocks.abs().amax(dim=(1, 3)).clamp_min(1e-12) / torch.finfo(FP8).max
    q = (blocks / scale[:, None, :, None]).to(FP8).reshape(rows, cols)
    return q, scale


def expand(scale, block_rows, block_cols):
    return scale.repeat_interleave(block_rows, 0).repeat_interleave(block_cols, 1)


def rel_err(out, ref):
    return ((out.float() - ref.float()).norm() / ref.float().norm()).item()


def poison_allocator(shape, dtype):
    """Free a NaN tensor of the output's size, so the op's output likely reuses it: unwritten shows up."""
    torch.full(shape, float("nan"), dtype=dtype, device="cuda")


def timed_prefill(fn):
    from triton.testing import do_bench

    return do_bench(fn, warmup=WARMUP_MS, rep=REP_MS, return_mode="median")


def timed_graph(fns, rep=REP_MS):
    """Median ms per call of CUDA-graph replays cycling through `fns` (one per input copy)."""
    from triton.testing import do_bench_cudagraph

    cycle = itertools.cycle(fns)
    return do_bench_cudagraph(lambda: next(cycle)(), rep=rep, return_mode="median")


def guarded(timer, fn_or_fns):
    """timer(fn_or_fns), or NaN with a printed reason when that path fails on this setup."""
    try:
        return timer(fn_or_fns)
    except Exception as exc:
        print(f"  (path failed: {type(exc).__name__}: {str(exc)[:200]})")
        return float("nan")


def measure_ceilings():
    src = torch.randn(COPY_BYTES // 4, device="cuda")
    dst = torch.empty_like(src)
    copy_ms = timed_prefill(lambda: dst.copy_(src))
    a = torch.randn(CEILING_SIZE, CEILING_SIZE, device="cuda", dtype=ACT)
    b = torch.randn(CEILING_SIZE, CEILING_SIZE, device="cuda", dtype=ACT)
    flops = 2 * CEILING_SIZE ** 3
    bf16_ms = timed_prefill(lambda: a @ b)
    a8, b8 = a.to(FP8), b.to(FP8)
    one = torch.ones((), device="cuda")
    fp8_ms = timed_prefill(lambda: torch._scaled_mm(a8, b8.t(), scale_a=one, scale_b=one, out_dtype=ACT))
    ceil = dict(copy_gbs=2 * COPY_BYTES / copy_ms / 1e6, bf16_tflops=flops / bf16_ms / 1e9,
                fp8_tflops=flops / fp8_ms / 1e9)
    print(f"ceilings: copy {ceil['copy_gbs']:.0f} GB/s (read+write), bf16 mm {ceil['bf16_tflops']:.0f} TFLOP/s, "
          f"fp8 _scaled_mm tensorwise {ceil['fp8_tflops']:.0f} TFLOP/s (8192^3)")
    return ceil


def make_weight(n, k, copies=1):
    """fp8 per-channel weights ([N, K], [N, 1] scale) and their unquantized bf16 sources."""
    out = []
    for _ in range(copies):
        wf = torch.randn(n, k, device="cuda") / 10
        w, s = quantize_blocks(wf, 1, k)
        out.append((w, s, wf.to(ACT)))
    return out


def make_block_operands(m, n, k):
    a, a_s = quantize_blocks(torch.randn(m, k, device="cuda") / 10, 1, GROUP)
    b, b_s = quantize_blocks(torch.randn(n, k, device="cuda") / 10, GROUP, GROUP)
    return a, b, a_s, b_s


def dequant_linear(x, w, s):
    return F.linear(x, (w.float() * s).to(x.dtype))


def dequant_block_mm(a, b, a_s, b_s):
    a_deq = (a.float() * expand(a_s, 1, GROUP)).to(ACT)
    b_deq = (b.float() * expand(b_s, GROUP, GROUP)).to(ACT)
    return a_deq @ b_deq.t()


def scaled_mm_block(a, b, a_s, b_s):
    return torch._scaled_mm(a, b.t(), scale_a=a_s.t().contiguous().t(), scale_b=b_s.t(), out_dtype=ACT)


def check_every_fp8_code(tf):
    """Each of the 256 codes of e4m3fn and e5m2 through every weight-only launch path (GEMV at M = 1,
    2, the MMA decode kernel at M = 16, the tiled kernel at M = 64, the fp8 split MMA, each
    widening forced), read back exactly: w[n, 0] is code n and w[n, 1:] = 0, x[:, 0] = 1, so
    out[m, n] = value(code n). NaN/inf codes are checked too (NaN where the code is NaN, the same
    inf), except where a path is known to read them otherwise: the bit moves (WIDEN_BITS, taken
    only for weights without such codes) read them as finite numbers, and the split MMA reads an
    e5m2 inf as NaN (not taken for e5m2 weights holding one). The exact bit moves
    (WIDEN_BITS_EXACT, fixed launches) read them all. Returns the number of failures."""
    from xpu_inductor_ext.kernels.triton_fp8 import ops
    from xpu_inductor_ext.kernels.triton_fp8.validation import SCALE_PER_CHANNEL

    failures = 0
    n, k = 256, 512
    scale = torch.ones(n, 1, device="cuda")
    cast_plan = ops.DecodePlan(ops.MMA_DOT, 16, 32, 256, 1, 4, 3, widen=ops.WIDEN_CAST)
    exact_plan = ops.DecodePlan(ops.MMA_DOT_SWAPPED, 16, 64, 128, 2, 4, 4, widen=ops.WIDEN_BITS_EXACT, accumulators=2)
    bits_plan = ops.DecodePlan(ops.MMA_DOT, 16, 64, 128, 2, 4, 4, widen=ops.WIDEN_BITS, accumulators=2)
    split_plan = ops.DecodePlan(ops.MMA_FP8_SPLIT, 16, 64, 128, 2, 4, 4)
    labels = {None: "default plan", split_plan: "fp8 split MMA", cast_plan: "Triton's cast",
              exact_plan: "exact bit moves, swapped", bits_plan: "bit moves"}
    for fmt in (torch.float8_e4m3fn, torch.float8_e5m2):
        raw = torch.zeros(n, k, device="cuda", dtype=torch.uint8)
        raw[:, 0] = torch.arange(256, device="cuda", dtype=torch.int32).to(torch.uint8)
        w = raw.view(fmt)
        ref = w.float()[:, 0]
        finite = torch.isfinite(ref)
        for m, plan in ((1, None), (2, None), (16, None), (64, None), (4, split_plan), (16, cast_plan),
                        (4, exact_plan), (16, exact_plan), (16, bits_plan)):
            x = (torch.randn(m, k, device="cuda") / 10).to(ACT)
            x[:, 0] = 1
            out = ops.launch_weight_only(x, w, scale, None, 0, 0, SCALE_PER_CHANNEL, plan=plan).float()
            bad = int((out != ref)[:, finite].sum())
            exact = not (plan is bits_plan or (plan is split_plan and fmt == torch.float8_e5m2))
            special = out[:, ~finite]
            wrong = int((special.isnan() != ref[~finite].isnan()).sum()
                        + ((special != ref[~finite]) & ~ref[~finite].isnan()).sum())
            failures += bad > 0 or (exact and wrong > 0)
            specials = [f"{c:#04x}->{v:g}" for c, v in enumerate(out[0].tolist()) if not math.isfinite(ref[c])]
            status = "ok  " if not bad and (not exact or not wrong) else "FAIL"
            print(f"  {status} every {fmt} code, M={m}, {labels[plan]}: {bad} of {m * int(finite.sum())} finite reads "
                  f"differ; NaN/inf codes {'checked' if exact else 'not checked'}, {wrong} differ, read as "
                  f"{', '.join(specials[:4])}{', ...' if len(specials) > 4 else ''}")
    for fmt, code in ((torch.float8_e4m3fn, 0x7F), (torch.float8_e5m2, 0x7C)):  # NaN / inf in one weight
        raw = (torch.randn(n, k, device="cuda") / 10).to(fmt).view(torch.uint8)
        raw[3, 5] = code
        x = (torch.randn(16, k, device="cuda") / 10).to(ACT)
        out = tf.fp8_weight_only_mm(x, raw.view(fmt), scale, None)
        others = torch.cat([out[:, :3], out[:, 4:]], dim=1)
        ok = bool((~torch.isfinite(out[:, 3])).all()) and bool(torch.isfinite(others).all())
        failures += not ok
        print(f"  {'ok  ' if ok else 'FAIL'} a {fmt} weight holding code {code:#04x} at M=16: column 3 reads "
              f"{out[0, 3].item()}, the other columns finite")
    return failures


def check_correctness(tf):
    """Full-size checks against float32 math; returns the number of failures."""
    failures = 0

    def report(name, err, tol):
        nonlocal failures
        ok = err < tol  # NaN compares False
        failures += not ok
        print(f"  {'ok  ' if ok else 'FAIL'} {name}: rel err {err:.2e} (tol {tol:.0e})")

    print("correctness at full size:")
    for (n, k), m in itertools.product(SHAPES, (1, 16, 64)):
        (w, s, _), = make_weight(n, k)
        x = (torch.randn(m, k, device="cuda") / 10).to(ACT)
        poison_allocator((m, n), ACT)
        out = tf.fp8_weight_only_mm(x, w, s, None)
        report(f"weight-only per-channel M={m} N={n} K={k}", rel_err(out, x.float() @ (w.float() * s).t()), TOL_BF16)
    n, k = SHAPES[0]
    wb, sb = quantize_blocks(torch.randn(n, k, device="cuda") / 10, GROUP, GROUP)
    w_ref = wb.float() * expand(sb, GROUP, GROUP)
    cases = ((1, ACT, TOL_BF16), (16, ACT, TOL_BF16), (100, torch.float16, 2e-3), (4, torch.float32, 1e-5))
    for m, dtype, tol in cases:
        x = (torch.randn(m, k, device="cuda") / 10).to(dtype)
        bias = torch.randn(n, device="cuda")
        poison_allocator((m, n), dtype)
        out = tf.fp8_weight_only_mm(x, wb, sb, bias, GROUP, GROUP)
        report(f"weight-only 128x128 blocks + bias M={m} {dtype}", rel_err(out, x.float() @ w_ref.t() + bias), tol)
    for (n, k), (m, group) in itertools.product(SHAPES, ((2048, GROUP),)):
        a, b, a_s, b_s = make_block_operands(m, n, k)
        poison_allocator((m, n), ACT)
        out = tf.fp8_block_scaled_mm(a, b, a_s, b_s, None, ACT, group, group)
        ref = (a.float() * expand(a_s, 1, group)) @ (b.float() * expand(b_s, group, group)).t()
        report(f"block-scaled M={m} N={n} K={k}", rel_err(out, ref), TOL_BF16)
    m, n, k, group = 333, 1000, 1000, 256  # ragged everything
    a = torch.randn(m, k, device="cuda").to(FP8)
    b = torch.randn(n, k, device="cuda").to(FP8)
    a_s = torch.rand(m, cdiv(k, group), device="cuda") + 0.5
    b_s = torch.rand(cdiv(n, group), cdiv(k, group), device="cuda") + 0.5
    out = tf.fp8_block_scaled_mm(a, b, a_s, b_s, None, torch.float32, group, group)
    a_ref = a.float() * a_s.repeat_interleave(group, 1)[:, :k]
    b_ref = b.float() * b_s.repeat_interleave(group, 0)[:n].repeat_interleave(group, 1)[:, :k]
    # fp32 out: Hopper's fp8 MMA keeps ~14 mantissa bits inside each 128-deep K tile (DeepSeek-V3
    # reports the same; it is why partials are promoted to fp32 per group): ~1e-4, not fp32's 1e-6.
    report(f"block-scaled ragged M={m} N={n} K={k} group {group} fp32 out", rel_err(out, a_ref @ b_ref.t()),
           FP8_MMA_TOL)
    return failures


def check_compiled_ops(tf):
    """torch.compile of model code calling both ops (Inductor inlines the kernels) == eager."""
    n, k = 4096, 4096
    (w, s, _), = make_weight(n, k)
    a, b, a_s, b_s = make_block_operands(256, n, k)
    for m in (16, 64):
        x = (torch.randn(m, k, device="cuda") / 10).to(ACT)
        compiled = torch.compile(lambda x, w, s: tf.fp8_weight_only_mm(x, w, s, None) * 2)
        err = rel_err(compiled(x, w, s), tf.fp8_weight_only_mm(x, w, s, None) * 2)
        print(f"  torch.compile(weight-only) M={m}: rel err vs eager {err:.1e}")
    compiled = torch.compile(lambda *t: tf.fp8_block_scaled_mm(*t, None, ACT, GROUP, GROUP) + 1)
    err = rel_err(compiled(a, b, a_s, b_s), tf.fp8_block_scaled_mm(a, b, a_s, b_s, None, ACT, GROUP, GROUP) + 1)
    print(f"  torch.compile(block-scaled) M=256: rel err vs eager {err:.1e}")


def check_graph_launches():
    """Models compiled with backend="xpu_quant" whose decode launches Inductor makes itself
    (fixed in the graph; option graph_launch) against eager, and who launched each kernel.
    Returns the number of failures."""
    import xpu_inductor_ext
    from xpu_inductor_ext.nn import convert_linears_to_fp8

    failures = 0
    cases = [("weight_only", "channel", ACT, (1, 2), "inductor"), ("weight_only", "channel", torch.float16, (4, 16), "inductor"),
             ("weight_only", "block", ACT, (1, 2), "inductor"),
             ("weight_only", "channel", ACT, (4, 16), "inductor"), ("weight_only", "block", ACT, (4, 16), "inductor"),
             ("dynamic", "block", ACT, (1, 8, 16), "inductor")]
    for mode, scale, dtype, ms, expected in cases:
        for n, k, bias in ((4096, 4096, False), (1000, 1408, True)):
            if scale == "block" and (n % GROUP or k % GROUP):
                continue
            torch._dynamo.reset()
            model = torch.nn.Sequential(torch.nn.Linear(k, n, bias=bias)).to("cuda", dtype)
            convert_linears_to_fp8(model, mode=mode, scale=scale)
            compiled = torch.compile(model, backend="xpu_quant", dynamic=False)
            for m in ms:
                x = (torch.randn(m, k, device="cuda") / 10).to(dtype)
                with torch.inference_mode():
                    err = rel_err(compiled(x), model(x))
                launches = {e.get("launch", {}).get("by") for e in xpu_inductor_ext.reports()[-1]["fused"]}
                ok = err < 1e-2 and launches == {expected}
                failures += not ok
                print(f"  graph launch {mode}/{scale} {str(dtype)[6:]} M={m} N={n} K={k} bias={bias}: rel err vs eager "
                      f"{err:.1e}, launched by {sorted(map(str, launches))}{'' if ok else '  FAIL'}")
    return failures


def print_table(title, header, rows):
    print(f"\n{title}")
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    for row in [header, *rows]:
        print("  ".join(str(c).rjust(wd) for c, wd in zip(row, widths)))


def bench_weight_only(tf, ceil):
    compiled = torch.compile(dequant_linear)
    rows = []
    for n, k in SHAPES:
        copies = make_weight(n, k, copies=cdiv(L2_DEFEAT_BYTES, n * k))
        wb, sb = quantize_blocks(torch.randn(n, k, device="cuda") / 10, GROUP, GROUP)
        block_copies = [(wb, sb)] + [(wb.clone(), sb.clone()) for _ in range(len(copies) - 1)]
        floor_ms = n * k / ceil["copy_gbs"] / 1e6
        for m in DECODE_MS:
            x = (torch.randn(m, k, device="cuda") / 10).to(ACT)
            xq, xs = quantize_blocks(x, 1, k)
            t = {
                "ours": timed_graph([lambda w=w, s=s: tf.fp8_weight_only_mm(x, w, s, None) for w, s, _ in copies]),
                "ours_block": timed_graph([lambda w=w, s=s: tf.fp8_weight_only_mm(x, w, s, None, GROUP, GROUP)
                                           for w, s in block_copies]),
                "eager": guarded(timed_graph, [lambda w=w, s=s: dequant_linear(x, w, s) for w, s, _ in copies]),
                "inductor": guarded(timed_graph, [lambda w=w, s=s: compiled(x, w, s) for w, s, _ in copies]),
                "bf16": guarded(timed_graph, [lambda wf=wf: F.linear(x, wf) for _, _, wf in copies]),
                "scaled_mm": guarded(timed_graph, [
                    lambda w=w, s=s: torch._scaled_mm(xq, w.t(), scale_a=xs, scale_b=s.t(), out_dtype=ACT)
                    for w, s, _ in copies]),
            }
            rows.append([m, n, k, *(f"{t[c] * 1e3:.1f}" for c in t), f"{floor_ms * 1e3:.1f}",
                         f"{t['ours'] / floor_ms:.2f}", f"{t['bf16'] / t['ours']:.2f}"])
    print_table("weight-only FP8 (x bf16 [M, K], w e4m3 [N, K], per-channel scale), microseconds per call",
                ["M", "N", "K", "ours", "ours 128x128", "eager deq", "inductor", "bf16 linear", "scaled_mm row",
                 "floor", "ours/floor", "bf16/ours"], rows)


def bench_block_scaled(tf, ceil):
    compiled = torch.compile(dequant_block_mm)
    rows = []
    for (n, k), m in itertools.product(SHAPES, PREFILL_MS):
        a, b, a_s, b_s = make_block_operands(m, n, k)
        a16, b16 = a.to(ACT), b.to(ACT)
        flops = 2 * m * n * k
        t = {
            "ours": timed_prefill(lambda: tf.fp8_block_scaled_mm(a, b, a_s, b_s, None, ACT, GROUP, GROUP)),
            "scaled_mm": guarded(timed_prefill, lambda: scaled_mm_block(a, b, a_s, b_s)),
            "eager": guarded(timed_prefill, lambda: dequant_block_mm(a, b, a_s, b_s)),
            "inductor": guarded(timed_prefill, lambda: compiled(a, b, a_s, b_s)),
            "bf16": guarded(timed_prefill, lambda: F.linear(a16, b16)),
        }
        floor_ms = flops / ceil["fp8_tflops"] / 1e9
        rows.append([m, n, k, f"{flops / t['ours'] / 1e9:.0f}", f"{flops / t['scaled_mm'] / 1e9:.0f}",
                     f"{t['scaled_mm'] / t['ours']:.2f}", *(f"{t[c]:.3f}" for c in t), f"{floor_ms:.3f}",
                     f"{t['ours'] / floor_ms:.2f}"])
    print_table("block-scaled FP8 W8A8 (1x128 act groups, 128x128 weight blocks), bf16 out; times in ms",
                ["M", "N", "K", "ours TFLOP/s", "scaled_mm TFLOP/s", "ours vs scaled_mm", "ours", "scaled_mm",
                 "eager deq", "inductor", "bf16 linear", "floor", "ours/floor"], rows)


def print_autotune_choices():
    """The config each autotuned kernel settled on, per (N, K, M bucket)."""
    from xpu_inductor_ext.kernels.triton_fp8 import ops

    print("\nautotuner choices:")
    for name, kernel in (("block-scaled", ops.block_scaled_tuned_kernel()),
                         ("weight-only tiled", ops.weight_only_tiled_kernel())):
        for key, cfg in kernel.cache.items():
            print(f"  {name} (N, K, M bucket) = {key[:3]}: {cfg}")


SPLIT_TILES = [(64, 128, 4, 4), (128, 128, 4, 4), (256, 128, 8, 3), (128, 128, 8, 4)]  # BLOCK_N, BLOCK_K, warps, stages
SPLIT_SPLITS = (1, 2, 4, 8)


def split_candidates(ops, block_k_cap=None):
    """Plans of the fp8 split MMA (bf16 activations split into two e4m3 terms per K-tile, fp8
    weights fed to the MMA as they are). The best of a wider sweep on an H200 (2026-12-01; BLOCK_K
    256 and 6 stages were slower everywhere)."""
    return [ops.DecodePlan(ops.MMA_FP8_SPLIT, 16, bn, bk, split, warps, stages)
            for (bn, bk, warps, stages), split in itertools.product(SPLIT_TILES, SPLIT_SPLITS)
            if block_k_cap is None or bk <= block_k_cap]


def decode_candidates(m, ops):
    """Launch plans to sweep at decode: the CUDA-core GEMV over 1 or 2 activation rows (weight loads
    pipelined LOAD_STAGES deep); the MMA with one accumulator (both orientations) and with two
    (the decode kernel), widening by bit moves (WIDEN_BITS) or, for one plan, by Triton's cast."""
    Plan = ops.DecodePlan
    plans = []
    if m <= 2:
        for (bn, bk, warps), stages in itertools.product([(16, 512, 4), (8, 512, 4), (32, 256, 4)], (4, 6)):
            plans.append(Plan(ops.MMA_FMA, m, bn, bk, 1, warps, 1, stages))
    if m >= 2:
        plans.append(Plan(ops.MMA_DOT, 16, 32, 256, 1, 4, 4, widen=ops.WIDEN_CAST))
        for (mode, bn, bk, warps, stages), split in itertools.product(
                [(ops.MMA_DOT, 64, 256, 4, 3), (ops.MMA_DOT, 128, 128, 4, 4), (ops.MMA_DOT, 32, 256, 2, 4),
                 (ops.MMA_DOT_SWAPPED, 32, 256, 2, 4), (ops.MMA_DOT_SWAPPED, 32, 512, 2, 4)], (1, 2, 4)):
            plans.append(Plan(mode, 16, bn, bk, split, warps, stages, widen=ops.WIDEN_BITS))
        for (mode, bn, bk, warps, stages), split in itertools.product(
                [(ops.MMA_DOT, 64, 128, 4, 4), (ops.MMA_DOT, 64, 256, 4, 3), (ops.MMA_DOT, 32, 128, 2, 4),
                 (ops.MMA_DOT_SWAPPED, 32, 128, 2, 3), (ops.MMA_DOT_SWAPPED, 32, 256, 2, 4)], (1, 2, 4)):
            plans.append(Plan(mode, 16, bn, bk, split, warps, stages, widen=ops.WIDEN_BITS, accumulators=2))
    return plans


def block_decode_candidates(m, ops):
    """Plans for 128 x 128 block scales (a K-tile stays inside a scale block: BLOCK_K <= 128): GEMV
    at M <= 2, the MMA with one or two accumulators above."""
    if m > 2:
        return [ops.DecodePlan(ops.MMA_DOT, 16, bn, 128, split, warps, stages, widen=ops.WIDEN_BITS,
                               accumulators=acc)
                for (bn, warps, stages), split, acc in itertools.product(
                    [(64, 4, 4), (128, 4, 3), (32, 2, 4)], (1, 2, 4, 8), (1, 2))]
    return [ops.DecodePlan(ops.MMA_FMA, m, bn, bk, split, 4, 1, stages) for bn, bk, split, stages in (
        (16, 128, 1, 8), (32, 128, 1, 8), (64, 128, 1, 4), (64, 128, 2, 6), (32, 128, 2, 8))]


def sweep_weight_only(ceil, results, ms=SWEEP_DECODE_MS, family="all"):
    """Time every decode plan of decode_candidates(M) beside the default plan, per-channel scales;
    then plans for 128 x 128 block scales. family "split": the default plan, the bf16-MMA plan
    (where the default is the split MMA) and the fp8 split MMA's plans only."""
    from xpu_inductor_ext.kernels.triton_fp8 import ops
    from xpu_inductor_ext.kernels.triton_fp8.validation import SCALE_BLOCK, SCALE_PER_CHANNEL

    sms = torch.cuda.get_device_properties(0).multi_processor_count
    for n, k in SHAPES:
        channel = make_weight(n, k, copies=cdiv(L2_DEFEAT_BYTES, n * k))
        blocks = [quantize_blocks(torch.randn(n, k, device="cuda") / 10, GROUP, GROUP) for _ in channel]
        floor_us = n * k / ceil["copy_gbs"] / 1e3
        split_only = family == "split"
        sweeps = [(m, "channel", [(w, s) for w, s, _ in channel], SCALE_PER_CHANNEL, (0, 0),
                   split_candidates(ops) + ([] if split_only else decode_candidates(m, ops))) for m in ms]
        sweeps += [(m, "block", blocks, SCALE_BLOCK, (GROUP, GROUP),
                    split_candidates(ops, GROUP) + ([] if split_only else block_decode_candidates(m, ops)))
                   for m in (1, 4, 16) if m in ms]
        for m, label, copies, mode, blk, candidates in sweeps:
            x = (torch.randn(m, k, device="cuda") / 10).to(ACT)
            w0, s0 = copies[0]
            s_full = expand(s0, *blk)[:n, :k] if blk[0] else s0
            ref = x.float() @ (w0.float() * s_full).t()
            default = ops.default_decode_plan(x, w0, mode, *blk)  # what a call takes
            widened = ops.decode_plan(m, n, k, *blk, sms)  # the bf16-MMA plan (the baseline of the split MMA)
            timings = []
            for plan in dict.fromkeys([default, widened, *candidates]):
                def run(w, s, plan=plan):
                    return ops.launch_weight_only(x, w, s, None, *blk, mode, plan=plan)
                try:
                    err = rel_err(run(w0, s0), ref)
                    us = 1e3 * timed_graph([lambda w=w, s=s: run(w, s) for w, s in copies], rep=SWEEP_REP_MS)
                except Exception as exc:  # a plan that fails to compile is reported, not fatal
                    print(f"  plan {plan} failed: {type(exc).__name__}: {str(exc)[:200]}")
                    continue
                timings.append((us, err, plan))
                results.append(dict(kind="decode", scales=label, m=m, n=n, k=k, us=us, err=err, plan=plan.__dict__))
            timings.sort(key=lambda r: r[0])
            print(f"\nM={m} N={n} K={k} {label} scales: floor {floor_us:.1f} us", flush=True)
            for us, err, plan in timings[:6]:
                print(f"  {us:7.1f} us  {us / floor_us:.2f}x floor  err {err:.1e}  {plan}")
            for us, err, plan in timings:
                if plan == default:
                    print(f"  default: {us:.1f} us ({us / floor_us:.2f}x floor) {plan}")
                if plan == widened != default:
                    print(f"  bf16-MMA plan: {us:.1f} us ({us / floor_us:.2f}x floor) {plan}")
            for _, err, plan in timings:
                if not err < TOL_BF16:
                    print(f"  WRONG: err {err:.1e} {plan}")


def block_candidates(ops):
    """Pointer-load tiles, then tensor-descriptor (TMA) tiles; DESC falls back to pointers where TMA cannot load."""
    return [ops.tile_config(bm, bn, warps, stages, DESC=desc) for bm, bn, warps, stages, desc in (
        (64, 128, 4, 4, False), (128, 128, 8, 3, False), (64, 128, 4, 4, True), (128, 128, 8, 4, True),
        (128, 128, 8, 5, True), (64, 128, 4, 5, True), (64, 64, 4, 6, True))]


def sweep_block_scaled(results, start):
    from xpu_inductor_ext.kernels.triton_fp8 import ops

    for (n, k), m in itertools.product(SHAPES, PREFILL_MS):
        if time.time() - start > SWEEP_DEADLINE_S:
            print(f"\nblock M={m} N={n} K={k}: skipped (past {SWEEP_DEADLINE_S} s)")
            continue
        a, b, a_s, b_s = make_block_operands(m, n, k)
        flops = 2 * m * n * k
        ref = (a.float() * expand(a_s, 1, GROUP)) @ (b.float() * expand(b_s, GROUP, GROUP)).t()
        cublas = flops / guarded(timed_prefill, lambda: scaled_mm_block(a, b, a_s, b_s)) / 1e9
        timings = []
        for cfg in block_candidates(ops):
            def run(cfg=cfg):
                return ops.launch_block_scaled(a, b, a_s, b_s, None, ACT, GROUP, GROUP, config=cfg)
            try:
                err = rel_err(run(), ref)
                tflops = flops / timed_prefill(run) / 1e9
            except Exception as exc:
                print(f"  config {cfg} failed: {type(exc).__name__}: {str(exc)[:200]}")
                continue
            timings.append((tflops, err, cfg))
            results.append(dict(kind="block", m=m, n=n, k=k, tflops=tflops, err=err, cfg=str(cfg)))
        timings.sort(key=lambda r: -r[0])
        print(f"\nblock M={m} N={n} K={k}: _scaled_mm blockwise {cublas:.0f} TFLOP/s")
        for tflops, err, cfg in timings[:5]:
            print(f"  {tflops:6.0f} TFLOP/s  {tflops / cublas:.2f}x cuBLAS  err {err:.1e}  {cfg}")


def run_timing(args, tf, start: float) -> None:
    """The sweep `args.sweep` asks for (its JSON into `args.out`), else the kernel tables."""
    ceil = measure_ceilings()
    if args.sweep:
        results = []
        if args.sweep in ("decode", "all"):
            sweep_weight_only(ceil, results, args.ms, args.family)
            print(f"[{time.time() - start:.0f} s]")
        if args.sweep in ("block", "all"):
            sweep_block_scaled(results, start)
        if args.out:
            with open(os.path.join(args.out, "sweep.json"), "w") as f:
                json.dump(dict(ceilings=ceil, results=results), f, indent=1)
        return
    bench_weight_only(tf, ceil)
    print(f"[{time.time() - start:.0f} s]")
    bench_block_scaled(tf, ceil)
    print_autotune_choices()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", choices=("decode", "block", "all"), nargs="?", const="all",
                        help="time decode plans and/or block-scaled configs instead of the tables")
    parser.add_argument("--ms", type=lambda t: [int(v) for v in t.split(",")], default=SWEEP_DECODE_MS,
                        help="decode M values to sweep (comma-separated)")
    parser.add_argument("--family", choices=("all", "split"), default="all",
                        help="decode sweep: every plan family, or the default plan and the fp8 split MMA only")
    parser.add_argument("--out", default=os.environ.get("OUT"), help="folder for a JSON of the sweep results")
    parser.add_argument("--check", action="store_true", help="the correctness checks only, no timing")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench_triton_fp8: no CUDA GPU here; nothing to benchmark")
        return 0
    import triton

    from xpu_inductor_ext.kernels import triton_fp8 as tf

    start = time.time()
    print(f"device {torch.cuda.get_device_name()}, torch {torch.__version__}, triton {triton.__version__}, "
          f"{datetime.datetime.now().isoformat(timespec='seconds')}")
    torch.manual_seed(0)
    failures = check_every_fp8_code(tf) + check_correctness(tf) + check_graph_launches()
    print(f"[{time.time() - start:.0f} s]")
    guarded(check_compiled_ops, tf)
    if not args.check:
        run_timing(args, tf, start)
    print(f"\ndone in {time.time() - start:.0f} s; {failures} correctness failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
