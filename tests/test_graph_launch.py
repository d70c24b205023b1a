"""Kernel launches fixed in the graph (option graph_launch): which nodes get them and why, how they
are traced into the graph, and their numerics through the interpreter.

The launches themselves are made by Inductor's generated code on a GPU (checked at full size by
`benchmarks/bench_triton_fp8.py`'s `check_graph_launches`); here the CUDA decisions are taken on
fake CUDA tensors, and the fixed launches run eagerly on CPU tensors under TRITON_INTERPRET=1.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import torch

pytest.importorskip("triton")

from torch._subclasses.fake_tensor import FakeTensorMode  # noqa: E402

from tests.conftest import rel_err  # noqa: E402
from xpu_inductor_ext.config import Config  # noqa: E402
from xpu_inductor_ext.kernels import Candidate, platform  # noqa: E402
from xpu_inductor_ext.kernels.triton import TritonFp8BlockScaledMm, TritonFp8WeightOnly  # noqa: E402
from xpu_inductor_ext.kernels.triton_fp8 import graph_launch, ops, register_triton_ops  # noqa: E402
from xpu_inductor_ext.kernels.triton_fp8.validation import SCALE_PER_CHANNEL  # noqa: E402
from xpu_inductor_ext.passes import selection  # noqa: E402

register_triton_ops()
H200_SMS = 132


@contextlib.contextmanager
def fake_h200(capability=(9, 0)):
    """Fake CUDA tensors, with the capability and SM count the plans read patched to an H200's
    (or the capability given), decided as on the GPU (not under the interpreter)."""
    with mock.patch.object(platform, "cuda_capability", lambda device: capability), \
            mock.patch.object(ops, "_interpreting", lambda: False), \
            mock.patch.object(ops, "_num_sms", lambda device: H200_SMS), \
            FakeTensorMode(allow_non_fake_inputs=True) as mode:
        yield mode


def _weight_only_args(m, n, k, dtype=torch.bfloat16, device="cuda", bias=False, fmt=torch.float8_e4m3fn):
    x = torch.empty(m, k, dtype=dtype, device=device)
    w = torch.empty(n, k, dtype=fmt, device=device)
    s = torch.empty(n, 1, dtype=torch.float32, device=device)
    return x, w, s, torch.empty(n, dtype=dtype, device=device) if bias else None


E5M2 = torch.float8_e5m2


@pytest.mark.parametrize("m, dtype, fmt, capability, fixed", [
    (1, torch.bfloat16, E5M2, (8, 0), True), (2, torch.bfloat16, None, (9, 0), True),  # the GEMV
    (4, torch.float16, E5M2, (8, 0), True), (16, torch.float16, None, (9, 0), True),  # the cast
    (3, torch.bfloat16, None, (9, 0), True),  # e4m3 on sm_90: the split MMA
    (16, torch.bfloat16, E5M2, (9, 0), True), (16, torch.bfloat16, None, (8, 0), True),  # the exact bit moves
    (17, torch.float16, None, (9, 0), False)])
def test_weight_only_fixed_where_the_plan_depends_on_the_graph_alone(m, dtype, fmt, capability, fixed):
    fmt = fmt or torch.float8_e4m3fn
    with fake_h200(capability):
        launch, why = graph_launch.fixed_weight_only_launch(*_weight_only_args(m, 8192, 4096, dtype, fmt=fmt), 0, 0)
    assert (launch is not None) == fixed, why
    if fixed:
        assert why.startswith("fixed decode plan")
        assert not launch.meta.get("PDL")
        split = dtype == torch.bfloat16 and fmt == torch.float8_e4m3fn and capability >= ops.SPLIT_MMA_MIN_CAPABILITY
        if m > ops.GEMV_MAX_M and split:  # reads every e4m3 code exactly, and beat the exact bit moves
            assert launch.kernel.fn.__name__ == "fp8_weight_only_split_kernel", why
        elif m > ops.GEMV_MAX_M:  # a widening that reads every code exactly, without looking at the weight
            assert launch.meta["WIDEN"] == (ops.WIDEN_BITS_EXACT if dtype == torch.bfloat16 else ops.WIDEN_CAST)
    else:
        assert f"M = {m} > {ops.DECODE_MAX_M}" in why


@pytest.mark.parametrize("fmt, kernel", [(torch.float8_e4m3fn, "fp8_weight_only_split_kernel"),
                                         (E5M2, "fp8_weight_only_decode_kernel")])
def test_fixed_block_scaled_weight_only_takes_the_split_mma_only_for_e4m3(fmt, kernel):
    """The split MMA reads every e4m3 code exactly but would read an e5m2 inf as NaN; a fixed
    launch cannot check the weight, so e5m2 gets the widened MMA with the exact bit moves."""
    with fake_h200():
        x = torch.empty(8, 4096, dtype=torch.bfloat16, device="cuda")
        w = torch.empty(4096, 4096, dtype=fmt, device="cuda")
        s = torch.empty(32, 32, dtype=torch.float32, device="cuda")
        launch, why = graph_launch.fixed_weight_only_launch(x, w, s, None, 128, 128)
    assert launch.kernel.fn.__name__ == kernel, why
    if fmt == E5M2:
        assert launch.meta["WIDEN"] == ops.WIDEN_BITS_EXACT


def test_fixed_launches_refuse_other_devices_and_dynamic_m():
    with fake_h200():
        launch, why = graph_launch.fixed_weight_only_launch(*_weight_only_args(1, 256, 256, device="cpu"), 0, 0)
    assert launch is None and "CUDA only" in why
    with fake_h200() as mode:
        from torch.fx.experimental.symbolic_shapes import ShapeEnv

        mode.shape_env = ShapeEnv()
        x = torch.empty((mode.shape_env.create_unbacked_symint(), 256), dtype=torch.bfloat16, device="cuda")
        launch, why = graph_launch.fixed_weight_only_launch(x, *_weight_only_args(1, 256, 256)[1:3], None, 0, 0)
    assert launch is None and "dynamic" in why and "dynamic=False" in why


def test_block_scaled_fixed_decode_plan_uses_pointer_loads_without_pdl():
    with fake_h200():
        a = torch.empty(8, 4096, dtype=torch.float8_e4m3fn, device="cuda")
        b = torch.empty(4096, 4096, dtype=torch.float8_e4m3fn, device="cuda")
        sa = torch.empty(8, 32, dtype=torch.float32, device="cuda")
        sb = torch.empty(32, 32, dtype=torch.float32, device="cuda")
        launch, why = graph_launch.fixed_block_scaled_launch(a, b, sa, sb, None, torch.bfloat16, 128, 128)
        big, why_big = graph_launch.fixed_block_scaled_launch(a.new_empty(64, 4096), b, sa.new_empty(64, 32), sb,
                                                              None, torch.bfloat16, 128, 128)
    assert launch is not None, why
    assert launch.meta["DESC"] is False and launch.meta["PDL"] is False and launch.descriptor_blocks is None
    assert launch.partials is not None and "K split" in why  # 32 tiles of 128 rows: split to fill the SMs
    assert big is None and "autotuned tiles" in why_big


def _params_left_to_defaults(launch, tensors: int) -> list:
    """Kernel parameters a launch leaves to their defaults (Inductor's launches of user-defined
    kernels pass only what the node holds, so a defaulted parameter fails in its codegen)."""
    named = launch.kernel.arg_names[tensors + len(launch.ints):]
    return [p for p in named if p not in launch.meta]


@pytest.mark.parametrize("m, fmt, capability, scale", [
    (1, torch.float8_e4m3fn, (9, 0), "channel"), (4, torch.float8_e4m3fn, (9, 0), "channel"),  # GEMV, split MMA
    (4, E5M2, (9, 0), "channel"), (16, E5M2, (9, 0), "channel"), (8, E5M2, (8, 0), "block")])  # decode kernel
def test_fixed_launches_pass_every_kernel_parameter(m, fmt, capability, scale):
    with fake_h200(capability):
        x, w, s, _ = _weight_only_args(m, 8192, 4096, fmt=fmt)
        blocks = (128, 128) if scale == "block" else (0, 0)
        if scale == "block":
            s = torch.empty(64, 32, dtype=torch.float32, device="cuda")
        launch, why = graph_launch.fixed_weight_only_launch(x, w, s, None, *blocks)
        a = torch.empty(m, 4096, dtype=torch.float8_e4m3fn, device="cuda")
        block, _ = graph_launch.fixed_block_scaled_launch(a, w.to(torch.float8_e4m3fn), torch.empty(m, 32, device="cuda"),
                                                          torch.empty(64, 32, device="cuda"), None, torch.bfloat16, 128, 128)
    assert launch is not None, why
    assert _params_left_to_defaults(launch, 5) == []
    assert _params_left_to_defaults(block, 6) == []
    for reduction in (launch.reduction, block.reduction):
        assert reduction is None or _params_left_to_defaults(reduction, 3) == []


@pytest.mark.parametrize("m, n, k, masked", [(4, 14336, 4096, True), (16, 14336, 4096, False), (4, 8192, 8192, False)])
def test_decode_kernel_masks_x_rows_past_m_only_without_a_k_split(m, n, k, masked):
    """Unsplit (224 tiles on 132 SMs), the copies of x rows would multiply requests to the same lines."""
    with fake_h200():
        launch, why = graph_launch.fixed_weight_only_launch(*_weight_only_args(m, n, k, fmt=E5M2), 0, 0)
    assert launch.kernel.fn.__name__ == "fp8_weight_only_decode_kernel", why
    assert launch.meta["MASK_X_ROWS"] is masked and (launch.partials is None) == (n == 14336)


def test_fixed_launches_trace_into_kernel_nodes_that_the_graph_keeps():
    """Traced with the real (JIT) kernels, in a process without the interpreter, whose kernels
    `wrap_triton` runs rather than traces (tests/graph_launch_trace.py)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-m", "tests.graph_launch_trace"], env=env, capture_output=True,
                          text=True, timeout=300, cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["gemv"] == {"kernels": 1, "last_fills_output": True, "grid": [[512, 1, 1]]}
    split_grid = [[8192 // ops.DECODE_BLOCK_N, 2, 1], [8192 * 4 // ops.REDUCE_BLOCK, 1, 1]]
    assert found["split"] == {"kernels": 2, "last_fills_output": True, "grid": split_grid}
    # The pattern matcher's functional passes drop a kernel node nothing uses: fixed launches are
    # traced in as mutating replacements (else a silent uninitialised output).
    assert found["replaced"] == {"mutating": 1, "functional": 0}


@pytest.mark.parametrize("m, n, k, split", [(1, 96, 320, False), (2, 200, 1100, False), (5, 64, 2048, True)])
def test_fixed_weight_only_launch_matches_the_reference(m, n, k, split):
    """What the traced graph launches, run eagerly through `wrap_triton` (the interpreter)."""
    torch.manual_seed(m)
    dtype = torch.bfloat16 if m <= ops.GEMV_MAX_M else torch.float16
    wf = torch.randn(n, k) / 10
    s = (wf.abs().amax(1, keepdim=True) / 448).float()
    w = (wf / s).to(torch.float8_e4m3fn)
    x = (torch.randn(m, k) / 10).to(dtype)
    bias = torch.randn(n).to(dtype)
    with mock.patch.object(ops, "_num_sms", lambda device: 64 if split else 1):
        launch = graph_launch.weight_only_decode_launch(x, w, s, bias, 0, 0, SCALE_PER_CHANNEL)
    assert (launch.partials is not None) == split
    out = graph_launch.weight_only_in_graph(launch, x, w, s, bias)
    ref = x.double() @ (w.double() * s.double()).T + bias.double()
    assert rel_err(out, ref) < (1e-2 if dtype == torch.bfloat16 else 2e-3)


def test_fixed_block_scaled_launch_matches_the_reference():
    torch.manual_seed(3)
    m, n, k, group = 3, 256, 2048, 128
    a = (torch.randn(m, k) / 10)
    sa = a.reshape(m, k // group, group).abs().amax(-1) / 448
    aq = (a / sa.repeat_interleave(group, 1)).to(torch.float8_e4m3fn)
    b = torch.randn(n, k) / 10
    sb = b.reshape(n // group, group, k // group, group).abs().amax((1, 3)) / 448
    bq = (b / sb.repeat_interleave(group, 0).repeat_interleave(group, 1)).to(torch.float8_e4m3fn)
    with mock.patch.object(ops, "_num_sms", lambda device: 16):
        launch = graph_launch.block_scaled_decode_launch(aq, bq, sa, sb, None, group, group)
    assert launch.partials is not None
    out = graph_launch.block_scaled_in_graph(launch, aq, bq, sa, sb, None, torch.bfloat16, group, group)
    ref = (aq.double() * sa.double().repeat_interleave(group, 1)) @ (
        bq.double() * sb.double().repeat_interleave(group, 0).repeat_interleave(group, 1)).T
    assert rel_err(out, ref) < 1e-2


def test_selection_says_who_launches_and_why():
    weight_only = TritonFp8WeightOnly()
    with fake_h200():
        x, w, s, _ = _weight_only_args(1, 4096, 4096)
        values = dict(x=x, w=w, w_scale=s, bias=None, block_n=0, block_k=0)
        fixed, launch = selection._lowering(weight_only, None, values, None)
        assert fixed.func is graph_launch.weight_only_in_graph and launch["by"] == "inductor"
        assert fixed.args[0].grid == (512, 1)  # the launch planned for these shapes, bound once
        refusal = selection.graph_launch_refusal(Config(graph_launch=False))
        kept, launch = selection._lowering(weight_only, None, values, refusal)
        assert kept is weight_only.lower(None)
        assert launch == {"by": "op", "reason": "option graph_launch is off"}
        values["x"] = x.new_empty(8, 4096)
        _, launch = selection._lowering(weight_only, None, values, None)
        assert launch["by"] == "inductor"  # the MMA plan, with the exact widening
        values["x"] = x.new_empty(17, 4096)
        _, launch = selection._lowering(weight_only, None, values, None)
        assert launch["by"] == "op" and "M = 17 > 16" in launch["reason"]
        a = torch.empty(8, 4096, dtype=torch.float8_e4m3fn, device="cuda")
        block = dict(a=a, b=a.new_empty(4096, 4096), scale_a=torch.empty(8, 32, device="cuda"),
                     scale_b=torch.empty(32, 32, device="cuda"), bias=None, out_dtype=torch.bfloat16,
                     group_n=128, group_k=128)
        fixed, launch = selection._lowering(TritonFp8BlockScaledMm(), None, block, None)
        assert fixed.func is graph_launch.block_scaled_in_graph and launch["by"] == "inductor"

    class Native(Candidate):
        name = "native"

        def lower(self, problem):
            return torch.mm

    assert selection._lowering(Native(), None, {}, None) == (torch.mm, None)  # no launch entry to report


def test_inductor_cuda_graphs_keep_the_runtime_op():
    assert selection.graph_launch_refusal(Config()) is None
    with mock.patch.object(torch._inductor.config.triton, "cudagraphs", True):
        assert "reduce-overhead" in selection.graph_launch_refusal(Config())


def test_inspect_table_says_who_launches():
    from xpu_inductor_ext.inspect.table import report_table

    entry = {"pattern": "p", "op": "xpu_quant::fp8_weight_only_mm", "kernel": "triton_fp8_weight_only",
             "launch": {"by": "inductor", "reason": "fixed decode plan: fp8_weight_only_kernel grid (512, 1)"}}
    native = {"pattern": "p", "op": "xpu_quant::fp8_scaled_mm", "kernel": "cuda_scaled_mm"}
    lines = report_table([{"graph": "g", "fused": [entry, native], "near_misses": []}]).splitlines()
    assert "inductor: fixed decode plan: fp8_weight_only_kernel grid (512, 1)" in lines[2]
    assert lines[3].split()[4] == "-"  # no launch entry for native kernels
