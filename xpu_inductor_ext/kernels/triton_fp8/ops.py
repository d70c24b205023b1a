"""Launchers, launch plans and the op registration of the Triton FP8 kernels.

Imports triton: load it through the package (`xpu_inductor_ext.kernels.triton_fp8`), which only
imports this module when triton is importable.
"""

import dataclasses
import functools
import math
import os
from dataclasses import dataclass
from typing import Optional

import torch
import triton

from ...formats import FP8_LAYOUT
from .. import platform
from ..dispatcher_ops import define_op
from ..weight_cache import MISSING, TensorLru, holds_values
from . import kernels
from .launches import KernelLaunch, call_key, launch_cache, run_launch, tensor_descriptor
from .validation import (
    BLOCK_SCALED_OP,
    SCALE_BLOCK,
    SCALE_PER_CHANNEL,
    WEIGHT_ONLY_OP,
    check_block_scaled,
    check_weight_only,
)

# How the weight-only kernel forms the product (its MMA_MODE constexpr).
MMA_FMA = 0  # GEMV on CUDA cores, 1 or 2 activation rows per program
MMA_DOT = 1  # acc[M, N] += x @ w.T
MMA_DOT_SWAPPED = 2  # acc[N, M] += w @ x.T: the weight tile is the MMA's large operand
MMA_FP8_SPLIT = 3  # acc[N, M] += w @ split(x).T on the fp8 MMA (kernels.fp8_weight_only_split_kernel)

# How the weight-only kernel's MMA modes widen fp8 weights (its WIDEN constexpr; see kernels._widen_fp8).
WIDEN_CAST = 0  # w.to(x.dtype): portable (Intel's Triton, the interpreter, fp16/fp32 activations)
WIDEN_BITS = 1  # inline PTX bit moves + one exact multiply: bf16 activations on CUDA sm80+, finite codes
WIDEN_BITS_EXACT = 2  # the bit moves with NaN/inf codes read exactly too: launches fixed without the weight
WIDEN_BITS_MIN_CAPABILITY = (8, 0)  # fma.rn.bf16x2
TMA_MIN_CAPABILITY = (9, 0)  # bulk tensor copies (tensor descriptors)
SPLIT_MMA_MIN_CAPABILITY = (9, 0)  # fp8 MMA exists from 8.9 (Ada); the split MMA was measured faster on an H200 only

# The exact two-term e4m3 split of bf16 activations (kernels._split_bf16_rows): a row's largest
# magnitude is scaled into [2^SPLIT_TOP, 2^(SPLIT_TOP + 1)), so it rounds to at most 2^8 < 448 (e4m3's
# largest); residuals are at most half an e4m3 step there (2^3) and scaled by 2^SPLIT_LO stay <= 2^8.
SPLIT_TOP, SPLIT_LO = 7, 5

DECODE_MAX_M = 16  # at or below: a decode plan (GEMV or MMA, split-K); above: the autotuned tiled kernel
GEMV_MAX_M = 2  # at or below: the CUDA-core GEMV (one accumulator per row); above: the MMA
DECODE_BLOCK_M, DECODE_BLOCK_N, DECODE_BLOCK_K = 16, 64, 128  # MMA decode tile (16: the smallest tl.dot M)
DECODE_NUM_WARPS, DECODE_NUM_STAGES = 4, 4
SPLIT_BLOCK_N, SPLIT_BLOCK_K = 128, 128  # fp8 split MMA decode tile (4 warps, DECODE_NUM_STAGES)
SPLIT_MIN_BLOCK_K = 32  # the fp8 MMA's K: scale blocks of 16 K columns (or 48, ...) keep the bf16 MMA
MMA_PROGRAMS_PER_SM = 2  # split the MMA decode grid's K until it has about this many programs per SM
MMA_OVERFULL_WAVES = 4  # ... or, where its tiles alone exceed that, this many times as many programs
GEMV_TILE_BYTES = 8192  # fp8 weight bytes per K-tile of a GEMV program (BLOCK_N * BLOCK_K)
GEMV_BLOCK_N = (8, 32)  # weight rows per GEMV program, smallest and largest
GEMV_BLOCK_N_BLOCK_SCALED = 64  # most rows per GEMV program when block scales shorten its K-tile
GEMV_LOAD_STAGES = 4  # K-tiles in flight per GEMV program
TILE_BLOCK_K = 64  # K tile of the tiled weight-only kernel (bf16/fp16 operands)
BLOCK_SCALED_BLOCK_K = 128  # K tile of the block-scaled kernel (fp8 operands)
BLOCK_SCALED_DECODE_BLOCK_N = 128  # weight rows per program of the block-scaled decode plan
DESCRIPTOR_MIN_M = 1  # block-scaled kernel: tensor-descriptor (TMA) loads from this M on. A same-run
# A/B on an H200 (2026-12-01, the demo decoder's W8A8 step at batch 1) gave 0.752 ms with descriptors
# against 1.124 ms with pointer loads; an earlier session's runs had pointed the other way (0.92 vs
# 0.76 ms, from two runs), so the bound stays a named knob; at prefill descriptors won (0.8 vs 0.6 of cuBLAS)
SPLIT_K_MIN_ITERS = 4  # a K split keeps at least this many K tiles per program
GEMV_PROGRAMS_PER_SM = 4  # GEMV programs per SM: sets the rows per program, then the K split
REDUCE_BLOCK = 1024  # elements per program of the split-K reduction
GROUP_M = 8  # row tiles per L2-friendly group in the tiled kernels
DEFAULT_NUM_SMS = 1  # devices with no known multiprocessor count (CPU, interpreter): no split-K
_AUTOTUNE_KEY = ["N", "K", "M_BUCKET"]


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


