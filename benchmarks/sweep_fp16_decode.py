"""Experiment (not yet timed): the weight-only decode MMA in fp16, against the default bf16 plan.

    PYTHONPATH=. python3 benchmarks/sweep_fp16_decode.py

Why: the default MMA decode kernel widens fp8 weights to bf16 with about two integer and FMA
instructions per element (kernels._widen_fp8) and stays at 1.36-1.47x the copy floor at M = 4..16
on an H200 (benchmarks/RESULTS.md, 2026-12-01). The GPU converts e4m3 to fp16 in one instruction
per two elements, but an fp16 MMA needs the bf16 activations in fp16's narrower range: here each
K-tile's activation rows are scaled by the power of two that puts their largest magnitude in
[2^14, 2^15), which is exact for every value within 2^24 of that largest one (the rest lose low
bits as fp16 subnormals, far below bf16's own rounding of the row), and the tile's partial product
is scaled back in fp32. Compiled for sm_90 on the CPU machine, this loop issues 2.7 instructions
per weight element at 128 x 128 tiles (4 warps) against 3.7 for the default plan.

Prints, per (N, K, M): the error of both against a float64 reference (random rows plus rows of
zeros, of 1e30 and of 1e-30 magnitude) and their CUDA-graph times over rotating weight copies.
Exits cleanly without a GPU.
"""

import itertools
import sys

import torch
import triton
import triton.language as tl

SHAPES = [(8192, 8192), (14336, 4096), (4096, 14336)]  # (N, K)
MS = [4, 16]
TILES = [(128, 128, 4, 3), (128, 128, 4, 4), (64, 256, 4, 3), (256, 64, 4, 3)]  # BLOCK_N, BLOCK_K, warps, stages
SPLITS = [1, 2, 4, 8]
L2_DEFEAT_BYTES = 256 << 20
FP16_TOP_EXPONENT = 14  # a tile row's largest magnitude is scaled into [2^14, 2^15)
EXPONENT_CLAMP = (-100, 127)  # rows of zeros (exponent -127) scale by 2^114 at most: no overflow


@triton.jit
def fp16_decode_kernel(x_ptr, w_ptr, scale_ptr, out_ptr, M, N, K, K_PER_SPLIT, stride_xm, stride_wn,
                       stride_os, stride_om, TOP: tl.constexpr, E_MIN: tl.constexpr, E_MAX: tl.constexpr,
                       BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """out[pid_k] = x[:, split] @ (w[:, split] * scale).T with x rescaled per (row, K-tile) into fp16."""
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    offs_m = tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rows_x = (offs_m % M).to(tl.int64)
    rows_w = (offs_n % N).to(tl.int64)
    k_begin = pid_k * K_PER_SPLIT
    k_end = tl.minimum(k_begin + K_PER_SPLIT, K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(k_begin, k_end, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        k_mask = offs_k[None, :] < k_end
        w = tl.load(w_ptr + rows_w[:, None] * stride_wn + offs_k[None, :], mask=k_mask, other=0.0,
                    eviction_policy="evict_first")
        x = tl.load(x_ptr + rows_x[:, None] * stride_xm + offs_k[None, :], mask=k_mask, other=0.0).to(tl.float32)
        exponent = ((tl.max(tl.abs(x), axis=1).to(tl.int32, bitcast=True) >> 23) & 0xFF) - 127
        exponent = tl.minimum(tl.maximum(exponent, E_MIN), E_MAX)
        up = ((127 + TOP - exponent) << 23).to(tl.float32, bitcast=True)
        down = ((127 - TOP + exponent) << 23).to(tl.float32, bitcast=True)
        part = tl.dot((x * up[:, None]).to(tl.float16), tl.trans(w.to(tl.float16)))
        acc += part * down[:, None]
    acc = acc * tl.load(scale_ptr + rows_w)[None, :]
    out_ptrs = out_ptr + pid_k.to(tl.int64) * stride_os + offs_m[:, None] * stride_om + offs_n[None, :]
    tl.store(out_ptrs, acc.to(out_ptr.dtype.element_ty), mask=(offs_m[:, None] < M) & (offs_n[None, :] < N))


def fp16_decode(x, w, scale, tile, split):
    from xpu_inductor_ext.kernels.triton_fp8 import ops

    block_n, block_k, warps, stages = tile
    m, k = x.shape
    n = w.shape[0]
    out = torch.empty((m, n), dtype=x.dtype, device=x.device)
    k_per_split, split = ops.split_k_ranges(k, split, block_k)
    target = out if split == 1 else torch.empty((split, m, n), dtype=torch.float32, device=x.device)
    fp16_decode_kernel[(triton.cdiv(n, block_n), split)](
        x, w, scale, target, m, n, k, k_per_split, x.stride(0), w.stride(0), m * n, target.stride(-2),
        TOP=FP16_TOP_EXPONENT, E_MIN=EXPONENT_CLAMP[0], E_MAX=EXPONENT_CLAMP[1],
        BLOCK_M=16, BLOCK_N=block_n, BLOCK_K=block_k, num_warps=warps, num_stages=stages)
    if split > 1:
        ops.reduce_split_k(target, None, out)
    return out


def activations(m, k):
    """Random rows, then (when M allows) rows of zeros, of 1e30 and of 1e-30 magnitude."""
    x = torch.randn(m, k, device="cuda") / 10
    for row, value in zip(range(1, m), (0.0, 1e30, 1e-30)):
        x[row] = x[row] * value if value else 0.0
    return x.to(torch.bfloat16)


def row_errors(out, ref):
    """Largest per-row relative error (rows of zeros: largest absolute value)."""
    errs = []
    for o, r in zip(out.double(), ref):
        norm = r.norm().item()
        errs.append(((o - r).norm() / norm).item() if norm else o.abs().max().item())
    return max(errs)


def main() -> int:
    if not torch.cuda.is_available():
        print("sweep_fp16_decode: no CUDA GPU here; nothing to measure")
        return 0
    from triton.testing import do_bench_cudagraph

    from xpu_inductor_ext.kernels.triton_fp8 import fp8_weight_only_mm

    torch.manual_seed(0)
    for (n, k), m in itertools.product(SHAPES, MS):
        copies = [((torch.randn(n, k, device="cuda") / 10).to(torch.float8_e4m3fn),
                   torch.rand(n, 1, device="cuda") + 0.5) for _ in range(max(1, L2_DEFEAT_BYTES // (n * k)))]
        x = activations(m, k)
        w, s = copies[0]
        ref = x.double() @ (w.double() * s.double()).t()

        def timed(fn):
            cycle = itertools.cycle([lambda w=w, s=s: fn(x, w, s) for w, s in copies])
            return 1e3 * do_bench_cudagraph(lambda: next(cycle)(), rep=20, return_mode="median")

        default = (timed(lambda x, w, s: fp8_weight_only_mm(x, w, s, None)),
                   row_errors(fp8_weight_only_mm(x, w, s, None), ref))
        print(f"M={m} N={n} K={k}: default plan {default[0]:.1f} us, worst row error {default[1]:.1e}", flush=True)
        for tile, split in itertools.product(TILES, SPLITS):
            err = row_errors(fp16_decode(x, w, s, tile, split), ref)
            us = timed(lambda x, w, s: fp16_decode(x, w, s, tile, split))
            print(f"  fp16 tile {tile} split {split}: {us:.1f} us ({us / default[0]:.2f}x default), "
                  f"worst row error {err:.1e}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
