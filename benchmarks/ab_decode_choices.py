"""Same-run A/Bs of the decode-time choices in `kernels/triton_fp8/ops.py` (CUDA, sm90+).

    PYTHONPATH=.:benchmarks python3 benchmarks/ab_decode_choices.py

1. Block-scaled (128 x 128) weight-only decode: the fp8 split MMA against the bf16-MMA decode plan,
   kernel alone (CUDA graphs over enough weight copies to defeat L2), with the copy floor, at the
   issue's shapes and the demo decoder's; the split plan is timed also where `decode_plan` would
   not take it (small N), which is how that bound was found.
2. The demo decoder at hidden 4096 (`bench_block_fp8.decoder_decode_step`): with the split MMA and
   without; then the block-scaled W8A8 kernel with tensor descriptors at every M (the default)
   against pointer loads below M = 17. Compiled with `graph_launch` off: the op's own choices.
3. Block W8A8 at M in {1, 8, 16}: the block-scaled kernel's decode plan against its prefill tiles
   (what M <= 16 ran before) and cuBLASLt's blockwise `_scaled_mm` (M a multiple of 4).
4. Programmatic dependent launch of the split-K reduction (`ops.PDL`) on and off, with the outputs
   compared bit for bit.
5. The MMA decode's K split where the tiles overfill a wave (N = 28672, 32000): the default
   (`ops.mma_split_wanted`) against no split.
6. Per-channel e4m3 decode, M in {3, 4, 8, 16}, as the launches fixed in the graph could run it:
   the exact bit moves (what they took, WIDEN_BITS_EXACT) against the finite-only moves (the op's,
   for weights without NaN/inf codes) and the fp8 split MMA (exact for every e4m3 code), each
   against the floor. Its first run (seventh session) put fixed launches on the split MMA.
7. The demo decoder at batch 1 without CUDA graphs (and replayed) as the defaults compile it,
   against option cpp_wrapper off and against fixed launches without the K split
   (`graph_launch.FIXED_SPLIT_K`), all four ways, bf16 under plain Inductor beside them: the
   sixth session's A/B (benchmarks/RESULTS.md), from a scratch script; first run in the eighth session.
8. Where the per-channel decode loses to the floor: the op's time against K at N = 14336 (M = 1, 4,
   16; bf16 `F.linear` beside it), fitted as a fixed cost plus bytes at a streaming rate.
The second session's numbers in benchmarks/RESULTS.md come from sections 1-2 as they were run
before the floor column was added; sections 3-5 record the third session's. `--only 3,4` runs some.
Exits cleanly without a GPU.
"""

import argparse
import copy
import dataclasses
import itertools
import os
import sys
from unittest import mock

import torch

from xpu_inductor_ext.config import ENV_PREFIX

SHAPES = [(8192, 8192), (14336, 4096), (4096, 14336), (4096, 4096), (1024, 4096), (28672, 4096)]  # (N, K)
MS = (4, 8, 16)
BLOCK = 128
POINTER_LOADS_BELOW_M = 17  # the earlier DESCRIPTOR_MIN_M


