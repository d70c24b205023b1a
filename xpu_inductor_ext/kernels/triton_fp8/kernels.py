"""Triton kernels for FP8 matmuls: weight-only (W8A16) and DeepSeek-style block-scaled W8A8.

Only portable Triton is used (plain pointer loads, `tl.dot`, no target-specific intrinsics), so the
kernels run on NVIDIA, on Intel's Triton and in the interpreter (`TRITON_INTERPRET=1`).
Launch logic and configs live in `ops.py` (which names the MMA_MODE values), validation in
`validation.py` (which names the SCALE_MODE values); this module holds the device code only.
"""

import triton
import triton.language as tl


@triton.jit
def _tile_coords(pid, M, N, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, GROUP_M: tl.constexpr):
    """Map a linear program id to (pid_m, pid_n), walking GROUP_M row-tiles per column (L2 reuse)."""
    tiles_m = tl.cdiv(M, BLOCK_M)
    tiles_n = tl.cdiv(N, BLOCK_N)
    tiles_per_group = GROUP_M * tiles_n
    group = pid // tiles_per_group
    first_m = group * GROUP_M
    group_rows = min(tiles_m - first_m, GROUP_M)
    pid_m = first_m + (pid % tiles_per_group) % group_rows
    pid_n = (pid % tiles_per_group) // group_rows
    return pid_m, pid_n


