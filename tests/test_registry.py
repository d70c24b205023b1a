"""Kernel registry: order, refusals with reasons, force/disable, unknown devices, config."""

import dataclasses
import logging

import pytest
import torch
import torch.nn.functional as F

from conftest import fp8_weight, rel_err
from xpu_inductor_ext import load_config
from xpu_inductor_ext.kernels import LinearProblem, candidates, platform, select
from xpu_inductor_ext.kernels.scaled_mm import CpuOnednnFp8, CudaScaledMm
from xpu_inductor_ext.ops import BLOCK_SCALED_MM, SCALED_MM, WEIGHT_ONLY_MM

CPU = torch.device("cpu")


def problem(op=SCALED_MM, device="cpu", n=256, k=512, a=torch.float8_e4m3fn, b=torch.float8_e4m3fn,
            out=torch.bfloat16, a_scale="row", b_scale="row", **kw):
    return LinearProblem(op=op, device=device, m=8, n=n, k=k, a_dtype=a, b_dtype=b, out_dtype=out,
                         a_scale=a_scale, b_scale=b_scale, **kw)


def test_candidate_order_is_native_first_decomposition_last():
    assert [c.name for c in candidates(SCALED_MM)] == [
        "xpu_fp8_gemm", "cuda_scaled_mm", "cpu_onednn_fp8", "dequant_gemm", "decomposition"]
    assert [c.name for c in candidates(WEIGHT_ONLY_MM)][0] == "xpu_fp8_gemm_w8a16"
    for op in (SCALED_MM, WEIGHT_ONLY_MM, BLOCK_SCALED_MM):
        assert candidates(op)[-1].name == "decomposition"


def test_cpu_picks_dequant_gemm_and_says_why_natives_were_refused():
    sel = select(problem(), CPU)
    reasons = {r["kernel"]: r["reason"] for r in sel.refused}
    assert sel.chosen.name == "dequant_gemm"
    assert "not an Intel XPU" in reasons["xpu_fp8_gemm"]
    assert "not CUDA" in reasons["cuda_scaled_mm"]
    if not platform.cpu_native_fp8()[0]:
        assert "AMX-FP8" in reasons["cpu_onednn_fp8"] and "19.7 s" in reasons["cpu_onednn_fp8"]


def test_unknown_device_gets_the_decomposition():
    sel = select(problem(device="mps"), torch.device("mps"))
    assert sel.chosen.name == "decomposition"
    assert any("no generated GEMM path" in r["reason"] for r in sel.refused)


def test_forced_kernel_wins_when_it_can():
    sel = select(problem(), CPU, force=("decomposition",))
    assert sel.chosen.name == "decomposition" and sel.notes == ["forced: decomposition"]


def test_forced_kernel_that_cannot_implement_falls_back_and_logs(caplog):
    with caplog.at_level(logging.WARNING):
        sel = select(problem(), CPU, force=("cuda_scaled_mm",))
    assert sel.chosen.name == "dequant_gemm"
    assert sel.refused[0] == {"kernel": "cuda_scaled_mm", "reason": "forced, but device cpu is not CUDA"}
    assert "fell back" in sel.notes[0] and "falling back" in caplog.text


def test_disabled_kernel_is_skipped_with_reason():
    sel = select(problem(), CPU, disable=("dequant_gemm",))
    assert sel.chosen.name == "decomposition"
    assert {"kernel": "dequant_gemm", "reason": "disabled by config"} in sel.refused


@pytest.mark.parametrize("kw,reason", [
    ({"k": 520}, "K = 520 is not a multiple of 16"),
    ({"a": torch.float8_e5m2, "b": torch.float8_e5m2}, "at least one e4m3"),
    ({"out": torch.float16}, "row-wise _scaled_mm outputs bf16 only"),
])
def test_cuda_scaled_mm_refuses_what_cublaslt_cannot_do(kw, reason):
    ok, why = CudaScaledMm().can_implement(problem(**kw))
    assert not ok and reason in why


def test_cuda_scaled_mm_accepts_tensorwise_fp16():
    assert CudaScaledMm().can_implement(problem(out=torch.float16, a_scale="tensor", b_scale="tensor"))[0]


def test_cpu_onednn_fp8_is_chosen_only_with_amx_fp8(monkeypatch):
    monkeypatch.setattr(platform, "cpu_flags", lambda: frozenset({"amx_fp8", "avx512f"}))
    assert CpuOnednnFp8().is_supported(CPU) == (torch.backends.mkldnn.is_available(), "CPU has AMX-FP8")
    monkeypatch.setattr(platform, "cpu_flags", lambda: frozenset({"avx2"}))
    ok, why = CpuOnednnFp8().is_supported(CPU)
    assert not ok and "reference FP8 kernel" in why