def split_plan(ops, m, n, k, num_sms):
    """The split MMA's plan for these sizes, also where decode_plan would not choose it."""
    plan = ops.decode_plan(m, n, k, BLOCK, BLOCK, num_sms, split_mma=True)
    if plan.mma_mode == ops.MMA_FP8_SPLIT:
        return plan
    tiles = -(-n // ops.SPLIT_BLOCK_N)
    max_split = max(1, -(-k // (ops.SPLIT_BLOCK_K * ops.SPLIT_K_MIN_ITERS)))
    split = max(1, min(max_split, round(ops.MMA_PROGRAMS_PER_SM * num_sms / tiles)))
    return ops.DecodePlan(ops.MMA_FP8_SPLIT, ops.DECODE_BLOCK_M, ops.SPLIT_BLOCK_N, ops.SPLIT_BLOCK_K, split,
                          ops.DECODE_NUM_WARPS, ops.DECODE_NUM_STAGES)


def kernel_ab(bt, ops, ceil):
    from xpu_inductor_ext.kernels.triton_fp8.validation import SCALE_BLOCK

    sms = torch.cuda.get_device_properties(0).multi_processor_count
    print("block-scaled weight-only decode, us: split MMA / bf16-MMA plan (ratio); floor; split / floor")
    for (n, k), m in itertools.product(SHAPES, MS):
        copies = weight_copies(bt, n, k, BLOCK, BLOCK)
        x = (torch.randn(m, k, device="cuda") / 10).to(torch.bfloat16)
        times = []
        for plan in (split_plan(ops, m, n, k, sms), ops.decode_plan(m, n, k, BLOCK, BLOCK, sms)):
            fns = [lambda w=w, s=s, plan=plan: ops.launch_weight_only(x, w, s, None, BLOCK, BLOCK, SCALE_BLOCK, plan=plan)
                   for w, s in copies]
            times.append(1e3 * bt.timed_graph(fns, rep=20))
        floor_us = n * k / ceil["copy_gbs"] / 1e3
        print(f"  M={m:2d} N={n:5d} K={k:5d}: {times[0]:6.1f} / {times[1]:6.1f} ({times[0] / times[1]:.3f}); "
              f"{floor_us:5.1f}; {times[0] / floor_us:.2f}", flush=True)


GRAPH_LAUNCH_ENV = ENV_PREFIX + "GRAPH_LAUNCH"  # option graph_launch, as load_config reads it


def decoder_ab(bb, ops):
    """The decoder under the op's own choices (split MMA on/off, W8A8 pointer loads). Launches fixed
    in the graph (option graph_launch) would ignore both, so the section turns them off."""
    with mock.patch.dict(os.environ, {GRAPH_LAUNCH_ENV: "0"}):
        for label, available in (("with the split MMA", ops.split_mma_available),
                                  ("without it", lambda x, w, read_codes=True: False)):
            with mock.patch.object(ops, "split_mma_available", available):
                ops.launch_cache.clear()  # launches built under the other choice
                print(f"decoder, {label}:\n{bb.decoder_decode_step()}", flush=True)
        with mock.patch.object(ops, "DESCRIPTOR_MIN_M", POINTER_LOADS_BELOW_M):
            ops.launch_cache.clear()
            print(f"decoder, block-scaled W8A8 with pointer loads below M = {POINTER_LOADS_BELOW_M}:\n"
                  f"{bb.decoder_decode_step()}", flush=True)
        ops.launch_cache.clear()


W8A8_SHAPES = [(4096, 4096), (6144, 4096), (14336, 4096), (4096, 14336), (8192, 8192)]  # (N, K)


def weight_copies(bt, n, k, block_rows, block_cols):
    """Enough fp8 weight copies (w, scale per [block_rows, block_cols] block) to defeat L2."""
    return [bt.quantize_blocks(torch.randn(n, k, device="cuda") / 10, block_rows, block_cols)
            for _ in range(max(2, bt.cdiv(bt.L2_DEFEAT_BYTES, n * k)))]


def per_channel_copies(bt, n, k):
    """Enough per-channel fp8 weight copies (w, scale [N, 1]) to defeat L2."""
    return weight_copies(bt, n, k, 1, k)


def block_w8a8_ab(bt, ops, ceil):
    prefill_tiles = ops.tile_config(64, 128, 4, 4, pre_hook=ops._set_descriptor_blocks, DESC=True)
    print("block W8A8 decode, us: decode plan / prefill tiles / cuBLASLt blockwise; floor")
    for (n, k), m in itertools.product(W8A8_SHAPES, (1, 8, 16)):
        copies = weight_copies(bt, n, k, BLOCK, BLOCK)
        a, sa = bt.quantize_blocks(torch.randn(m, k, device="cuda") / 10, 1, BLOCK)

        def ours(config=None):
            return [lambda w=w, s=s: ops.launch_block_scaled(a, w, sa, s, None, torch.bfloat16, BLOCK, BLOCK,
                                                             config=config) for w, s in copies]
        times = [1e3 * bt.timed_graph(ours(), rep=20), 1e3 * bt.timed_graph(ours(prefill_tiles), rep=20)]
        sa_cm = sa.t().contiguous().t()
        times.append(float("nan") if m % 4 else 1e3 * bt.timed_graph(
            [lambda w=w, s=s: torch._scaled_mm(a, w.t(), sa_cm, s.t(), out_dtype=torch.bfloat16) for w, s in copies],
            rep=20))
        print(f"  M={m:2d} N={n:5d} K={k:5d}: {times[0]:5.1f} / {times[1]:5.1f} / {times[2]:5.1f}; "
              f"{n * k / ceil['copy_gbs'] / 1e3:5.1f}", flush=True)


def pdl_ab(bt, ops, ceil):
    from xpu_inductor_ext.kernels.triton_fp8.validation import SCALE_PER_CHANNEL

    print("split-K reduction by PDL, us: on / off (ratio); outputs equal bit for bit")
    for n, k in W8A8_SHAPES:
        channel = per_channel_copies(bt, n, k)
        blocks = [bt.quantize_blocks(torch.randn(n, k, device="cuda") / 10, BLOCK, BLOCK) for _ in channel]
        cases = {}
        for m in (4, 16):
            x = torch.randn(m, k, device="cuda").bfloat16()
            cases[f"per-channel M={m}"] = [lambda x=x, w=w, s=s: ops.launch_weight_only(x, w, s, None, 0, 0, SCALE_PER_CHANNEL)
                                           for w, s in channel]
        for m in (1, 16):
            a, sa = bt.quantize_blocks(torch.randn(m, k, device="cuda") / 10, 1, BLOCK)
            cases[f"W8A8 M={m}"] = [lambda a=a, sa=sa, w=w, s=s: ops.launch_block_scaled(a, w, sa, s, None, torch.bfloat16,
                                                                                          BLOCK, BLOCK)
                                    for w, s in blocks]
        for name, fns in cases.items():
            result = {}
            for pdl in (True, False):
                ops.PDL = pdl
                result[pdl] = (1e3 * bt.timed_graph(fns, rep=20), fns[0]())
            ops.PDL = True
            same = torch.equal(result[True][1], result[False][1])
            on, off = result[True][0], result[False][0]
            print(f"  N={n:5d} K={k:5d} {name:16s}: {on:5.1f} / {off:5.1f} ({on / off:.3f}); "
                  f"{'equal' if same else 'DIFFERENT'}", flush=True)


def wide_split_ab(bt, ops, ceil):
    from xpu_inductor_ext.kernels.triton_fp8.validation import SCALE_PER_CHANNEL

    print("per-channel MMA decode at wide N, us: default split / no split; floor")
    for (n, k), m in itertools.product([(28672, 4096), (32000, 4096)], (4, 16)):
        copies = per_channel_copies(bt, n, k)
        x = torch.randn(m, k, device="cuda").bfloat16()
        default = ops.default_decode_plan(x, copies[0][0], SCALE_PER_CHANNEL, 0, 0)
        times = [1e3 * bt.timed_graph([lambda w=w, s=s, p=p: ops.launch_weight_only(x, w, s, None, 0, 0, SCALE_PER_CHANNEL,
                                                                                    plan=p) for w, s in copies], rep=20)
                 for p in (default, dataclasses.replace(default, split_k=1))]
        print(f"  M={m:2d} N={n:5d} K={k:5d}: {times[0]:5.1f} (split {default.split_k}) / {times[1]:5.1f}; "
              f"{n * k / ceil['copy_gbs'] / 1e3:5.1f}", flush=True)


def fixed_per_channel_ab(bt, ops, ceil):
    from xpu_inductor_ext.kernels.triton_fp8.validation import SCALE_PER_CHANNEL

    sms = torch.cuda.get_device_properties(0).multi_processor_count
    print("per-channel e4m3 decode, us (x floor): exact bit moves / finite bit moves / split MMA")
    for (n, k), m in itertools.product(SHAPES[:3], (3, 4, 8, 16)):
        copies = per_channel_copies(bt, n, k)
        x = torch.randn(m, k, device="cuda").bfloat16()
        default = ops.default_decode_plan(x, copies[0][0], SCALE_PER_CHANNEL, 0, 0)
        plans = (dataclasses.replace(default, widen=ops.WIDEN_BITS_EXACT), dataclasses.replace(default, widen=ops.WIDEN_BITS),
                 split_plan(ops, m, n, k, sms))  # its 128-wide K-tiles need no block scales
        floor = n * k / ceil["copy_gbs"] / 1e3
        times = [1e3 * bt.timed_graph([lambda w=w, s=s, p=p: ops.launch_weight_only(x, w, s, None, 0, 0, SCALE_PER_CHANNEL,
                                                                                    plan=p) for w, s in copies], rep=20)
                 for p in plans]
        print(f"  M={m:2d} N={n:5d} K={k:5d}: " + " / ".join(f"{t:5.1f} ({t / floor:.2f}x)" for t in times), flush=True)


# K = 16384 left out: the same launch ran 62-79 us there across runs on an H200 (RESULTS, eighth session)
STREAM_N, STREAM_KS = 14336, (1024, 2048, 4096, 8192)


def fixed_cost_fit(sizes_bytes, times_us):
    """Least squares `time = fixed + bytes / rate`: (fixed µs, rate GB/s)."""
    n = len(sizes_bytes)
    mean_b, mean_t = sum(sizes_bytes) / n, sum(times_us) / n
    slope = (sum((b - mean_b) * (t - mean_t) for b, t in zip(sizes_bytes, times_us))
             / sum((b - mean_b) ** 2 for b in sizes_bytes))
    return mean_t - slope * mean_b, 1e-3 / slope


def streaming_rate_ab(bt, ops, ceil):
    from xpu_inductor_ext.kernels.triton_fp8.validation import SCALE_PER_CHANNEL

    print(f"per-channel decode against K at N = {STREAM_N}, us (floor); fit: fixed cost + weight bytes at a rate")
    rows = {}  # name -> (bytes per weight, times at STREAM_KS)
    for k in STREAM_KS:
        copies = per_channel_copies(bt, STREAM_N, k)
        bf16 = [w.to(torch.bfloat16) * s.to(torch.bfloat16) for w, s in copies[:max(2, len(copies) // 2)]]
        line = []
        for m in (1, 4, 16):
            x = (torch.randn(m, k, device="cuda") / 10).bfloat16()
            t = 1e3 * bt.timed_graph([lambda w=w, s=s: ops.launch_weight_only(x, w, s, None, 0, 0, SCALE_PER_CHANNEL)
                                      for w, s in copies], rep=20)
            plan = ops.default_decode_plan(x, copies[0][0], SCALE_PER_CHANNEL, 0, 0)
            rows.setdefault(f"fp8 M={m:2d}", (1, []))[1].append(t)
            line.append(f"M={m} {t:5.1f} (split {plan.split_k})")
        x = (torch.randn(16, k, device="cuda") / 10).bfloat16()
        t = 1e3 * bt.timed_graph([lambda w=w: torch.nn.functional.linear(x, w) for w in bf16], rep=20)
        rows.setdefault("bf16 F.linear M=16", (2, []))[1].append(t)
        print(f"  K={k:5d}: " + ", ".join(line) + f"; bf16 M=16 {t:5.1f}; fp8 floor {STREAM_N * k / ceil['copy_gbs'] / 1e3:5.1f}",
              flush=True)
    for name, (per_weight, times) in rows.items():
        fixed, rate = fixed_cost_fit([per_weight * STREAM_N * k for k in STREAM_KS], times)
        print(f"  {name}: fixed {fixed:4.1f} us, streaming {rate:5.0f} GB/s ({rate / ceil['copy_gbs']:.2f} of copy)")


@torch.inference_mode()
def host_code_ab(bb, ops):
    from xpu_inductor_ext.kernels.triton_fp8 import graph_launch

    cfg = bb.DecoderConfig(vocab=32000, hidden=4096, layers=4, heads=32, kv_heads=8, intermediate=14336)
    dense = bb.build_decoder(cfg, device="cuda")
    tokens = torch.randint(0, cfg.vocab, (1, 1), device="cuda")
    torch._dynamo.reset()
    plain = torch.compile(dense)
    print("decoder batch 1, ms: no-graph step (stream_ms) / graph replay")
    print(f"  bf16 plain Inductor: {bb.stream_ms(lambda: plain(tokens)):.3f} / {bb.graph_ms([lambda: plain(tokens)]):.3f}")
    for mode in ("weight_only", "dynamic"):
        model = copy.deepcopy(dense)
        bb.convert_linears_to_fp8(model, mode=mode, scale="block")
        for split, cpp in itertools.product((True, False), (True, False)):
            with mock.patch.object(graph_launch, "FIXED_SPLIT_K", split):  # read at compile time (the first call)
                compiled = bb.compile_quant(model, cpp_wrapper=cpp)
                err = bb.rel(compiled(tokens), model(tokens))
                print(f"  {mode}, K split {'on' if split else 'off'}, {'C++' if cpp else 'Python'} host code: "
                      f"{bb.stream_ms(lambda: compiled(tokens)):.3f} / {bb.graph_ms([lambda: compiled(tokens)]):.3f} "
                      f"(rel err {err:.1e})", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="1,2,3,4,5,6,7,8", help="comma-separated sections to run")
    sections = {int(s) for s in parser.parse_args().only.split(",")}
    if not torch.cuda.is_available():
        print("ab_decode_choices: no CUDA GPU here; nothing to measure")
        return 0
    import bench_block_fp8 as bb
    import bench_triton_fp8 as bt
    from xpu_inductor_ext.kernels.triton_fp8 import ops

    print(f"device {torch.cuda.get_device_name()}, torch {torch.__version__}")
    torch.manual_seed(0)
    ceil = bt.measure_ceilings()
    with bb.many_compiles():  # sections 2 and 7 compile the decoder many ways
        if 1 in sections:
            kernel_ab(bt, ops, ceil)
        if 2 in sections:
            decoder_ab(bb, ops)
        if 7 in sections:
            host_code_ab(bb, ops)
        for number, section in ((3, block_w8a8_ab), (4, pdl_ab), (5, wide_split_ab), (6, fixed_per_channel_ab),
                                (8, streaming_rate_ab)):
            if number in sections:
                section(bt, ops, ceil)
    return 0


if __name__ == "__main__":
    sys.exit(main())