@dataclass(frozen=True)
class DecodePlan:
    """Launch shape of the small-M weight-only kernel: one program per (BLOCK_N rows, K split)."""

    mma_mode: int
    block_m: int
    block_n: int
    block_k: int
    split_k: int
    num_warps: int
    num_stages: int
    load_stages: int = 1
    widen: Optional[int] = None  # None: widen_mode() of the inputs
    accumulators: int = 1  # MMA modes: 2 takes two K-tiles per step (fp8_weight_only_decode_kernel)


def tile_config(block_m, block_n, num_warps, num_stages, pre_hook=None, **extra) -> triton.Config:
    """A tiled-kernel config: BLOCK_M x BLOCK_N tiles in GROUP_M groups, plus `extra` constexprs."""
    return triton.Config(
        {"BLOCK_M": block_m, "BLOCK_N": block_n, "GROUP_M": GROUP_M, **extra},
        num_warps=num_warps,
        num_stages=num_stages,
        pre_hook=pre_hook,
    )


def weight_only_tile_configs():
    """Autotune candidates of the tiled (M > DECODE_MAX_M) weight-only kernel."""
    if _interpreting():
        return [tile_config(16, 32, 4, 1, MMA_MODE=MMA_DOT)]
    return [
        tile_config(64, 128, 4, 4, MMA_MODE=MMA_DOT),
        tile_config(128, 128, 8, 3, MMA_MODE=MMA_DOT),
        tile_config(128, 256, 8, 3, MMA_MODE=MMA_DOT),
        tile_config(128, 128, 4, 4, MMA_MODE=MMA_DOT_SWAPPED),
        tile_config(256, 128, 8, 3, MMA_MODE=MMA_DOT_SWAPPED),
        tile_config(64, 128, 4, 4, MMA_MODE=MMA_DOT_SWAPPED),
    ]


def block_scaled_configs():
    """Autotune candidates of the block-scaled W8A8 kernel loading through pointers.

    On an H200, 64 x 128 tiles on one warpgroup (two CTAs per SM) and 128 x 128 on two won; tiles
    whose fp32 accumulator plus per-group partial product overflow the registers (128 x 128 on
    one warpgroup, 128 x 256, 256 x 128) ran at half the speed or less.
    """
    if _interpreting():
        return [tile_config(16, 32, 4, 1, DESC=False)]
    return [tile_config(bm, bn, warps, stages, DESC=False) for bm, bn, warps, stages in (
        (64, 128, 4, 4), (64, 128, 4, 3), (64, 64, 4, 4), (128, 64, 4, 4), (128, 128, 8, 3))]


def _set_descriptor_blocks(nargs) -> None:
    """Autotuner pre-hook: give the operand descriptors the block shape of the config being run."""
    nargs["a_ptr"].block_shape = [nargs["BLOCK_M"], nargs["BLOCK_K"]]
    nargs["b_ptr"].block_shape = [nargs["BLOCK_N"], nargs["BLOCK_K"]]


def block_scaled_descriptor_configs():
    """Autotune candidates of the block-scaled kernel loading through tensor descriptors (TMA).

    The winners of two sweeps on an H200 (prefill, M in {2048, 8192}), each best on some shapes:
    0.71-0.85 of cuBLASLt's blockwise `_scaled_mm`, against 0.58-0.68 for the pointer loads.
    """
    return [tile_config(bm, bn, warps, stages, pre_hook=_set_descriptor_blocks, DESC=True)
            for bm, bn, warps, stages in ((64, 128, 4, 4), (128, 128, 8, 4), (128, 128, 8, 5))]


@functools.lru_cache(maxsize=None)
def weight_only_tiled_kernel():
    """The weight-only kernel autotuned over `weight_only_tile_configs()` (built on first use)."""
    return triton.autotune(configs=weight_only_tile_configs(), key=_AUTOTUNE_KEY)(kernels.fp8_weight_only_kernel)


@functools.lru_cache(maxsize=None)
def block_scaled_tuned_kernel(descriptors: bool = False):
    """The block-scaled kernel autotuned over its pointer or descriptor configs (built on first use)."""
    configs = block_scaled_descriptor_configs() if descriptors else block_scaled_configs()
    return triton.autotune(configs=configs, key=_AUTOTUNE_KEY)(kernels.fp8_block_scaled_kernel)


