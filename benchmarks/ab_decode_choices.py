"""Same-run A/B of two decode-time choices in `kernels/triton_fp8/ops.py` (CUDA, sm90+).

    PYTHONPATH=.:benchmarks python3 benchmarks/ab_decode_choices.py

1. Block-scaled (128 x 128) weight-only decode: the fp8 split MMA against the bf16-MMA decode plan,
   kernel alone (CUDA graphs over enough weight copies to defeat L2), with the copy floor, at the
   issue's shapes and the demo decoder's; the split plan is timed also where `decode_plan` would
   not take it (small N), which is how that bound was found.
2. The demo decoder at hidden 4096 (`bench_block_fp8.decoder_decode_step`): with the split MMA and
   without; then the block-scaled W8A8 kernel with tensor descriptors at every M (the default)
   against pointer loads below M = 17.
The numbers in benchmarks/RESULTS.md (2026-12-01, second session) come from this script's run
before the floor column was added. Exits cleanly without a GPU.
"""

import itertools
import sys

import torch

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
        copies = [bt.quantize_blocks(torch.randn(n, k, device="cuda") / 10, BLOCK, BLOCK)
                  for _ in range(max(2, bt.cdiv(bt.L2_DEFEAT_BYTES, n * k)))]
        x = (torch.randn(m, k, device="cuda") / 10).to(torch.bfloat16)
        times = []
        for plan in (split_plan(ops, m, n, k, sms), ops.decode_plan(m, n, k, BLOCK, BLOCK, sms)):
            fns = [lambda w=w, s=s, plan=plan: ops.launch_weight_only(x, w, s, None, BLOCK, BLOCK, SCALE_BLOCK, plan=plan)
                   for w, s in copies]
            times.append(1e3 * bt.timed_graph(fns, rep=20))
        floor_us = n * k / ceil["copy_gbs"] / 1e3
        print(f"  M={m:2d} N={n:5d} K={k:5d}: {times[0]:6.1f} / {times[1]:6.1f} ({times[0] / times[1]:.3f}); "
              f"{floor_us:5.1f}; {times[0] / floor_us:.2f}", flush=True)


def decoder_ab(bb, ops):
    chosen = ops.split_mma_available
    for label, available in (("with the split MMA", chosen), ("without it", lambda x, w: False)):
        ops.split_mma_available = available
        print(f"decoder, {label}:\n{bb.decoder_decode_step()}", flush=True)
    ops.split_mma_available = chosen
    default_min_m = ops.DESCRIPTOR_MIN_M
    ops.DESCRIPTOR_MIN_M = POINTER_LOADS_BELOW_M
    print(f"decoder, block-scaled W8A8 with pointer loads below M = {POINTER_LOADS_BELOW_M}:\n"
          f"{bb.decoder_decode_step()}", flush=True)
    ops.DESCRIPTOR_MIN_M = default_min_m


def main() -> int:
    if not torch.cuda.is_available():
        print("ab_decode_choices: no CUDA GPU here; nothing to measure")
        return 0
    import bench_block_fp8 as bb
    import bench_triton_fp8 as bt
    from xpu_inductor_ext.kernels.triton_fp8 import ops

    print(f"device {torch.cuda.get_device_name()}, torch {torch.__version__}")
    torch.manual_seed(0)
    kernel_ab(bt, ops, bt.measure_ceilings())
    decoder_ab(bb, ops)
    return 0


if __name__ == "__main__":
    sys.exit(main())
