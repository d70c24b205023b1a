"""Launchers, launch plans and `torch.library.triton_op` registration of the Triton FP8 kernels.

Imports triton: load it through the package (`xpu_inductor_ext.kernels.triton_fp8`), which only
imports this module when triton is importable.
"""

import functools
import os
from dataclasses import dataclass
from typing import Optional

import torch
import triton
from torch.library import triton_op, wrap_triton

from . import kernels
from .validation import (
    BLOCK_SCALED_OP,
    SCALE_BLOCK,
    SCALE_PER_CHANNEL,
    WEIGHT_ONLY_OP,
    check_block_scaled,
    check_weight_only,
)

# How the weight-only kernel forms the product (its MMA_MODE constexpr).
MMA_FMA = 0  # GEMV on CUDA cores, one activation row per program
MMA_DOT = 1  # acc[M, N] += x @ w.T
MMA_DOT_SWAPPED = 2  # acc[N, M] += w @ x.T: the weight tile is the MMA's large operand

DECODE_MAX_M = 16  # at or below: the GEMV / split-K plan; above: the autotuned tiled kernel
DECODE_BLOCK_M = 16  # the smallest M tile `tl.dot` takes
DECODE_NUM_WARPS, DECODE_NUM_STAGES = 4, 3
TILE_BLOCK_K = 64  # K tile of the tiled weight-only kernel (bf16/fp16 operands)
BLOCK_SCALED_BLOCK_K = 128  # K tile of the block-scaled kernel (fp8 operands)
SPLIT_K_MIN_ITERS = 4  # a K split keeps at least this many K tiles per program
PROGRAMS_PER_SM = 4  # split K until the decode grid has about this many programs per SM
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


