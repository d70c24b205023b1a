"""Triton kernels for FP8 matmuls: weight-only (W8A16) and DeepSeek-style block-scaled W8A8.

Portable Triton (plain pointer loads, `tl.dot`) runs on NVIDIA, on Intel's Triton and in the
interpreter (`TRITON_INTERPRET=1`). One guarded exception: with WIDEN_BITS(_EXACT) (chosen by
`ops.py` only for CUDA GPUs of compute capability 8.0 or newer) the weight-only kernel widens fp8
weights to bf16 in inline PTX. Launch logic and configs live in `ops.py` (which names the MMA_MODE
values), validation in `validation.py` (which names the SCALE_MODE values); this module holds the
device code only.
"""

import torch
import triton
import triton.language as tl

from ...formats import FP8_LAYOUT

try:  # grid dependency control (programmatic dependent launch, CUDA sm90+); PDL=False elsewhere
    from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait
except ImportError:
    gdc_launch_dependents = gdc_wait = None


BF16_MANTISSA_BITS, BF16_EXPONENT_BITS, BF16_BIAS = 7, 8, 127
FP8_MAGNITUDE_BITS = 0x7F  # an fp8 code's exponent and mantissa bits (the sign is 0x80)
BF16_NON_FINITE = tl.constexpr(0x7F80)  # |x| bits at or above this (exponent all ones): inf or NaN
E4M3_MANTISSA_BITS = tl.constexpr(FP8_LAYOUT[torch.float8_e4m3fn].mantissa_bits)


def _bf16_widening_asm(layout, exact_non_finite: bool) -> str:
    """Inline PTX turning four fp8 bytes (one 32-bit register) into four bf16 (two registers).

    A byte permute with sign replication makes two words of two 16-bit lanes, each lane one byte
    sign-extended. Shifted left by bf16's mantissa bits minus the format's, the mantissa lands at
    the top of bf16's and the exponent at the bottom of bf16's; masked to the sign and those seven
    bits, the lane holds value * 2^-(127 - bias) exactly (fp8 subnormals become bf16 subnormals).
    One bf16 fma by 2^(127 - bias), -0 added, restores the value. So far NaN and infinity codes
    read as finite numbers (e4m3 0x7F: 480); `exact_non_finite` adds three integer steps per word
    (four for e5m2) before the fma: the format's non-finite bits plus their lowest one carry out
    exactly for a NaN/inf code, and that carry times 2^k - 1 fills the rest of bf16's exponent, so
    the lane is bf16 NaN/inf (same mantissa bits) and the fma keeps it. One line: Inductor copies
    these strings into its generated code when model code calls the op.
    """
    shift = BF16_MANTISSA_BITS - layout.mantissa_bits
    lanes = 0x8000 | (FP8_MAGNITUDE_BITS << shift)  # the sign and the exponent + mantissa bits, in place
    factor = (BF16_BIAS + BF16_BIAS - layout.bias) << BF16_MANTISSA_BITS  # bf16 bits of 2^(127 - bias)
    fix = ""
    if exact_non_finite:
        special = layout.non_finite_bits << shift  # the bits all set in a NaN/inf code's lane
        lowest = special & -special
        carry = 1 << (BF16_MANTISSA_BITS + layout.exponent_bits)  # just above the format's exponent
        fill = (1 << (BF16_EXPONENT_BITS - layout.exponent_bits)) - 1  # carry * fill: the rest of bf16's exponent
        for r in ("lo", "hi"):
            src = r
            if layout.non_finite_bits != FP8_MAGNITUDE_BITS:  # e5m2: the exponent's bits alone
                fix += f" and.b32 t, {r}, {special << 16 | special:#010x};"
                src = "t"
            fix += (f" add.u32 t, {src}, {lowest << 16 | lowest:#010x}; and.b32 t, t, {carry << 16 | carry:#010x};"
                    f" mad.lo.u32 {r}, t, {fill}, {r};")
    return (f"{{ .reg .b32 lo, hi, c, z, t; mov.b32 c, {factor << 16 | factor:#010x}; mov.b32 z, 0x80008000;"
            f" prmt.b32 lo, $2, 0, 0x9180; prmt.b32 hi, $2, 0, 0xB3A2; shl.b32 lo, lo, {shift};"
            f" shl.b32 hi, hi, {shift}; and.b32 lo, lo, {lanes << 16 | lanes:#010x};"
            f" and.b32 hi, hi, {lanes << 16 | lanes:#010x};{fix} fma.rn.bf16x2 $0, lo, c, z; fma.rn.bf16x2 $1, hi, c, z; }}")