@triton.jit
def _store_tile(acc, offs_m, offs_n, rows_w, pid_k, scale_ptr, bias_ptr, out_ptr, M, N,
                stride_sn, stride_os, stride_om, stride_on,
                SCALE_MODE: tl.constexpr, HAS_BIAS: tl.constexpr):
    """Apply the per-tensor/per-channel weight scale and the bias to acc[rows, BLOCK_N]; masked store."""
    if SCALE_MODE == 0:
        acc = acc * tl.load(scale_ptr)
    elif SCALE_MODE == 1:
        acc = acc * tl.load(scale_ptr + rows_w * stride_sn)[None, :]
    if HAS_BIAS:
        acc = acc + tl.load(bias_ptr + rows_w).to(tl.float32)[None, :]
    out_ptrs = (out_ptr + pid_k.to(tl.int64) * stride_os + offs_m[:, None].to(tl.int64) * stride_om
                + offs_n[None, :] * stride_on)
    mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    tl.store(out_ptrs, acc.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _load_x_row(x_ptr, row, offs_k, k_end, stride_xm, stride_xk, EVEN_K: tl.constexpr):
    """One activation row's K-tile as fp32 [1, BLOCK_K]."""
    ptrs = x_ptr + row.to(tl.int64) * stride_xm + offs_k * stride_xk
    if EVEN_K:
        x = tl.load(ptrs, eviction_policy="evict_last")
    else:
        x = tl.load(ptrs, mask=offs_k < k_end, other=0.0, eviction_policy="evict_last")
    return x.to(tl.float32)[None, :]


@triton.jit
def _load_w_tile(w_ptr, rows_w, offs_k, k_end, stride_wn, stride_wk, EVEN_K: tl.constexpr):
    """The fp8 weight tile [rows, K-tile], streamed past the caches (each weight is read once)."""
    ptrs = w_ptr + rows_w[:, None] * stride_wn + offs_k[None, :] * stride_wk
    if EVEN_K:
        return tl.load(ptrs, eviction_policy="evict_first")
    return tl.load(ptrs, mask=offs_k[None, :] < k_end, other=0.0, eviction_policy="evict_first")


@triton.jit
def fp8_weight_only_kernel(
    x_ptr, w_ptr, scale_ptr, bias_ptr, out_ptr,
    M, N, K, M_BUCKET, K_PER_SPLIT,
    stride_xm, stride_xk, stride_wn, stride_wk, stride_sn, stride_sk,
    stride_os, stride_om, stride_on,
    SCALE_MODE: tl.constexpr, SCALE_BLOCK_N: tl.constexpr, SCALE_BLOCK_K: tl.constexpr, SCALE_ON_X: tl.constexpr,
    HAS_BIAS: tl.constexpr, MMA_MODE: tl.constexpr, DOT_IN_FP32: tl.constexpr, EVEN_K: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
    LOAD_STAGES: tl.constexpr,
):
    """out[m, n] = sum_k x[m, k] * w[n, k] * scale(n, k) (+ bias[n]), w read as fp8.

    Grid: (tiles_m * tiles_n, split_k). Each program covers K_PER_SPLIT columns of K (a multiple
    of BLOCK_K); with split_k > 1 it writes fp32 partials to out[pid_k] (stride_os) and the
    reduction kernel adds the bias. M_BUCKET only keys the autotuner.
    MMA_MODE: 0 GEMV on CUDA cores (BLOCK_M in {1, 2} activation rows, each with its own
    elementwise accumulator, reduced once at the end); 1 acc[M, N] += x @ w.T; 2 acc[N, M] +=
    w @ x.T (the weight fills the MMA's large dimension at small M). DOT_IN_FP32 gives the MMA
    fp32 operands (exact, slow): for fp32 x, and in the interpreter, whose bf16 dot is wrong.
    SCALE_MODE: 0 per-tensor, 1 per-channel, 2 block. BLOCK_K divides SCALE_BLOCK_K, so a K-tile
    has one block scale per weight row: it multiplies the weight tile row by row, or, with
    SCALE_ON_X (GEMV programs whose rows all share one scale row), the fp32 activations as one
    scalar. LOAD_STAGES: K-tiles in flight per GEMV program (its loads feed no dot, so only an
    explicit `tl.range` stage count pipelines them; the dot modes use num_stages).
    """
    pid_m, pid_n = _tile_coords(tl.program_id(0), M, N, BLOCK_M, BLOCK_N, GROUP_M)
    pid_k = tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    # Wrapped row indices keep every load in bounds without masks; stores are masked instead.
    rows_x = (offs_m % M).to(tl.int64)
    rows_w = (offs_n % N).to(tl.int64)
    k_begin = pid_k * K_PER_SPLIT
    k_end = tl.minimum(k_begin + K_PER_SPLIT, K)
    dot_dtype = tl.float32 if DOT_IN_FP32 else x_ptr.dtype.element_ty

    if MMA_MODE == 0:
        first_row = pid_m * BLOCK_M
        acc0 = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
        if BLOCK_M == 2:
            acc1 = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
    elif MMA_MODE == 1:
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    else:
        acc_t = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)

    for k0 in tl.range(k_begin, k_end, BLOCK_K, num_stages=LOAD_STAGES if MMA_MODE == 0 else None):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        w = _load_w_tile(w_ptr, rows_w, offs_k, k_end, stride_wn, stride_wk, EVEN_K)
        scale_col = scale_ptr + (k0 // SCALE_BLOCK_K) * stride_sk
        if SCALE_ON_X:  # one scale for the whole tile
            s_x = tl.load(scale_col + (pid_n * BLOCK_N // SCALE_BLOCK_N) * stride_sn)
        elif SCALE_MODE == 2:
            s_row = tl.load(scale_col + (rows_w // SCALE_BLOCK_N) * stride_sn)
        if MMA_MODE == 0:
            w_f = w.to(tl.float32)
            if SCALE_MODE == 2 and not SCALE_ON_X:
                w_f = w_f * s_row[:, None]
            x0 = _load_x_row(x_ptr, tl.minimum(first_row, M - 1), offs_k, k_end, stride_xm, stride_xk, EVEN_K)
            acc0 += w_f * (x0 * s_x if SCALE_ON_X else x0)
            if BLOCK_M == 2:
                x1 = _load_x_row(x_ptr, tl.minimum(first_row + 1, M - 1), offs_k, k_end, stride_xm, stride_xk, EVEN_K)
                acc1 += w_f * (x1 * s_x if SCALE_ON_X else x1)
        else:
            x_ptrs = x_ptr + rows_x[:, None] * stride_xm + offs_k[None, :] * stride_xk
            if EVEN_K:
                x = tl.load(x_ptrs)
            else:
                x = tl.load(x_ptrs, mask=offs_k[None, :] < k_end, other=0.0)
            if MMA_MODE == 1:
                part = tl.dot(x.to(dot_dtype), tl.trans(w.to(dot_dtype)), input_precision="ieee")
                if SCALE_MODE == 2:
                    part = part * s_row[None, :]
                acc += part
            else:
                part = tl.dot(w.to(dot_dtype), tl.trans(x.to(dot_dtype)), input_precision="ieee")
                if SCALE_MODE == 2:
                    part = part * s_row[:, None]
                acc_t += part

    if MMA_MODE == 0:
        row = pid_m * BLOCK_M + tl.arange(0, 1)
        _store_tile(tl.sum(acc0, axis=1)[None, :], row, offs_n, rows_w, pid_k, scale_ptr, bias_ptr, out_ptr,
                    M, N, stride_sn, stride_os, stride_om, stride_on, SCALE_MODE, HAS_BIAS)
        if BLOCK_M == 2:
            _store_tile(tl.sum(acc1, axis=1)[None, :], row + 1, offs_n, rows_w, pid_k, scale_ptr, bias_ptr,
                        out_ptr, M, N, stride_sn, stride_os, stride_om, stride_on, SCALE_MODE, HAS_BIAS)
    else:
        if MMA_MODE == 2:
            acc = tl.trans(acc_t)
        _store_tile(acc, offs_m, offs_n, rows_w, pid_k, scale_ptr, bias_ptr, out_ptr, M, N,
                    stride_sn, stride_os, stride_om, stride_on, SCALE_MODE, HAS_BIAS)


@triton.jit
def split_k_reduce_kernel(
    part_ptr, bias_ptr, out_ptr, M, N, stride_om, stride_on,
    SPLIT_K: tl.constexpr, HAS_BIAS: tl.constexpr, BLOCK: tl.constexpr,
):
    """out = sum over SPLIT_K of the contiguous fp32 partials [SPLIT_K, M, N] (+ bias), cast to out."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < M * N
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    for s in tl.static_range(SPLIT_K):
        acc += tl.load(part_ptr + s * M * N + offs, mask=mask, other=0.0)
    rows = offs // N
    cols = offs % N
    if HAS_BIAS:
        acc += tl.load(bias_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + rows * stride_om + cols * stride_on, acc.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def fp8_block_scaled_kernel(
    a_ptr, b_ptr, a_scale_ptr, b_scale_ptr, bias_ptr, out_ptr,
    M, N, K, M_BUCKET,
    stride_am, stride_ak, stride_bn, stride_bk,
    stride_asm, stride_asg, stride_bsn, stride_bsg, stride_om, stride_on,
    GROUP_N: tl.constexpr, GROUP_K: tl.constexpr, HAS_BIAS: tl.constexpr, EVEN_K: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
    DESC: tl.constexpr,
):
    """out = sum_g (a[:, g] @ b[:, g].T) * a_scale[:, g] * b_scale[n // GROUP_N, g] (+ bias).

    a, b are fp8 and meet in `tl.dot` directly (fp8 MMA), accumulating in fp32. BLOCK_K divides
    GROUP_K, so each K-tile's partial product is scaled once by its group's scales. When BLOCK_N
    divides GROUP_N the tile's weight scale is one number: the rescale is then one FMA per
    accumulator element and needs no per-column scale registers. M_BUCKET only keys the autotuner.
    DESC: a_ptr and b_ptr are tensor descriptors of blocks [BLOCK_M, BLOCK_K] and [BLOCK_N,
    BLOCK_K] (bulk tensor copies, zero fill past the edges). Triton waits for each group's MMA
    before its rescale; two CTAs per SM (64 x 128 tiles) or two warpgroups (128 x 128) hide it.
    """
    pid_m, pid_n = _tile_coords(tl.program_id(0), M, N, BLOCK_M, BLOCK_N, GROUP_M)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rows_a = (offs_m % M).to(tl.int64)
    rows_b = (offs_n % N).to(tl.int64)
    offs_k = tl.arange(0, BLOCK_K)
    if not DESC:
        a_ptrs = a_ptr + rows_a[:, None] * stride_am + offs_k[None, :] * stride_ak
        b_ptrs = b_ptr + rows_b[:, None] * stride_bn + offs_k[None, :] * stride_bk
    a_scale_ptrs = a_scale_ptr + rows_a * stride_asm
    if GROUP_N % BLOCK_N == 0:  # one weight scale per tile and group
        b_scale_ptrs = b_scale_ptr + (pid_n * BLOCK_N // GROUP_N) * stride_bsn
    else:
        b_scale_ptrs = b_scale_ptr + (rows_b // GROUP_N) * stride_bsn

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        if DESC:
            a = a_ptr.load([pid_m * BLOCK_M, k0])
            b = b_ptr.load([pid_n * BLOCK_N, k0])
        elif EVEN_K:
            a = tl.load(a_ptrs)
            b = tl.load(b_ptrs)
        else:
            k_mask = offs_k[None, :] < K - k0
            a = tl.load(a_ptrs, mask=k_mask, other=0.0)
            b = tl.load(b_ptrs, mask=k_mask, other=0.0)
        group = k0 // GROUP_K
        a_s = tl.load(a_scale_ptrs + group * stride_asg)
        b_s = tl.load(b_scale_ptrs + group * stride_bsg)
        if GROUP_N % BLOCK_N == 0:
            acc += tl.dot(a, tl.trans(b)) * (a_s * b_s)[:, None]
        else:
            acc += tl.dot(a, tl.trans(b)) * a_s[:, None] * b_s[None, :]
        if not DESC:
            a_ptrs += BLOCK_K * stride_ak
            b_ptrs += BLOCK_K * stride_bk

    if HAS_BIAS:
        acc = acc + tl.load(bias_ptr + rows_b).to(tl.float32)[None, :]
    out_ptrs = out_ptr + offs_m[:, None].to(tl.int64) * stride_om + offs_n[None, :] * stride_on
    mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    tl.store(out_ptrs, acc.to(out_ptr.dtype.element_ty), mask=mask)