def tile_config(block_m, block_n, num_warps, num_stages, **extra) -> triton.Config:
    """A tiled-kernel config: BLOCK_M x BLOCK_N tiles in GROUP_M groups, plus `extra` constexprs."""
    return triton.Config(
        {"BLOCK_M": block_m, "BLOCK_N": block_n, "GROUP_M": GROUP_M, **extra},
        num_warps=num_warps,
        num_stages=num_stages,
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
    """Autotune candidates of the block-scaled W8A8 kernel.

    On an H200, 64 x 128 tiles on one warpgroup (two CTAs per SM) and 128 x 128 on two won; tiles
    whose fp32 accumulator plus per-group partial product overflow the registers (128 x 128 on
    one warpgroup, 128 x 256, 256 x 128) ran at half the speed or less.
    """
    if _interpreting():
        return [tile_config(16, 32, 4, 1)]
    return [
        tile_config(64, 128, 4, 4),
        tile_config(64, 128, 4, 3),
        tile_config(64, 64, 4, 4),
        tile_config(128, 64, 4, 4),
        tile_config(128, 128, 8, 3),
    ]


@functools.lru_cache(maxsize=None)
def weight_only_tiled_kernel():
    """The weight-only kernel autotuned over `weight_only_tile_configs()` (built on first use)."""
    return triton.autotune(configs=weight_only_tile_configs(), key=_AUTOTUNE_KEY)(kernels.fp8_weight_only_kernel)


@functools.lru_cache(maxsize=None)
def block_scaled_tuned_kernel():
    """The block-scaled kernel autotuned over `block_scaled_configs()` (built on first use)."""
    return triton.autotune(configs=block_scaled_configs(), key=_AUTOTUNE_KEY)(kernels.fp8_block_scaled_kernel)


def _m_bucket(m):
    """Next power of two of M (autotuning key); symbolic sizes pass through unchanged."""
    return triton.next_power_of_2(m) if isinstance(m, int) else m


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


def decode_plan(m: int, n: int, k: int, scale_block_k: int, num_sms: int) -> DecodePlan:
    """Pick the small-M launch: a CUDA-core GEMV at M == 1, `x @ w.T` on the MMA above; split K
    until the grid has about PROGRAMS_PER_SM programs per SM. Tile shapes are the best of a sweep
    on an H200 over (N, K) in {(8192, 8192), (14336, 4096), (4096, 14336)}."""
    if m == 1:
        mma_mode, block_m, block_n, block_k = MMA_FMA, 1, 16, 512
    else:
        mma_mode, block_m, block_n, block_k = MMA_DOT, DECODE_BLOCK_M, 32, 256
    if scale_block_k:
        block_k = _pow2_divisor(scale_block_k, block_k)
    tiles = triton.cdiv(m, block_m) * triton.cdiv(n, block_n)
    max_split = max(1, triton.cdiv(k, block_k * SPLIT_K_MIN_ITERS))
    split_k = max(1, min(max_split, (PROGRAMS_PER_SM * num_sms) // tiles))
    return DecodePlan(mma_mode, block_m, block_n, block_k, split_k, DECODE_NUM_WARPS, DECODE_NUM_STAGES)


def _weight_only_scale_args(w_scale, scale_mode, block_n, block_k):
    """(stride_sn, stride_sk, SCALE_BLOCK_N, SCALE_BLOCK_K) for the kernel."""
    if scale_mode == SCALE_BLOCK:
        return w_scale.stride(0), w_scale.stride(1), block_n, block_k
    if scale_mode == SCALE_PER_CHANNEL:
        return w_scale.stride(0), 0, 1, 1
    return 0, 0, 1, 1


def launch_weight_only(x, w, w_scale, bias, block_n, block_k, scale_mode, plan: Optional[DecodePlan] = None):
    """Run the weight-only kernel(s) on validated inputs; `plan` forces a decode launch (tests, tuning)."""
    m, k = x.shape
    n = w.shape[0]
    out = torch.empty((m, n), dtype=x.dtype, device=x.device)
    if m == 0:
        return out
    stride_sn, stride_sk, scale_block_n, scale_block_k = _weight_only_scale_args(w_scale, scale_mode, block_n, block_k)
    args = [x, w, w_scale, bias if bias is not None else w_scale]
    sizes = [m, n, k, _m_bucket(m)]
    strides = [x.stride(0), x.stride(1), w.stride(0), w.stride(1), stride_sn, stride_sk]
    meta = dict(SCALE_MODE=scale_mode, SCALE_BLOCK_N=scale_block_n, SCALE_BLOCK_K=scale_block_k,
                DOT_IN_FP32=x.dtype == torch.float32 or (_interpreting() and x.dtype == torch.bfloat16))
    if plan is None and m > DECODE_MAX_M:
        tile_k = _pow2_divisor(scale_block_k, TILE_BLOCK_K) if scale_mode == SCALE_BLOCK else TILE_BLOCK_K

        def grid(cfg):
            return (triton.cdiv(m, cfg["BLOCK_M"]) * triton.cdiv(n, cfg["BLOCK_N"]), 1)

        wrap_triton(weight_only_tiled_kernel())[grid](
            *args, out, *sizes, k, *strides, 0, out.stride(0), out.stride(1),
            HAS_BIAS=bias is not None, EVEN_K=k % tile_k == 0, BLOCK_K=tile_k, **meta,
        )
        return out
    if plan is None:
        plan = decode_plan(m, n, k, scale_block_k if scale_mode == SCALE_BLOCK else 0, _num_sms(x.device))
    k_per_split = triton.cdiv(triton.cdiv(k, plan.split_k), plan.block_k) * plan.block_k
    split_k = triton.cdiv(k, k_per_split)
    target = out if split_k == 1 else torch.empty((split_k, m, n), dtype=torch.float32, device=x.device)
    grid = (triton.cdiv(m, plan.block_m) * triton.cdiv(n, plan.block_n), split_k)
    wrap_triton(kernels.fp8_weight_only_kernel)[grid](
        *args, target, *sizes, k_per_split, *strides, m * n, target.stride(-2), target.stride(-1),
        HAS_BIAS=bias is not None and split_k == 1, MMA_MODE=plan.mma_mode, EVEN_K=k % plan.block_k == 0,
        BLOCK_M=plan.block_m, BLOCK_N=plan.block_n, BLOCK_K=plan.block_k, GROUP_M=1,
        num_warps=plan.num_warps, num_stages=plan.num_stages, **meta,
    )
    if split_k > 1:
        wrap_triton(kernels.split_k_reduce_kernel)[(triton.cdiv(m * n, REDUCE_BLOCK),)](
            target, bias if bias is not None else target, out, m, n, out.stride(0), out.stride(1),
            SPLIT_K=split_k, HAS_BIAS=bias is not None, BLOCK=REDUCE_BLOCK,
        )
    return out


def launch_block_scaled(a, b, a_scale, b_scale, bias, out_dtype, group_n, group_k,
                        config: Optional[triton.Config] = None):
    """Run the block-scaled kernel on validated inputs; `config` skips autotuning (tuning scripts)."""
    m, k = a.shape
    n = b.shape[0]
    out = torch.empty((m, n), dtype=out_dtype, device=a.device)
    if m == 0:
        return out
    block_k = _pow2_divisor(group_k, BLOCK_SCALED_BLOCK_K)
    kernel = block_scaled_tuned_kernel() if config is None else kernels.fp8_block_scaled_kernel
    launch_meta = {} if config is None else dict(config.kwargs, num_warps=config.num_warps,
                                                   num_stages=config.num_stages)

    def grid(cfg):
        return (triton.cdiv(m, cfg["BLOCK_M"]) * triton.cdiv(n, cfg["BLOCK_N"]),)

    wrap_triton(kernel)[grid](
        a, b, a_scale, b_scale, bias if bias is not None else b_scale, out,
        m, n, k, _m_bucket(m),
        a.stride(0), a.stride(1), b.stride(0), b.stride(1),
        a_scale.stride(0), a_scale.stride(1), b_scale.stride(0), b_scale.stride(1),
        out.stride(0), out.stride(1),
        GROUP_N=group_n, GROUP_K=group_k, HAS_BIAS=bias is not None, EVEN_K=k % block_k == 0,
        BLOCK_K=block_k, **launch_meta,
    )
    return out


def _weight_only_op(x: torch.Tensor, w: torch.Tensor, w_scale: torch.Tensor, bias: Optional[torch.Tensor],
                    block_n: int, block_k: int) -> torch.Tensor:
    scale_mode = check_weight_only(x, w, w_scale, bias, block_n, block_k)
    return launch_weight_only(x, w, w_scale, bias, block_n, block_k, scale_mode)


def _block_scaled_op(a: torch.Tensor, b: torch.Tensor, scale_a: torch.Tensor, scale_b: torch.Tensor,
                     bias: Optional[torch.Tensor], out_dtype: torch.dtype, group_n: int, group_k: int) -> torch.Tensor:
    check_block_scaled(a, b, scale_a, scale_b, bias, out_dtype, group_n, group_k)
    return launch_block_scaled(a, b, scale_a, scale_b, bias, out_dtype, group_n, group_k)


def register() -> None:
    """Define both `xpu_quant` triton ops (call once; the package guards repeats)."""
    triton_op(WEIGHT_ONLY_OP, mutates_args=())(_weight_only_op)
    triton_op(BLOCK_SCALED_OP, mutates_args=())(_block_scaled_op)