def test_config_precedence_and_parsing():
    env = {"XPU_QUANT_DISABLE_KERNELS": "dequant_gemm", "XPU_QUANT_FUSE_FP8_LINEAR": "off",
           "XPU_QUANT_DUMP_DIR": "/tmp/d"}
    cfg = load_config({"fuse_fp8_linear": True}, env)
    assert cfg.fuse_fp8_linear is True and cfg.disable_kernels == ("dequant_gemm",) and cfg.dump_dir == "/tmp/d"


@pytest.mark.parametrize("options,message", [
    ({"force_kernels": "cutlass"}, "unknown kernel 'cutlass'; known kernels: cpu_fused_gemv, cpu_onednn_fp8"),
    ({"disable_kernels": ["decomposition"]}, "cannot be disabled"),
    ({"fuse_everything": True}, "unknown option 'fuse_everything'"),
])
def test_config_errors_are_clear(options, message):
    with pytest.raises(ValueError, match=message):
        load_config(options, {})


def test_bad_boolean_environment_value_is_rejected():
    with pytest.raises(ValueError, match="expected a boolean"):
        load_config({}, {"XPU_QUANT_FUSE_FP8_LINEAR": "maybe"})


def test_forcing_through_compile_options_reaches_the_report(compile_quant):
    w, s = fp8_weight(32, 64)
    fn = lambda x, w, s: F.linear(x, (w.float() * s).to(x.dtype))  # noqa: E731
    x = torch.randn(3, 64).to(torch.bfloat16)
    compiled = compile_quant(fn, force_kernels="decomposition")
    out = compiled(x, w, s)
    entry = compiled.fused()[0]
    assert entry["kernel"] == "decomposition" and entry["notes"] == ["forced: decomposition"]
    assert rel_err(out, fn(x, w, s)) < 1e-2


@pytest.mark.parametrize("m,reason", [(8, "M = 8 > 4"), ("s0", "only known at run time (s0)")])
def test_cpu_fused_gemv_takes_only_small_static_m(m, reason):
    weight_only = dict(op=WEIGHT_ONLY_MM, a=torch.bfloat16, a_scale=None)
    assert select(dataclasses.replace(problem(**weight_only), m=1), CPU).chosen.name == "cpu_fused_gemv"
    sel = select(dataclasses.replace(problem(**weight_only), m=m), CPU)
    assert sel.chosen.name == "dequant_gemm"
    assert reason in {r["kernel"]: r["reason"] for r in sel.refused}["cpu_fused_gemv"]


@pytest.mark.parametrize("m,scale,kernel", [
    (1, "channel", "cpu_fused_gemv"), (3, "tensor", "cpu_fused_gemv"), (8, "channel", "dequant_gemm")])
def test_cpu_weight_only_linear_at_small_m_runs_the_fused_gemv(compile_quant, m, scale, kernel):
    w, s = fp8_weight(96, 160, scale)
    x = (torch.randn(m, 160) / 10).bfloat16()
    bias = torch.randn(96).bfloat16()
    compiled = compile_quant(lambda x, w, s, b: F.linear(x, w.to(x.dtype) * s, b))
    out = compiled(x, w, s, bias)
    assert [e["kernel"] for e in compiled.fused()] == [kernel]
    ref = x.double() @ (w.double() * s.double()).t() + bias.double()
    assert out.dtype == torch.bfloat16 and rel_err(out, ref) < 1e-2


def test_cpu_fused_gemv_with_block_scales(compile_quant):
    from xpu_inductor_ext.formats import dequantize_blocks, quantize_per_block

    w, s = quantize_per_block(torch.randn(200, 328) * 0.05, 128)  # ragged N and K
    x = (torch.randn(2, 328) / 10).bfloat16()
    compiled = compile_quant(lambda x, w, s: F.linear(x, dequantize_blocks(w, s, 128, x.dtype)))
    out = compiled(x, w, s)
    assert [e["kernel"] for e in compiled.fused()] == ["cpu_fused_gemv"]
    scale = s.double().repeat_interleave(128, 0)[:200].repeat_interleave(128, 1)[:, :328]
    assert rel_err(out, x.double() @ (w.double() * scale).t()) < 1e-2


def test_one_token_step_after_a_dynamic_prefill_gets_the_fused_gemv(compile_quant):
    """dynamic=True: the prefill graph has a symbolic M (dequant_gemm); Dynamo specializes M = 1,
    so the decode step compiles its own graph, with the fused GEMV."""
    w, s = fp8_weight(128, 256)
    compiled = compile_quant(lambda x, w, s: F.linear(x, w.to(x.dtype) * s), dynamic=True)
    compiled((torch.randn(7, 256) / 10).bfloat16(), w, s)
    assert [(e["kernel"], isinstance(e["problem"]["m"], str)) for e in compiled.fused()] == [("dequant_gemm", True)]
    x = (torch.randn(1, 256) / 10).bfloat16()
    out = compiled(x, w, s)
    assert [(e["kernel"], e["problem"]["m"]) for e in compiled.fused()] == [("cpu_fused_gemv", 1)]
    assert rel_err(out, x.double() @ (w.double() * s.double()).t()) < 1e-2