def _cdiv(a: int, b: int) -> int:
    """Ceiling division on the host (`triton.cdiv` is a constexpr function: about 2 us a call there)."""
    return -(-a // b)


def _m_bucket(m: int) -> int:
    """Next power of two of M (autotuning key)."""
    return 1 << max(0, m - 1).bit_length()


def _pow2_divisor(value: int, cap: int) -> int:
    """Largest power of two that divides `value`, at most `cap`."""
    return min(value & -value, cap)


@functools.lru_cache(maxsize=None)
def _num_sms(device: torch.device) -> int:
    """Multiprocessor (CUDA) or subslice (XPU) count of a device; DEFAULT_NUM_SMS elsewhere."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    if device.type == "xpu":
        props = torch.xpu.get_device_properties(device)
        return getattr(props, "gpu_subslice_count", DEFAULT_NUM_SMS)
    return DEFAULT_NUM_SMS


def _nearest_pow2(value: float) -> int:
    return 1 << max(0, round(math.log2(max(value, 1.0))))


def gemv_scales_x(block_n: int, scale_block_n: int) -> bool:
    """Whether a GEMV program of `block_n` weight rows lies in one block-scale row: then its one
    scale per K-tile multiplies the activations rather than every weight."""
    return scale_block_n > 0 and scale_block_n % block_n == 0


def decode_plan(m: int, n: int, k: int, scale_block_n: int, scale_block_k: int, num_sms: int,
                split_mma: bool = False) -> DecodePlan:
    """Pick the small-M launch and its K split.

    M <= GEMV_MAX_M: the CUDA-core GEMV over M rows, GEMV_TILE_BYTES of weight per K-tile,
    GEMV_LOAD_STAGES tiles in flight, and as many weight rows per program as give about
    GEMV_PROGRAMS_PER_SM programs per SM (within GEMV_BLOCK_N); K is split until the grid has about
    that many programs. Above: `x @ w.T` on the MMA, two K-tiles per step into two accumulators
    (instruction-level parallelism for the one or two warps per scheduler a decode grid gives),
    K split as `mma_split_wanted` asks. Both are the best of
    sweeps on an H200 over (N, K) in {(8192, 8192), (14336, 4096), (4096, 14336)} and M in
    {1, 2, 3, 4, 8, 16} (benchmarks/RESULTS.md, 2026-12-01; `bench_triton_fp8.py --sweep` times
    the candidates again). Block scales are given as block
    sizes (0: none); a K-tile never straddles two scale blocks. Above GEMV_MAX_M with `split_mma`
    (see `split_mma_available`), the fp8 split MMA instead: 128 x 128 tiles, the same K split
    rule. On an H200 it took block-scaled decode from 1.65-1.79x the copy floor to 1.49-1.68x;
    with per-channel scales it is up to 16% slower than the finite-only bit moves but 3-10% faster
    than the exact ones (same-run A/Bs, benchmarks/ab_decode_choices.py, 2026-12-01), which is
    what `default_decode_plan` asks it for.
    """
    if m <= GEMV_MAX_M:
        lo, hi = GEMV_BLOCK_N
        block_n = min(hi, max(lo, _nearest_pow2(n * m / (GEMV_PROGRAMS_PER_SM * num_sms))))
        block_k = GEMV_TILE_BYTES // block_n
        if scale_block_k:  # a K-tile may not straddle two scale blocks: trade K for rows
            block_k = _pow2_divisor(scale_block_k, block_k)
            block_n = max(block_n, min(GEMV_TILE_BYTES // block_k, GEMV_BLOCK_N_BLOCK_SCALED))
        plan = DecodePlan(MMA_FMA, m, block_n, block_k, 1, DECODE_NUM_WARPS, 1, GEMV_LOAD_STAGES)
        tiles = _cdiv(m, plan.block_m) * _cdiv(n, plan.block_n)
        wanted = GEMV_PROGRAMS_PER_SM * num_sms // tiles
    else:
        if split_mma and _split_mma_fits(n, k, scale_block_k, num_sms):
            plan = DecodePlan(MMA_FP8_SPLIT, DECODE_BLOCK_M, SPLIT_BLOCK_N, _split_block_k(scale_block_k), 1,
                              DECODE_NUM_WARPS, DECODE_NUM_STAGES)
        else:
            block_k = _pow2_divisor(scale_block_k, DECODE_BLOCK_K) if scale_block_k else DECODE_BLOCK_K
            plan = DecodePlan(MMA_DOT, DECODE_BLOCK_M, DECODE_BLOCK_N, block_k, 1, DECODE_NUM_WARPS,
                              DECODE_NUM_STAGES, accumulators=2)
        wanted = mma_split_wanted(_cdiv(n, plan.block_n), num_sms)
    return dataclasses.replace(plan, split_k=_bounded_split(wanted, k, plan.block_k * plan.accumulators))


def _bounded_split(wanted: int, k: int, step_k: int) -> int:
    """`wanted` K splits, at least one, at most as many as leave SPLIT_K_MIN_ITERS steps of step_k each."""
    return max(1, min(_cdiv(k, step_k * SPLIT_K_MIN_ITERS), wanted))


def mma_split_wanted(tiles: int, num_sms: int) -> int:
    """The K split an MMA decode grid of `tiles` programs asks for: about MMA_PROGRAMS_PER_SM
    programs per SM; where the tiles alone overfill that, enough splits for MMA_OVERFULL_WAVES
    such waves, so that the last, partly filled wave is short (H200, N = 28672, K = 4096, 64-row
    tiles: 39.9-40.5 us with 3 splits against 46.3-46.5 unsplit)."""
    per_wave = MMA_PROGRAMS_PER_SM * num_sms
    if tiles <= per_wave:
        return round(per_wave / tiles)
    return _cdiv(MMA_OVERFULL_WAVES * per_wave, tiles)


def default_decode_plan(x: torch.Tensor, w: torch.Tensor, scale_mode: int, scale_block_n: int,
                        scale_block_k: int, read_codes: bool = True) -> DecodePlan:
    """The decode plan a weight-only call takes (`decode_plan` for its sizes, device and operands);
    scale block sizes as `_weight_only_scale_args` gives them. `read_codes=False`: the plan for a
    launch fixed before the weight holds values (a compiled graph's): only paths that read every
    code exactly (the split MMA for e4m3 at any scales, else `exact_widen_mode`)."""
    m, k = x.shape
    blocks = (scale_block_n, scale_block_k) if scale_mode == SCALE_BLOCK else (0, 0)
    split_mma = (m > GEMV_MAX_M and (scale_mode == SCALE_BLOCK or not read_codes)
                 and split_mma_available(x, w, read_codes))
    plan = decode_plan(m, w.shape[0], k, *blocks, _num_sms(x.device), split_mma)
    return plan if read_codes else dataclasses.replace(plan, widen=exact_widen_mode(x))


def split_mma_available(x: torch.Tensor, w: torch.Tensor, read_codes: bool = True) -> bool:
    """Whether the fp8 split MMA may run: bf16 activations on an NVIDIA GPU of compute capability
    SPLIT_MMA_MIN_CAPABILITY or newer (not under the interpreter), and an e4m3 weight (no inf, and
    a NaN code stays NaN through both terms: every e4m3 code checked on an H200, bench_triton_fp8)
    or, where `read_codes`, one not known to hold NaN/inf codes (an e5m2 inf met by a zero lo term
    would read NaN, not inf)."""
    if not _bf16_on_cuda(x, SPLIT_MMA_MIN_CAPABILITY):
        return False
    if w.dtype == torch.float8_e4m3fn:
        return True
    return read_codes and weight_codes_finite(w) is not False


def _bf16_on_cuda(x: torch.Tensor, min_capability: tuple) -> bool:
    """bf16 activations on an NVIDIA GPU of at least `min_capability` (see `_runs_ptx`)."""
    return x.dtype == torch.bfloat16 and _runs_ptx(x, min_capability)


def _runs_ptx(t: torch.Tensor, min_capability: tuple) -> bool:
    """`t` lives on an NVIDIA GPU of at least `min_capability` and kernels run as PTX there (not
    under the interpreter, not on ROCm)."""
    if t.device.type != "cuda" or torch.version.hip or _interpreting():
        return False
    return platform.cuda_capability(t.device) >= min_capability


def _split_mma_fits(n: int, k: int, scale_block_k: int, num_sms: int) -> bool:
    """Scale blocks (if any) whose K blocks the fp8 MMA can walk, and a grid of SPLIT_BLOCK_N-row tiles that
    K splits can spread over every SM: at N = 1024, K = 4096 (8 tiles, 64 programs at most on an
    H200) the split MMA was 4-6% slower than the bf16 plan; at every larger decoder and issue shape
    4-23% faster (benchmarks/ab_decode_choices.py, 2026-12-01)."""
    block_k = _split_block_k(scale_block_k)
    if block_k < SPLIT_MIN_BLOCK_K:
        return False
    return _cdiv(n, SPLIT_BLOCK_N) * _cdiv(k, block_k * SPLIT_K_MIN_ITERS) >= num_sms


def _split_block_k(scale_block_k: int) -> int:
    """The split MMA's K-tile: SPLIT_BLOCK_K, or less so that it stays inside one scale block (0: none)."""
    return _pow2_divisor(scale_block_k, SPLIT_BLOCK_K) if scale_block_k else SPLIT_BLOCK_K


def _weight_only_scale_args(w_scale, scale_mode, block_n, block_k):
    """(stride_sn, stride_sk, SCALE_BLOCK_N, SCALE_BLOCK_K) for the kernel."""
    if scale_mode == SCALE_BLOCK:
        return w_scale.stride(0), w_scale.stride(1), block_n, block_k
    if scale_mode == SCALE_PER_CHANNEL:
        return w_scale.stride(0), 0, 1, 1
    return 0, 0, 1, 1


def exact_widen_mode(x: torch.Tensor) -> int:
    """The widening that reads every code exactly without looking at the weight: WIDEN_BITS_EXACT
    where WIDEN_BITS would run, else WIDEN_CAST (for launches fixed at compile time)."""
    return WIDEN_BITS_EXACT if _bf16_on_cuda(x, WIDEN_BITS_MIN_CAPABILITY) else WIDEN_CAST


def widen_mode(x: torch.Tensor, w: torch.Tensor) -> int:
    """WIDEN_BITS for bf16 activations on an NVIDIA GPU that has bf16x2 fma (not under the
    interpreter, which runs no PTX) and a weight not known to hold NaN/inf codes (the bit moves
    would read them as finite numbers); WIDEN_CAST everywhere else."""
    if not _bf16_on_cuda(x, WIDEN_BITS_MIN_CAPABILITY):
        return WIDEN_CAST
    return WIDEN_CAST if weight_codes_finite(w) is False else WIDEN_BITS


class _FiniteCodeCache:
    """Whether an fp8 weight holds only finite codes, read once per weight (`TensorLru` by storage
    address, shape, strides, dtype and version, for the `size` weights used last; weights are not
    kept alive, so this answer is advisory: it picks a widening, see `widen_mode`).

    Weights are long-lived, so the extra read (and host sync) is paid once per weight; views made
    anew on every call hit the cache, and an in-place update bumps the version. Returns None where
    values cannot be read: fake tensors (a trace), a CUDA graph being captured.
    """

    def __init__(self, size: int) -> None:
        self._answers = TensorLru(size, keep_source=False)

    def __call__(self, w: torch.Tensor) -> Optional[bool]:
        if not holds_values(w):
            return None
        finite = self._answers.get(w)
        if finite is MISSING:
            if w.is_cuda and torch.cuda.is_current_stream_capturing():
                return None
            finite = _codes_finite(w)
            self._answers.put(w, finite)
        return finite


def _codes_finite(w: torch.Tensor) -> bool:
    """No NaN/inf code in ``w``, read FINITE_CHECK_CHUNK_BYTES at a time (the check's temporaries
    stay small beside a large weight), with one host sync at the end."""
    bits = FP8_LAYOUT[w.dtype].non_finite_bits
    codes = w.view(torch.uint8)  # a 2-D weight, any strides
    row_bytes = max(1, codes[0].numel()) if codes.shape[0] else 1
    rows = max(1, FINITE_CHECK_CHUNK_BYTES // row_bytes)
    found = [((chunk & bits) == bits).any() for chunk in codes.split(rows)]
    return not (found and bool(torch.stack(found).any()))


FINITE_CODE_CACHE_SIZE = 4096
FINITE_CHECK_CHUNK_BYTES = 64 << 20
weight_codes_finite = _FiniteCodeCache(FINITE_CODE_CACHE_SIZE)


def can_use_descriptors(*tensors) -> bool:
    """Whether bulk tensor copies (TMA) can load these row-major 2-D tensors: a CUDA GPU of compute
    capability 9.0 or newer, triton's host-side descriptors, eager execution (not a trace), unit
    last stride and 16-byte aligned bases and row strides."""
    if not all(holds_values(t) for t in tensors):
        return False
    if not _runs_ptx(tensors[0], TMA_MIN_CAPABILITY) or tensor_descriptor() is None:
        return False
    return all(t.stride(-1) == 1 and (t.stride(0) * t.element_size()) % 16 == 0 and t.data_ptr() % 16 == 0
               for t in tensors)


def weight_only_operands(x, w, w_scale, bias) -> tuple[list, torch.Tensor]:
    """The weight-only kernels' leading pointer arguments (w_scale stands in for a missing bias,
    which the kernels read only with HAS_BIAS) and a new output [M, N] in x's dtype."""
    out = torch.empty((x.shape[0], w.shape[0]), dtype=x.dtype, device=x.device)
    return [x, w, w_scale, bias if bias is not None else w_scale], out


def launch_weight_only(x, w, w_scale, bias, block_n, block_k, scale_mode, plan: Optional[DecodePlan] = None):
    """Run the weight-only kernel(s) on validated inputs; `plan` forces a decode launch (tests, tuning)."""
    tensors, out = weight_only_operands(x, w, w_scale, bias)
    if x.shape[0] == 0:
        return out
    launch = weight_only_launch(x, w, w_scale, bias, block_n, block_k, scale_mode, plan)
    return run_launch(launch, tensors, out, bias)


def weight_only_launch(x, w, w_scale, bias, block_n, block_k, scale_mode,
                       plan: Optional[DecodePlan] = None) -> KernelLaunch:
    """The weight-only kernel launch for these inputs: the autotuned tiles above DECODE_MAX_M,
    else `plan` or the default decode plan."""
    m, k = x.shape
    n = w.shape[0]
    stride_sn, stride_sk, scale_block_n, scale_block_k = _weight_only_scale_args(w_scale, scale_mode, block_n, block_k)
    strides = (x.stride(0), x.stride(1), w.stride(0), w.stride(1), stride_sn, stride_sk)
    scales = dict(SCALE_MODE=scale_mode, SCALE_BLOCK_N=scale_block_n, SCALE_BLOCK_K=scale_block_k)
    dot_in_fp32 = x.dtype == torch.float32 or (_interpreting() and x.dtype == torch.bfloat16)
    if plan is None and m > DECODE_MAX_M:
        tile_k = _pow2_divisor(scale_block_k, TILE_BLOCK_K) if scale_mode == SCALE_BLOCK else TILE_BLOCK_K

        def grid(cfg):
            return (_cdiv(m, cfg["BLOCK_M"]) * _cdiv(n, cfg["BLOCK_N"]), 1)

        meta = dict(HAS_BIAS=bias is not None, EVEN_K=k % tile_k == 0, BLOCK_K=tile_k, SCALE_ON_X=False, LOAD_STAGES=1,
                    WIDEN=widen_mode(x, w), DOT_IN_FP32=dot_in_fp32, **scales)
        return KernelLaunch(weight_only_tiled_kernel(), grid, (m, n, k, _m_bucket(m), k, *strides, 0, n, 1), meta)
    if plan is None:
        plan = default_decode_plan(x, w, scale_mode, scale_block_n, scale_block_k)
    _check_decode_plan(plan, x, scale_mode, scale_block_k)
    step_k = plan.block_k * plan.accumulators
    k_per_split, split_k = split_k_ranges(k, plan.split_k, step_k)
    grid = (_cdiv(m, plan.block_m) * _cdiv(n, plan.block_n), split_k)
    pdl = split_k > 1 and plan.accumulators == 2 and use_pdl(x)  # the decode kernel (the split MMA: mixed)
    meta = dict(HAS_BIAS=bias is not None and split_k == 1, EVEN_K=k % step_k == 0, DOT_IN_FP32=dot_in_fp32,
                BLOCK_M=plan.block_m, BLOCK_N=plan.block_n, BLOCK_K=plan.block_k, num_warps=plan.num_warps,
                num_stages=plan.num_stages, **scales)
    if plan.mma_mode != MMA_FP8_SPLIT:  # the other kernels widen the weight tile
        meta["WIDEN"] = widen_mode(x, w) if plan.widen is None else plan.widen
    ints = (m, n, k, k_per_split, *strides, m * n, n, 1)  # the output or partials: contiguous [.., M, N]
    if plan.mma_mode == MMA_FP8_SPLIT:
        kernel = kernels.fp8_weight_only_split_kernel
        meta.update(SPLIT_TOP=SPLIT_TOP, SPLIT_LO=SPLIT_LO)
    elif plan.accumulators == 2:
        kernel = kernels.fp8_weight_only_decode_kernel
        meta.update(SWAPPED=plan.mma_mode == MMA_DOT_SWAPPED, PDL=pdl,
                    MASK_X_ROWS=MASK_X_ROWS_UNSPLIT and split_k == 1 and m < plan.block_m)
    else:
        kernel = kernels.fp8_weight_only_kernel
        ints = (m, n, k, _m_bucket(m), *ints[3:])
        scale_on_x = (scale_mode == SCALE_BLOCK and plan.mma_mode == MMA_FMA
                      and gemv_scales_x(plan.block_n, scale_block_n))
        meta.update(MMA_MODE=plan.mma_mode, GROUP_M=1, SCALE_ON_X=scale_on_x, LOAD_STAGES=plan.load_stages)
    if split_k == 1:
        return KernelLaunch(kernel, grid, ints, meta)
    reduction = reduction_launch(split_k, m, n, bias is not None, pdl)
    return KernelLaunch(kernel, grid, ints, meta, (split_k, m, n), reduction)


def split_k_ranges(k: int, split_k: int, step_k: int) -> tuple:
    """(K columns per split, a multiple of step_k; splits actually needed) for K cut about split_k ways."""
    k_per_split = _cdiv(_cdiv(k, split_k), step_k) * step_k
    return k_per_split, _cdiv(k, k_per_split)


def reduction_launch(splits: int, m: int, n: int, has_bias: bool, pdl: bool) -> KernelLaunch:
    """The split-K reduction of contiguous fp32 partials [splits, M, N] into a contiguous [M, N]
    output (+ bias); `pdl`: the kernel writing the partials ran with PDL=True (see `use_pdl`)."""
    meta = dict(SPLIT_K=splits, HAS_BIAS=has_bias, BLOCK=REDUCE_BLOCK, PDL=pdl)
    if pdl:
        meta["launch_pdl"] = True
    return KernelLaunch(kernels.split_k_reduce_kernel, (_cdiv(m * n, REDUCE_BLOCK),), (m, n, n, 1), meta)


# The MMA decode kernel's x rows past M: masked (no loads) where the grid has no K split, else
# re-read as copies of rows below M. Unsplit, every program reads the same x K-tile at once, and
# the copies multiply the requests to the same lines: H200, N = 14336, K = 4096, M = 3 / 4, 21.6 /
# 20.1 us re-read against 18.8 / 18.9 masked; with a K split masking lost 0.6-0.9 us (8192 x 8192,
# 4096 x 14336; benchmarks/RESULTS.md, seventh session).
MASK_X_ROWS_UNSPLIT = True
PDL_MIN_CAPABILITY = (9, 0)  # griddepcontrol
PDL = True  # chain split-K reductions by programmatic dependent launch where `use_pdl` allows: 2-6%
# faster decode on an H200 (same-run A/B, benchmarks/RESULTS.md, third session of 2026-12-01)


def use_pdl(t: torch.Tensor) -> bool:
    """Whether a split-K launch on `t`'s device chains its reduction by programmatic dependent
    launch: eager CUDA sm90+ calls with triton's grid dependency control (not a trace)."""
    return PDL and kernels.gdc_wait is not None and holds_values(t) and _runs_ptx(t, PDL_MIN_CAPABILITY)


def _check_decode_plan(plan: DecodePlan, x: torch.Tensor, scale_mode: int, scale_block_k: int) -> None:
    """Reject a forced plan the kernels cannot run (decode_plan never builds one)."""
    m = x.shape[0]
    if plan.mma_mode == MMA_FP8_SPLIT and (x.dtype != torch.bfloat16 or m > plan.block_m or plan.accumulators != 1):
        raise ValueError(f"decode plan {plan}: the fp8 split MMA needs bf16 activations, M <= block_m "
                         f"and one accumulator (got {x.dtype}, M = {m})")
    if scale_mode == SCALE_BLOCK and scale_block_k % plan.block_k:
        raise ValueError(f"decode plan {plan}: block_k must divide the scale block {scale_block_k}")
    if plan.accumulators not in (1, 2):
        raise ValueError(f"decode plan {plan}: accumulators must be 1 or 2")
    if plan.accumulators == 2 and (plan.mma_mode == MMA_FMA or m > plan.block_m):
        raise ValueError(f"decode plan {plan}: two accumulators need an MMA mode and M <= block_m")


@dataclass(frozen=True)
class BlockScaledDecodePlan:
    """Launch shape of the block-scaled kernel at M <= DECODE_MAX_M: one program per (BLOCK_N
    weight rows, K split), all M rows in one DECODE_BLOCK_M tile; fp32 partials when split."""

    block_n: int
    split_k: int
    num_warps: int = DECODE_NUM_WARPS
    num_stages: int = DECODE_NUM_STAGES
    swapped: bool = True  # acc[N, M] += b @ a.T
    descriptors: Optional[bool] = None  # None: wherever can_use_descriptors allows


def block_scaled_decode_plan(n: int, k: int, group_k: int, num_sms: int) -> BlockScaledDecodePlan:
    """BLOCK_SCALED_DECODE_BLOCK_N weight rows per program and the MMA decode's K split rule
    (`mma_split_wanted`, SPLIT_K_MIN_ITERS K-tiles or more each): the prefill tiles gave an M = 1
    grid of N / 128 programs, under one per SM at N = 4096."""
    wanted = mma_split_wanted(_cdiv(n, BLOCK_SCALED_DECODE_BLOCK_N), num_sms)
    block_k = _pow2_divisor(group_k, BLOCK_SCALED_BLOCK_K)
    return BlockScaledDecodePlan(BLOCK_SCALED_DECODE_BLOCK_N, _bounded_split(wanted, k, block_k))


def launch_block_scaled(a, b, a_scale, b_scale, bias, out_dtype, group_n, group_k,
                        config: Optional[triton.Config] = None, decode: Optional[BlockScaledDecodePlan] = None):
    """Run the block-scaled kernel on validated inputs: a decode plan at M <= DECODE_MAX_M (`decode`
    forces one), else the autotuned tiles (`config` forces one: tuning scripts)."""
    tensors, out = block_scaled_operands(a, b, a_scale, b_scale, bias, out_dtype)
    if a.shape[0] == 0:
        return out
    launch = block_scaled_launch(a, b, a_scale, b_scale, bias, group_n, group_k, config, decode)
    return run_launch(launch, tensors, out, bias)


def block_scaled_operands(a, b, a_scale, b_scale, bias, out_dtype) -> tuple[list, torch.Tensor]:
    """The block-scaled kernel's leading pointer arguments (b_scale stands in for a missing bias)
    and a new output [M, N] in out_dtype."""
    out = torch.empty((a.shape[0], b.shape[0]), dtype=out_dtype, device=a.device)
    return [a, b, a_scale, b_scale, bias if bias is not None else b_scale], out


def block_scaled_launch(a, b, a_scale, b_scale, bias, group_n, group_k, config: Optional[triton.Config] = None,
                        decode: Optional[BlockScaledDecodePlan] = None) -> KernelLaunch:
    """The block-scaled kernel launch for these inputs (see `launch_block_scaled`)."""
    m, k = a.shape
    n = b.shape[0]
    block_k = _pow2_divisor(group_k, BLOCK_SCALED_BLOCK_K)
    if decode is None and config is None and m <= DECODE_MAX_M:
        decode = block_scaled_decode_plan(n, k, group_k, _num_sms(a.device))
    allowed = decode.descriptors if decode is not None else (config is None or config.kwargs.get("DESC", False))
    descriptors = m >= DESCRIPTOR_MIN_M and allowed is not False and can_use_descriptors(a, b)
    k_per_split, split_k = k, 1
    if decode is not None:
        k_per_split, split_k = split_k_ranges(k, decode.split_k, block_k)
        kernel = kernels.fp8_block_scaled_kernel
        meta = dict(BLOCK_M=DECODE_BLOCK_M, BLOCK_N=decode.block_n, GROUP_M=1, DESC=descriptors,
                    SWAPPED=decode.swapped, PDL=split_k > 1 and use_pdl(a), num_warps=decode.num_warps,
                    num_stages=decode.num_stages)
    elif config is None:
        kernel, meta = block_scaled_tuned_kernel(descriptors), dict(SWAPPED=False, PDL=False)
    else:
        kernel = kernels.fp8_block_scaled_kernel
        meta = dict(config.kwargs, DESC=descriptors, SWAPPED=False, PDL=False, num_warps=config.num_warps,
                    num_stages=config.num_stages)
    blocks = None
    if descriptors:  # the autotuned kernel's pre-hook sets the block shapes of the config it runs
        tuned = kernel is not kernels.fp8_block_scaled_kernel
        blocks = ((1, block_k), (1, block_k)) if tuned else ((meta["BLOCK_M"], block_k), (meta["BLOCK_N"], block_k))

    def grid(cfg):
        return (_cdiv(m, cfg["BLOCK_M"]) * _cdiv(n, cfg["BLOCK_N"]), split_k)

    if "BLOCK_M" in meta:  # a fixed config: its grid as numbers (what `direct_launcher` takes)
        grid = grid(meta)
    ints = (m, n, k, _m_bucket(m), k_per_split, a.stride(0), a.stride(1), b.stride(0), b.stride(1),
            a_scale.stride(0), a_scale.stride(1), b_scale.stride(0), b_scale.stride(1), m * n, n, 1)
    meta.update(GROUP_N=group_n, GROUP_K=group_k, HAS_BIAS=bias is not None and split_k == 1, EVEN_K=k % block_k == 0,
                BLOCK_K=block_k)
    if split_k == 1:
        return KernelLaunch(kernel, grid, ints, meta, descriptor_blocks=blocks)
    return KernelLaunch(kernel, grid, ints, meta, (split_k, m, n),
                        reduction_launch(split_k, m, n, bias is not None, meta["PDL"]), blocks)


def _weight_only_op(x: torch.Tensor, w: torch.Tensor, w_scale: torch.Tensor, bias: Optional[torch.Tensor],
                    block_n: int, block_k: int) -> torch.Tensor:
    key = call_key(WEIGHT_ONLY_OP, x, w, w_scale, bias, block_n, block_k, _codes_finite_if_asked(x, w))
    launch = launch_cache.get(key)
    if launch is None:
        scale_mode = check_weight_only(x, w, w_scale, bias, block_n, block_k)
        if x.shape[0] == 0:
            return weight_only_operands(x, w, w_scale, bias)[1]
        launch = weight_only_launch(x, w, w_scale, bias, block_n, block_k, scale_mode)
        launch_cache.put(key, launch)
    tensors, out = weight_only_operands(x, w, w_scale, bias)
    return run_launch(launch, tensors, out, bias)


def _codes_finite_if_asked(x: torch.Tensor, w: torch.Tensor) -> Optional[bool]:
    """`weight_codes_finite(w)` where the launch depends on it (a 2-D fp8 weight, bf16 activations
    on CUDA: the widening, the split MMA of e5m2), else None (asked before validation: any input comes)."""
    if w.dim() != 2 or w.dtype not in FP8_LAYOUT or not _bf16_on_cuda(x, WIDEN_BITS_MIN_CAPABILITY):
        return None
    return weight_codes_finite(w)


def _block_scaled_op(a: torch.Tensor, b: torch.Tensor, scale_a: torch.Tensor, scale_b: torch.Tensor,
                     bias: Optional[torch.Tensor], out_dtype: torch.dtype, group_n: int, group_k: int) -> torch.Tensor:
    key = call_key(BLOCK_SCALED_OP, a, b, scale_a, scale_b, bias, out_dtype, group_n, group_k)
    launch = launch_cache.get(key)
    if launch is None:
        check_block_scaled(a, b, scale_a, scale_b, bias, out_dtype, group_n, group_k)
        if a.shape[0] == 0:
            return block_scaled_operands(a, b, scale_a, scale_b, bias, out_dtype)[1]
        launch = block_scaled_launch(a, b, scale_a, scale_b, bias, group_n, group_k)
        launch_cache.put(key, launch)
    tensors, out = block_scaled_operands(a, b, scale_a, scale_b, bias, out_dtype)
    return run_launch(launch, tensors, out, bias)


def _weight_only_fake(x, w, w_scale, bias, block_n, block_k):
    check_weight_only(x, w, w_scale, bias, block_n, block_k)
    return x.new_empty((x.shape[0], w.shape[0]))


def _block_scaled_fake(a, b, scale_a, scale_b, bias, out_dtype, group_n, group_k):
    check_block_scaled(a, b, scale_a, scale_b, bias, out_dtype, group_n, group_k)
    return a.new_empty((a.shape[0], b.shape[0]), dtype=out_dtype)


def register() -> None:
    """Define both `xpu_quant` Triton ops (call once; the package guards repeats) as plain
    dispatcher ops with validating fakes (`dispatcher_ops.define_op`): compiled graphs call them
    at run time with real tensors, so plans see the values they need (PDL, TMA, the weight's codes);
    `graph_launch` takes over the launches that need none of them."""
    define_op(WEIGHT_ONLY_OP, _weight_only_op, _weight_only_fake)
    define_op(BLOCK_SCALED_OP, _block_scaled_op, _block_scaled_fake)