_E4M3_TO_BF16_ASM = tl.constexpr(_bf16_widening_asm(FP8_LAYOUT[torch.float8_e4m3fn], False))
_E5M2_TO_BF16_ASM = tl.constexpr(_bf16_widening_asm(FP8_LAYOUT[torch.float8_e5m2], False))
_E4M3_TO_BF16_EXACT_ASM = tl.constexpr(_bf16_widening_asm(FP8_LAYOUT[torch.float8_e4m3fn], True))
_E5M2_TO_BF16_EXACT_ASM = tl.constexpr(_bf16_widening_asm(FP8_LAYOUT[torch.float8_e5m2], True))


@triton.jit
def _widen_by_asm(w, asm: tl.constexpr):
    """An fp8 tile as bf16 through one of the `_bf16_widening_asm` programs (four codes a register)."""
    return tl.inline_asm_elementwise(asm=asm, constraints="=r,=r,r", args=[w.to(tl.uint8, bitcast=True)],
                                     dtype=tl.bfloat16, is_pure=True, pack=4)


@triton.jit
def _widen_fp8(w, dtype: tl.constexpr, WIDEN: tl.constexpr):
    """fp8 tile -> `dtype` tile, exactly for finite codes. WIDEN_BITS (bf16 only; CUDA sm80+): each
    32-bit register of four bytes becomes two bf16x2 words by a byte permute, a shift, a mask and
    an fma per word, on the integer and FMA pipes. Triton's cast (e4m3x2 -> f16x2, then one F2F per
    element to bf16) kept the MMA decode kernel at 27-34 us against 21-23 us for this on an H200.
    WIDEN_BITS_EXACT: the same plus the non-finite steps, so NaN/inf codes read exactly too (14-24%
    slower at decode on an H200: launches fixed at compile time, which cannot read the weight)."""
    if WIDEN == 1 and dtype == tl.bfloat16:  # ops.WIDEN_BITS
        if w.dtype == tl.float8e5:
            return _widen_by_asm(w, _E5M2_TO_BF16_ASM)
        return _widen_by_asm(w, _E4M3_TO_BF16_ASM)
    if WIDEN == 2 and dtype == tl.bfloat16:  # ops.WIDEN_BITS_EXACT
        if w.dtype == tl.float8e5:
            return _widen_by_asm(w, _E5M2_TO_BF16_EXACT_ASM)
        return _widen_by_asm(w, _E4M3_TO_BF16_EXACT_ASM)
    if w.dtype == tl.float8e5 and dtype == tl.bfloat16:
        # Triton 3.6's direct e5m2 -> bf16 cast reads inf/NaN codes as finite numbers (seen on an
        # H200); through fp32 they stay inf/NaN.
        return w.to(tl.float32).to(dtype)
    return w.to(dtype)


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
def _program_slice(pid_m, pid_n, pid_k, M, N, K, K_PER_SPLIT, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """One program's output rows and columns, their wrapped indices into x and w (every load in
    bounds without masks; stores are masked instead) and its K range."""
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rows_x = (offs_m % M).to(tl.int64)
    rows_w = (offs_n % N).to(tl.int64)
    k_begin = pid_k * K_PER_SPLIT
    return offs_m, offs_n, rows_x, rows_w, k_begin, tl.minimum(k_begin + K_PER_SPLIT, K)


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
def _load_x_tile(x_ptr, rows_x, offs_k, k_end, stride_xm, stride_xk, EVEN_K: tl.constexpr, rows_ok=None):
    """The activation tile [rows, K-tile] (zeros past k_end unless EVEN_K); with `rows_ok`, rows
    where it is false read as zeros, without a load."""
    ptrs = x_ptr + rows_x[:, None] * stride_xm + offs_k[None, :] * stride_xk
    if rows_ok is not None:
        ok = rows_ok[:, None]
        if not EVEN_K:
            ok = ok & (offs_k[None, :] < k_end)
        return tl.load(ptrs, mask=ok, other=0.0)
    if EVEN_K:
        return tl.load(ptrs)
    return tl.load(ptrs, mask=offs_k[None, :] < k_end, other=0.0)


@triton.jit
def _block_scale_rows(scale_ptr, rows_w, k0, stride_sn, stride_sk, SCALE_BLOCK_N: tl.constexpr,
                      SCALE_BLOCK_K: tl.constexpr):
    """Each weight row's block scale for the K-tile starting at k0 (it lies in one scale block)."""
    return tl.load(scale_ptr + (k0 // SCALE_BLOCK_K) * stride_sk + (rows_w // SCALE_BLOCK_N) * stride_sn)


@triton.jit
def fp8_weight_only_kernel(
    x_ptr, w_ptr, scale_ptr, bias_ptr, out_ptr,
    M, N, K, M_BUCKET, K_PER_SPLIT,
    stride_xm, stride_xk, stride_wn, stride_wk, stride_sn, stride_sk,
    stride_os, stride_om, stride_on,
    SCALE_MODE: tl.constexpr, SCALE_BLOCK_N: tl.constexpr, SCALE_BLOCK_K: tl.constexpr, SCALE_ON_X: tl.constexpr,
    HAS_BIAS: tl.constexpr, MMA_MODE: tl.constexpr, DOT_IN_FP32: tl.constexpr, EVEN_K: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
    LOAD_STAGES: tl.constexpr, WIDEN: tl.constexpr,
):
    """out[m, n] = sum_k x[m, k] * w[n, k] * scale(n, k) (+ bias[n]), w read as fp8.

    Grid: (tiles_m * tiles_n, split_k). Each program covers K_PER_SPLIT columns of K (a multiple
    of BLOCK_K); with split_k > 1 it writes fp32 partials to out[pid_k] (stride_os) and the
    reduction kernel adds the bias. M_BUCKET only keys the autotuner.
    MMA_MODE: 0 GEMV on CUDA cores (BLOCK_M in {1, 2} activation rows, each with its own
    elementwise accumulator, reduced once at the end); 1 acc[M, N] += x @ w.T; 2 acc[N, M] +=
    w @ x.T (the weight fills the MMA's large dimension at small M). DOT_IN_FP32 gives the MMA
    fp32 operands (exact, slow): for fp32 x, and in the interpreter, whose bf16 dot is wrong.
    WIDEN: how the MMA modes widen the fp8 tile (ops.WIDEN_CAST, WIDEN_BITS or WIDEN_BITS_EXACT, see `_widen_fp8`).
    SCALE_MODE: 0 per-tensor, 1 per-channel, 2 block. BLOCK_K divides SCALE_BLOCK_K, so a K-tile
    has one block scale per weight row: it multiplies the weight tile row by row, or, with
    SCALE_ON_X (GEMV programs whose rows all share one scale row), the fp32 activations as one
    scalar. LOAD_STAGES: K-tiles in flight per GEMV program (its loads feed no dot, so only an
    explicit `tl.range` stage count pipelines them; the dot modes use num_stages).
    """
    pid_m, pid_n = _tile_coords(tl.program_id(0), M, N, BLOCK_M, BLOCK_N, GROUP_M)
    pid_k = tl.program_id(1)
    offs_m, offs_n, rows_x, rows_w, k_begin, k_end = _program_slice(
        pid_m, pid_n, pid_k, M, N, K, K_PER_SPLIT, BLOCK_M, BLOCK_N)
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
        if SCALE_ON_X:  # one scale for the whole tile
            s_x = tl.load(scale_ptr + (k0 // SCALE_BLOCK_K) * stride_sk + (pid_n * BLOCK_N // SCALE_BLOCK_N) * stride_sn)
        elif SCALE_MODE == 2:
            s_row = _block_scale_rows(scale_ptr, rows_w, k0, stride_sn, stride_sk, SCALE_BLOCK_N, SCALE_BLOCK_K)
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
            x = _load_x_tile(x_ptr, rows_x, offs_k, k_end, stride_xm, stride_xk, EVEN_K)
            if MMA_MODE == 1:
                part = tl.dot(x.to(dot_dtype), tl.trans(_widen_fp8(w, dot_dtype, WIDEN)), input_precision="ieee")
                if SCALE_MODE == 2:
                    part = part * s_row[None, :]
                acc += part
            else:
                part = tl.dot(_widen_fp8(w, dot_dtype, WIDEN), tl.trans(x.to(dot_dtype)), input_precision="ieee")
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
def _mma_step(x_ptr, w_ptr, rows_x, rows_w, k0, k_end, stride_xm, stride_xk, stride_wn, stride_wk,
              scale_ptr, stride_sn, stride_sk, dot_dtype: tl.constexpr, SCALE_MODE: tl.constexpr,
              SCALE_BLOCK_N: tl.constexpr, SCALE_BLOCK_K: tl.constexpr, SWAPPED: tl.constexpr,
              EVEN_K: tl.constexpr, WIDEN: tl.constexpr, BLOCK_K: tl.constexpr, x_rows_ok, MASK_X_ROWS: tl.constexpr):
    """One K-tile's product: x[rows_x, k0:k0+BLOCK_K] @ w[rows_w, ...].T, as [N, M] when SWAPPED.
    MASK_X_ROWS: rows where `x_rows_ok` is false read as zeros, without a load."""
    offs_k = k0 + tl.arange(0, BLOCK_K)
    w = _load_w_tile(w_ptr, rows_w, offs_k, k_end, stride_wn, stride_wk, EVEN_K)
    x = _load_x_tile(x_ptr, rows_x, offs_k, k_end, stride_xm, stride_xk, EVEN_K, x_rows_ok if MASK_X_ROWS else None)
    w = _widen_fp8(w, dot_dtype, WIDEN)
    if SWAPPED:
        part = tl.dot(w, tl.trans(x.to(dot_dtype)), input_precision="ieee")
    else:
        part = tl.dot(x.to(dot_dtype), tl.trans(w), input_precision="ieee")
    if SCALE_MODE == 2:  # a tile past K (the second step at K's end) is zero: any in-bounds scale will do
        s_row = _block_scale_rows(scale_ptr, rows_w, tl.minimum(k0, k_end - 1), stride_sn, stride_sk,
                                  SCALE_BLOCK_N, SCALE_BLOCK_K)
        part = part * (s_row[:, None] if SWAPPED else s_row[None, :])
    return part


@triton.jit
def fp8_weight_only_decode_kernel(
    x_ptr, w_ptr, scale_ptr, bias_ptr, out_ptr,
    M, N, K, K_PER_SPLIT,
    stride_xm, stride_xk, stride_wn, stride_wk, stride_sn, stride_sk,
    stride_os, stride_om, stride_on,
    SCALE_MODE: tl.constexpr, SCALE_BLOCK_N: tl.constexpr, SCALE_BLOCK_K: tl.constexpr,
    HAS_BIAS: tl.constexpr, SWAPPED: tl.constexpr, DOT_IN_FP32: tl.constexpr, EVEN_K: tl.constexpr,
    WIDEN: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    PDL: tl.constexpr, MASK_X_ROWS: tl.constexpr,
):
    """The MMA decode kernel (M <= BLOCK_M): `fp8_weight_only_kernel`'s MMA modes taking two K-tiles
    per step into two independent accumulators, added once at the end.

    At decode a program's N-tile is small, so a GPU holds one or two warps per scheduler, which
    stall on each MMA and widening chain; the second accumulator gives each warp independent work
    (split-K over programs, K_PER_SPLIT, also needs the reduction kernel). SWAPPED: acc[N, M] +=
    w @ x.T, else acc[M, N] += x @ w.T. MASK_X_ROWS: the tile's x rows past M read as zeros,
    without loads, rather than as copies of rows below M (`ops.MASK_X_ROWS_UNSPLIT`). Block
    scales need BLOCK_K to divide SCALE_BLOCK_K. Other arguments as the generic kernel's.
    """
    if PDL:  # the split-K reduction may launch now and wait for this grid (ops.PDL)
        gdc_launch_dependents()
    pid_k = tl.program_id(1)
    offs_m, offs_n, rows_x, rows_w, k_begin, k_end = _program_slice(
        0, tl.program_id(0), pid_k, M, N, K, K_PER_SPLIT, BLOCK_M, BLOCK_N)
    dot_dtype = tl.float32 if DOT_IN_FP32 else x_ptr.dtype.element_ty
    if SWAPPED:
        acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
    else:
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    acc2 = tl.zeros_like(acc)
    x_rows_ok = offs_m < M
    for k0 in range(k_begin, k_end, 2 * BLOCK_K):
        acc += _mma_step(x_ptr, w_ptr, rows_x, rows_w, k0, k_end, stride_xm, stride_xk, stride_wn, stride_wk,
                         scale_ptr, stride_sn, stride_sk, dot_dtype, SCALE_MODE, SCALE_BLOCK_N, SCALE_BLOCK_K,
                         SWAPPED, EVEN_K, WIDEN, BLOCK_K, x_rows_ok, MASK_X_ROWS)
        acc2 += _mma_step(x_ptr, w_ptr, rows_x, rows_w, k0 + BLOCK_K, k_end, stride_xm, stride_xk, stride_wn,
                          stride_wk, scale_ptr, stride_sn, stride_sk, dot_dtype, SCALE_MODE, SCALE_BLOCK_N,
                          SCALE_BLOCK_K, SWAPPED, EVEN_K, WIDEN, BLOCK_K, x_rows_ok, MASK_X_ROWS)
    acc += acc2
    if SWAPPED:
        acc = tl.trans(acc)
    _store_tile(acc, offs_m, offs_n, rows_w, pid_k, scale_ptr, bias_ptr, out_ptr, M, N,
                stride_sn, stride_os, stride_om, stride_on, SCALE_MODE, HAS_BIAS)


@triton.jit
def _split_bf16_rows(x, TOP: tl.constexpr, LO: tl.constexpr, IN_FP32: tl.constexpr):
    """A bf16 tile [rows, K-tile] as (hi + lo * 2^-LO) * down per row, hi and lo e4m3 tiles.

    Each row is scaled by the power of two that puts its largest magnitude in [2^TOP, 2^(TOP+1))
    (kept normal: a row of zeros or subnormals scales by 2^(119 + TOP) at most); hi is the scaled
    row rounded to e4m3 (4 significant bits), and the residual of a bf16 value (8 significant
    bits) then has at most 4, so lo holds it exactly: hi + lo * 2^-LO is the scaled row exactly,
    but for values below 2^-(TOP+6) of the row's largest, whose residuals become e4m3 subnormals
    (an error under 2^-(TOP+16) of the largest). Exponents come from the bf16 bits; returns them
    too, as each row's largest magnitude's bits (NaN > inf > any finite value as integers).
    IN_FP32 returns hi and lo as fp32 tiles, hi rounded to e4m3's mantissa by integer arithmetic
    (to nearest, ties to even): the interpreter's fp32 -> fp8 casts round wrongly (a carry out of
    the mantissa and subnormals were lost).
    """
    top = tl.max(x.to(tl.int16, bitcast=True).to(tl.int32) & 0x7FFF, axis=1)
    exp_field = tl.minimum(tl.maximum(top >> 7, TOP + 1), 254)
    up = ((254 + TOP - exp_field) << 23).to(tl.float32, bitcast=True)
    down = ((exp_field - TOP) << 23).to(tl.float32, bitcast=True)
    scaled = x.to(tl.float32) * up[:, None]
    if IN_FP32:
        drop = 23 - E4M3_MANTISSA_BITS
        bits = scaled.to(tl.int32, bitcast=True)
        bits = (bits + ((1 << (drop - 1)) - 1) + ((bits >> drop) & 1)) & -(1 << drop)
        hi = bits.to(tl.float32, bitcast=True)
        return hi, (scaled - hi) * (2.0 ** LO), down, top
    hi = scaled.to(tl.float8e4nv)
    return hi, ((scaled - hi.to(tl.float32)) * (2.0 ** LO)).to(tl.float8e4nv), down, top


@triton.jit
def _widened_tile_again(x_ptr, w_ptr, scale_ptr, rows_x, rows_w, k_begin, k_end, stride_xm, stride_xk,
                        stride_wn, stride_wk, stride_sn, stride_sk, SCALE_MODE: tl.constexpr,
                        SCALE_BLOCK_N: tl.constexpr, SCALE_BLOCK_K: tl.constexpr, EVEN_K: tl.constexpr,
                        DOT_IN_FP32: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr,
                        BLOCK_K: tl.constexpr):
    """acc[N, M] of one program's slice with the weight widened by Triton's cast and a bf16 MMA
    (IEEE arithmetic: the split MMA kernels' path for activations holding NaN/inf)."""
    dot_dtype = tl.float32 if DOT_IN_FP32 else tl.bfloat16
    acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
    for k0 in range(k_begin, k_end, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        w = _widen_fp8(_load_w_tile(w_ptr, rows_w, offs_k, k_end, stride_wn, stride_wk, EVEN_K), dot_dtype, 0)
        x = _load_x_tile(x_ptr, rows_x, offs_k, k_end, stride_xm, stride_xk, EVEN_K)
        part = tl.dot(w, tl.trans(x.to(dot_dtype)), input_precision="ieee")
        if SCALE_MODE == 2:
            part = part * _block_scale_rows(scale_ptr, rows_w, k0, stride_sn, stride_sk,
                                            SCALE_BLOCK_N, SCALE_BLOCK_K)[:, None]
        acc += part
    return acc


@triton.jit
def fp8_weight_only_split_kernel(
    x_ptr, w_ptr, scale_ptr, bias_ptr, out_ptr,
    M, N, K, K_PER_SPLIT,
    stride_xm, stride_xk, stride_wn, stride_wk, stride_sn, stride_sk,
    stride_os, stride_om, stride_on,
    SCALE_MODE: tl.constexpr, SCALE_BLOCK_N: tl.constexpr, SCALE_BLOCK_K: tl.constexpr,
    HAS_BIAS: tl.constexpr, EVEN_K: tl.constexpr, DOT_IN_FP32: tl.constexpr, SPLIT_TOP: tl.constexpr,
    SPLIT_LO: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """Weight-only decode (M <= BLOCK_M) on the fp8 MMA: bf16 activations split exactly into two
    e4m3 terms per K-tile (`_split_bf16_rows`), the fp8 weight tile fed to the MMA as it is.

    acc[N, M] += (w @ hi.T + (w @ lo.T) * 2^-SPLIT_LO) * row scale: the weight is never widened in
    registers, so its loads go straight to shared memory. A program whose activations hold a NaN
    or inf computes its tile again with the widened bf16 MMA (IEEE results for those rows); that
    branch sits after the loop, since a branch inside it stops the load pipelining. Grid and other
    arguments as `fp8_weight_only_decode_kernel`'s.
    """
    pid_k = tl.program_id(1)
    offs_m, offs_n, rows_x, rows_w, k_begin, k_end = _program_slice(
        0, tl.program_id(0), pid_k, M, N, K, K_PER_SPLIT, BLOCK_M, BLOCK_N)
    acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
    worst = tl.zeros((BLOCK_M,), dtype=tl.int32)
    for k0 in range(k_begin, k_end, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        w = _load_w_tile(w_ptr, rows_w, offs_k, k_end, stride_wn, stride_wk, EVEN_K)
        x = _load_x_tile(x_ptr, rows_x, offs_k, k_end, stride_xm, stride_xk, EVEN_K)
        hi, lo, down, top = _split_bf16_rows(x, SPLIT_TOP, SPLIT_LO, DOT_IN_FP32)
        worst = tl.maximum(worst, top)
        if DOT_IN_FP32:  # the interpreter (its fp8 dot is wrong)
            w = w.to(tl.float32)
        part = (tl.dot(w, tl.trans(hi)) + tl.dot(w, tl.trans(lo)) * (2.0 ** -SPLIT_LO)) * down[None, :]
        if SCALE_MODE == 2:
            part = part * _block_scale_rows(scale_ptr, rows_w, k0, stride_sn, stride_sk,
                                            SCALE_BLOCK_N, SCALE_BLOCK_K)[:, None]
        acc += part
    if tl.max(worst) >= BF16_NON_FINITE:  # the split read inf/NaN as finite numbers
        acc = _widened_tile_again(x_ptr, w_ptr, scale_ptr, rows_x, rows_w, k_begin, k_end, stride_xm, stride_xk,
                                  stride_wn, stride_wk, stride_sn, stride_sk, SCALE_MODE, SCALE_BLOCK_N,
                                  SCALE_BLOCK_K, EVEN_K, DOT_IN_FP32, BLOCK_N, BLOCK_M, BLOCK_K)
    _store_tile(tl.trans(acc), offs_m, offs_n, rows_w, pid_k, scale_ptr, bias_ptr, out_ptr, M, N,
                stride_sn, stride_os, stride_om, stride_on, SCALE_MODE, HAS_BIAS)


@triton.jit
def split_k_reduce_kernel(
    part_ptr, bias_ptr, out_ptr, M, N, stride_om, stride_on,
    SPLIT_K: tl.constexpr, HAS_BIAS: tl.constexpr, BLOCK: tl.constexpr, PDL: tl.constexpr,
):
    """out = sum over SPLIT_K of the contiguous fp32 partials [SPLIT_K, M, N] (+ bias), cast to out.
    PDL: launched as a programmatic dependent of the kernel writing the partials, it waits for it."""
    if PDL:
        gdc_wait()
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
    M, N, K, M_BUCKET, K_PER_SPLIT,
    stride_am, stride_ak, stride_bn, stride_bk,
    stride_asm, stride_asg, stride_bsn, stride_bsg, stride_os, stride_om, stride_on,
    GROUP_N: tl.constexpr, GROUP_K: tl.constexpr, HAS_BIAS: tl.constexpr, EVEN_K: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
    DESC: tl.constexpr, SWAPPED: tl.constexpr, PDL: tl.constexpr,
):
    """out = sum_g (a[:, g] @ b[:, g].T) * a_scale[:, g] * b_scale[n // GROUP_N, g] (+ bias).

    a, b are fp8 and meet in `tl.dot` directly (fp8 MMA), accumulating in fp32. BLOCK_K divides
    GROUP_K, so each K-tile's partial product is scaled once by its group's scales. When BLOCK_N
    divides GROUP_N the tile's weight scale is one number: the rescale is then one FMA per
    accumulator element and needs no per-column scale registers. M_BUCKET only keys the autotuner.
    DESC: a_ptr and b_ptr are tensor descriptors of blocks [BLOCK_M, BLOCK_K] and [BLOCK_N,
    BLOCK_K] (bulk tensor copies, zero fill past the edges). Triton waits for each group's MMA
    before its rescale; two CTAs per SM (64 x 128 tiles) or two warpgroups (128 x 128) hide it.
    Grid: (tiles, split_k); each program covers K_PER_SPLIT columns of K (a multiple of BLOCK_K),
    and with split_k > 1 writes fp32 partials to out[pid_k] (stride_os; the reduction adds the
    bias). SWAPPED: acc[N, M] += b @ a.T, the weight the MMA's large operand (decode).
    """
    if PDL:
        gdc_launch_dependents()
    pid_m, pid_n = _tile_coords(tl.program_id(0), M, N, BLOCK_M, BLOCK_N, GROUP_M)
    pid_k = tl.program_id(1)
    offs_m, offs_n, rows_a, rows_b, k_begin, k_end = _program_slice(
        pid_m, pid_n, pid_k, M, N, K, K_PER_SPLIT, BLOCK_M, BLOCK_N)
    offs_k = k_begin + tl.arange(0, BLOCK_K)
    if not DESC:
        a_ptrs = a_ptr + rows_a[:, None] * stride_am + offs_k[None, :] * stride_ak
        b_ptrs = b_ptr + rows_b[:, None] * stride_bn + offs_k[None, :] * stride_bk
    a_scale_ptrs = a_scale_ptr + rows_a * stride_asm
    if GROUP_N % BLOCK_N == 0:  # one weight scale per tile and group
        b_scale_ptrs = b_scale_ptr + (pid_n * BLOCK_N // GROUP_N) * stride_bsn
    else:
        b_scale_ptrs = b_scale_ptr + (rows_b // GROUP_N) * stride_bsn

    if SWAPPED:
        acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
    else:
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(k_begin, k_end, BLOCK_K):
        if DESC:
            a = a_ptr.load([pid_m * BLOCK_M, k0])
            b = b_ptr.load([pid_n * BLOCK_N, k0])
        elif EVEN_K:
            a = tl.load(a_ptrs)
            b = tl.load(b_ptrs)
        else:
            k_mask = offs_k[None, :] < K - (k0 - k_begin)
            a = tl.load(a_ptrs, mask=k_mask, other=0.0)
            b = tl.load(b_ptrs, mask=k_mask, other=0.0)
        group = k0 // GROUP_K
        a_s = tl.load(a_scale_ptrs + group * stride_asg)
        b_s = tl.load(b_scale_ptrs + group * stride_bsg)
        if SWAPPED:
            if GROUP_N % BLOCK_N == 0:
                acc += tl.dot(b, tl.trans(a)) * (a_s * b_s)[None, :]
            else:
                acc += tl.dot(b, tl.trans(a)) * b_s[:, None] * a_s[None, :]
        elif GROUP_N % BLOCK_N == 0:
            acc += tl.dot(a, tl.trans(b)) * (a_s * b_s)[:, None]
        else:
            acc += tl.dot(a, tl.trans(b)) * a_s[:, None] * b_s[None, :]
        if not DESC:
            a_ptrs += BLOCK_K * stride_ak
            b_ptrs += BLOCK_K * stride_bk

    if SWAPPED:
        acc = tl.trans(acc)
    _store_tile(acc, offs_m, offs_n, rows_b, pid_k, b_scale_ptr, bias_ptr, out_ptr, M, N,
                0, stride_os, stride_om, stride_on, 2, HAS_BIAS)  # scale mode 2: the scales are applied
