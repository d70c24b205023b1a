"""Launches fixed at compile time, for Inductor to make itself: the Triton ops' decode plans
written into a compiled graph as user-defined Triton kernel calls (`torch.library.wrap_triton`).

A compiled graph otherwise calls the ops at run time, and each call pays the dispatcher, the
launch lookup and triton's launcher in Python, tens of µs on every step outside CUDA graphs. Inductor's
own launch of a user-defined kernel costs a few µs (benchmarks/RESULTS.md, fifth session). It can
take over only where the launch depends on nothing but what the graph fixes (shapes, strides,
dtypes, device): `fixed_*_launch` say whether that holds and why not. What stays with the run-time
op: dynamic M, the autotuned tiles above DECODE_MAX_M, anything off CUDA. A fixed launch cannot
read the weight, so it takes the paths that read every code exactly: the split MMA for e4m3
weights, the exact bit moves for the rest (replayed under CUDA graphs, per-channel decode ran
5-15% slower than the op's finite-only moves on an H200, benchmarks/RESULTS.md); it
also gives up programmatic dependent launch (Inductor's launcher has no such option) and tensor
descriptors (pointer loads instead).

Imports triton: load it through the package, only where triton is importable.
"""

import dataclasses
import functools
from typing import Optional

import torch
import triton
from torch.library import wrap_triton

from . import ops
from .launches import KernelLaunch, run_launch
from .validation import check_block_scaled, check_weight_only

FIXED_SPLIT_K = True  # fixed launches split K as the ops do (else one kernel, no reduction launch)
LAUNCH_OPTIONS = ("num_warps", "num_stages")  # launch options: Inductor takes them as a config, not arguments


def _refusal(x: torch.Tensor) -> Optional[str]:
    """Why no launch on `x`'s rows can be fixed at compile time, or None."""
    if x.device.type != "cuda":
        return f"device {x.device.type}: fixed launches are built for CUDA only"
    m = x.shape[0]
    if not isinstance(m, int):
        return (f"M = {m} is dynamic: the plan depends on it (compile with dynamic=False for one graph per "
                "decode batch size, whose launches Inductor makes)")
    if m == 0:
        return "M = 0"
    if m > ops.DECODE_MAX_M:
        return f"M = {m} > {ops.DECODE_MAX_M}: the autotuned tiles run through the op (their host cost is small beside them)"
    return None


def fixed_weight_only_launch(x, w, w_scale, bias, block_n: int, block_k: int) -> tuple[Optional[KernelLaunch], str]:
    """The weight-only launch these (fake) inputs fix, or None; and why."""
    scale_mode = check_weight_only(x, w, w_scale, bias, block_n, block_k)
    refusal = _refusal(x)
    if refusal is not None:
        return None, refusal
    launch = weight_only_decode_launch(x, w, w_scale, bias, block_n, block_k, scale_mode)
    return launch, f"fixed decode plan: {_describe(launch)}"


def weight_only_decode_launch(x, w, w_scale, bias, block_n: int, block_k: int, scale_mode: int) -> KernelLaunch:
    """The decode launch of validated weight-only inputs with M <= DECODE_MAX_M, from what the
    graph fixes alone: the op's plan without reading the weight's codes (`ops.default_decode_plan`
    with read_codes=False), the K split as FIXED_SPLIT_K says, no PDL."""
    plan = ops.default_decode_plan(x, w, scale_mode, block_n, block_k, read_codes=False)
    if not FIXED_SPLIT_K:
        plan = dataclasses.replace(plan, split_k=1)
    return ops.weight_only_launch(x, w, w_scale, bias, block_n, block_k, scale_mode, plan)


def fixed_block_scaled_launch(a, b, scale_a, scale_b, bias, out_dtype, group_n: int,
                              group_k: int) -> tuple[Optional[KernelLaunch], str]:
    """The block-scaled launch these (fake) inputs fix, or None; and why."""
    check_block_scaled(a, b, scale_a, scale_b, bias, out_dtype, group_n, group_k)
    refusal = _refusal(a)
    if refusal is not None:
        return None, refusal
    launch = block_scaled_decode_launch(a, b, scale_a, scale_b, bias, group_n, group_k)
    return launch, f"fixed decode plan: {_describe(launch)}"


def block_scaled_decode_launch(a, b, scale_a, scale_b, bias, group_n: int, group_k: int) -> KernelLaunch:
    """The decode launch of validated block-scaled inputs with M <= DECODE_MAX_M: pointer loads
    (tensor descriptors are made per call from real tensors), no PDL."""
    plan = ops.block_scaled_decode_plan(b.shape[0], a.shape[1], group_k, ops._num_sms(a.device))
    plan = dataclasses.replace(plan, descriptors=False, split_k=plan.split_k if FIXED_SPLIT_K else 1)
    return ops.block_scaled_launch(a, b, scale_a, scale_b, bias, group_n, group_k, decode=plan)


def _describe(launch: KernelLaunch) -> str:
    split = f", K split {launch.partials[0]} + reduction" if launch.partials else ""
    return f"{launch.kernel.fn.__name__} grid {launch.grid}{split}"


def weight_only_in_graph(launch: KernelLaunch, x, w, w_scale, bias, block_n: int = 0, block_k: int = 0):
    """`triton_fp8_weight_only_mm` as `launch` (what `fixed_weight_only_launch` gave for these
    inputs' shapes and dtypes), traced into a graph: Inductor makes the launches. The block sizes
    are the node's arguments, taken so the signature matches the op's; `launch` holds them."""
    tensors, out = ops.weight_only_operands(x, w, w_scale, bias)
    return run_launch(launch, tensors, out, bias, launcher=_traced_launch)


def block_scaled_in_graph(launch: KernelLaunch, a, b, scale_a, scale_b, bias, out_dtype, group_n: int, group_k: int):
    """`triton_fp8_block_scaled_mm` as `launch` (from `fixed_block_scaled_launch`), traced into a graph."""
    tensors, out = ops.block_scaled_operands(a, b, scale_a, scale_b, bias, out_dtype)
    return run_launch(launch, tensors, out, bias, launcher=_traced_launch)


def _traced_launch(launch: KernelLaunch, args: tuple) -> None:
    """One launch through `wrap_triton`: under tracing a user-defined Triton kernel node of the
    graph, which Inductor launches from its own code."""
    _wrapped(launch)[launch.grid](*args, **_constexprs(launch))


def _constexprs(launch: KernelLaunch) -> dict:
    if launch.meta.get("PDL") or launch.meta.get("launch_pdl") or launch.descriptor_blocks is not None:
        raise ValueError(f"fixed launches use neither PDL nor tensor descriptors: {launch}")
    return {k: v for k, v in launch.meta.items() if k not in LAUNCH_OPTIONS}


def _wrapped(launch: KernelLaunch):
    """The launch's kernel with its warps and stages as a one-config autotuner (how Inductor takes
    launch options), wrapped for tracing."""
    options = tuple((k, launch.meta[k]) for k in LAUNCH_OPTIONS if k in launch.meta)
    return wrap_triton(_one_config(launch.kernel, options))


@functools.lru_cache(maxsize=None)
def _one_config(kernel, options: tuple):
    return triton.autotune(configs=[triton.Config({}, **dict(options))], key=[])(kernel)
