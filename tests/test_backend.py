"""The backend end to end: entry point, options, dynamic shapes, training graphs, cache, dumps, CLI."""

import json
import re
import logging
import subprocess
import sys

import pytest
import torch
from torch._dynamo.utils import counters

from conftest import rel_err
from xpu_inductor_ext import load_config
from xpu_inductor_ext.inspect import dump as dump_module
from xpu_inductor_ext.inspect.cli import main as cli_main
from xpu_inductor_ext.nn import Fp8Linear
from xpu_inductor_ext.passes import RECENT_REPORTS, XpuQuantPassManager

BF16 = torch.bfloat16


def fp8_mlp(mode="dynamic"):
    torch.manual_seed(0)
    dense = torch.nn.Sequential(torch.nn.Linear(64, 96), torch.nn.SiLU(), torch.nn.Linear(96, 32)).to(BF16)
    return torch.nn.Sequential(Fp8Linear.from_linear(dense[0], mode), dense[1],
                               Fp8Linear.from_linear(dense[2], mode)).eval()


def test_backend_is_listed_before_the_package_is_imported():
    code = ("import sys, torch; print('xpu_quant' in torch._dynamo.list_backends(), "
            "'xpu_inductor_ext' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "False"]


def test_dynamic_token_dimension_serves_many_m_with_one_compile(compile_quant):
    model = fp8_mlp()
    compiled = compile_quant(model, dynamic=True)
    for m in (3, 5, 17, 64):
        x = torch.randn(m, 64).to(BF16)
        with torch.no_grad():
            assert rel_err(compiled(x), model(x)) < 5e-2
    reports = compiled.reports()
    assert len(reports) == 1
    assert [e["op"] for e in reports[0]["fused"]] == ["xpu_quant::fp8_scaled_mm"] * 2
    assert not isinstance(reports[0]["fused"][0]["problem"]["m"], int)


def test_fullgraph_compile(compile_quant):
    model = fp8_mlp("weight_only")
    compiled = compile_quant(model, fullgraph=True)
    x = torch.randn(2, 7, 64).to(BF16)
    with torch.no_grad():
        assert rel_err(compiled(x), model(x)) < 2e-2
    assert len(compiled.fused()) == 2


def test_training_graph_is_passed_through_unchanged(tmp_path, caplog):
    model = fp8_mlp("weight_only")
    model[0].bias.requires_grad_(True)
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="xpu_quant", options={"dump_dir": str(tmp_path)})
    x = torch.randn(4, 64).to(BF16)
    with caplog.at_level(logging.INFO, logger="xpu_inductor_ext"):
        out = compiled(x)
    out.float().sum().backward()
    assert model[0].bias.grad is not None
    assert "passed to Inductor unchanged" in caplog.text
    assert not list(tmp_path.rglob("report.json"))


def test_uuid_covers_config_and_is_stable():
    a = XpuQuantPassManager(load_config({}, {}))
    b = XpuQuantPassManager(load_config({}, {}))
    c = XpuQuantPassManager(load_config({"disable_kernels": "dequant_gemm"}, {}))
    assert a.uuid() == b.uuid() != c.uuid()


def test_cache_reuses_same_config_and_recompiles_on_change():
    from torch._inductor.utils import fresh_cache

    model = fp8_mlp("weight_only")
    x = torch.randn(4, 64).to(BF16)

    def compile_once(options):
        torch._dynamo.reset()
        with torch.no_grad():
            torch.compile(model, backend="xpu_quant", options=options)(x)

    with fresh_cache(), torch._inductor.config.patch(fx_graph_cache=True):
        counters.clear()
        compile_once({})
        misses = counters["inductor"]["fxgraph_cache_miss"]
        compile_once({})
        assert counters["inductor"]["fxgraph_cache_hit"] == 1
        compile_once({"disable_kernels": "dequant_gemm"})
        assert counters["inductor"]["fxgraph_cache_miss"] == misses + 1


def test_dump_folder_holds_each_stage_and_the_report(compile_quant):
    model = fp8_mlp()
    compiled = compile_quant(model)
    compiled(torch.randn(4, 64).to(BF16))
    report = compiled.reports()[-1]
    folder = compiled.dump_dir / report["graph"]
    assert sorted(p.name for p in folder.iterdir()) == [
        "00_input.py", "01_after_fp8_block_linear.py", "02_after_fp8_linear.py", "03_after_kernel_selection.py",
        "report.json"]
    assert "torch.ops.aten.addmm" in (folder / "00_input.py").read_text()
    assert "xpu_quant.fp8_scaled_mm" in (folder / "02_after_fp8_linear.py").read_text()
    assert "xpu_quant.fp8_scaled_mm" not in (folder / "03_after_kernel_selection.py").read_text()
    entry = report["fused"][0]
    assert {"pattern", "op", "kernel", "refused"} <= entry.keys()
    assert all({"kernel", "reason"} == r.keys() for r in entry["refused"])
    assert [p["name"] for p in report["passes"]] == ["fp8_block_linear", "fp8_linear", "kernel_selection"]


def test_artifacts_go_to_trace_structured(monkeypatch, compile_quant):
    names = []
    monkeypatch.setattr(dump_module, "trace_structured",
                        lambda kind, metadata_fn, payload_fn: names.append(metadata_fn()["name"]))
    compiled = compile_quant(fp8_mlp())
    compiled(torch.randn(2, 64).to(BF16))
    assert names == ["xpu_quant_00_input", "xpu_quant_01_after_fp8_block_linear", "xpu_quant_02_after_fp8_linear",
                     "xpu_quant_03_after_kernel_selection", "xpu_quant_report"]


def test_inspect_prints_the_report_as_a_table(compile_quant, capsys):
    compiled = compile_quant(fp8_mlp())
    compiled(torch.randn(2, 64).to(BF16))
    assert cli_main(["inspect", str(compiled.dump_dir)]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header == ["graph", "pattern", "op", "kernel", "launch", "refused"]
    assert out.count("xpu_quant::fp8_scaled_mm") == 2 and "dequant_gemm" in out and "not CUDA" in out


def test_inspect_on_empty_folder_fails_clearly(tmp_path, capsys):
    assert cli_main(["inspect", str(tmp_path)]) == 1
    assert "no report.json" in capsys.readouterr().err


def test_kernels_command_lists_the_registry(capsys):
    assert cli_main(["kernels"]) == 0
    out = capsys.readouterr().out
    assert "xpu_quant::fp8_scaled_mm" in out and "cuda_scaled_mm" in out and "CUDA sm89+" in out


def test_report_json_is_valid_json_with_versions(compile_quant):
    compiled = compile_quant(fp8_mlp())
    compiled(torch.randn(2, 64).to(BF16))
    report = json.loads((next(compiled.dump_dir.rglob("report.json"))).read_text())
    assert report["torch"] == torch.__version__ and report["device"] == "cpu"


def test_unknown_option_fails_at_compile(tmp_path):
    torch._dynamo.reset()
    compiled = torch.compile(fp8_mlp(), backend="xpu_quant", options={"no_such_option": 1})
    with pytest.raises(Exception, match="unknown option 'no_such_option'"):
        with torch.no_grad():
            compiled(torch.randn(2, 64).to(BF16))


def test_reduce_overhead_mode_is_passed_on_and_still_fuses(monkeypatch, tmp_path):
    """`mode=` reaches the backend (Inductor's options for it, CUDA graphs on a GPU) and the passes
    still run: the way to hide the per-op host cost of the Triton ops at decode (benchmarks/RESULTS.md)."""
    import xpu_inductor_ext
    from xpu_inductor_ext import backend

    monkeypatch.setenv("XPU_QUANT_DUMP_DIR", str(tmp_path))  # no cache hit: the passes run (mode excludes options)
    modes = []
    compile_graph = backend.compile_graph
    monkeypatch.setattr(backend, "compile_graph", lambda gm, inputs, config, mode=None: (
        modes.append(mode), compile_graph(gm, inputs, config, mode))[1])
    model = fp8_mlp("weight_only")
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="xpu_quant", mode="reduce-overhead")
    x = torch.randn(3, 64).to(BF16)
    with torch.no_grad():
        assert rel_err(compiled(x), model(x)) < 2e-2
    fused = xpu_inductor_ext.reports()[-1]["fused"]
    assert [e["op"] for e in fused] == ["xpu_quant::fp8_weight_only_mm"] * 2
    assert modes == ["reduce-overhead"]


def test_cuda_graphs_get_a_cpp_wrapper_unless_inductor_captures_them(monkeypatch):
    """Option cpp_wrapper: C++ host code for inference graphs on CUDA (fewer µs per kernel launch
    without CUDA graphs), never for CPU graphs, never under mode="reduce-overhead", off on request."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from xpu_inductor_ext import backend

    seen = []
    monkeypatch.setattr(backend, "compile_fx", lambda gm, inputs, config_patches: seen.append(config_patches))
    with FakeTensorMode(allow_non_fake_inputs=True):
        on_gpu = [torch.empty(4, 8, device="cuda")]
    on_cpu = [torch.empty(4, 8)]
    with torch.no_grad():
        backend.compile_graph(None, on_gpu, load_config())
        backend.compile_graph(None, on_cpu, load_config())
        backend.compile_graph(None, on_gpu, load_config(), mode="reduce-overhead")
        backend.compile_graph(None, on_gpu, load_config({"cpp_wrapper": False}))
    assert [p.get("cpp_wrapper", False) for p in seen] == [True, False, False, False]
    assert seen[2]["triton.cudagraphs"] is True
    reasons = [p["post_grad_custom_pre_pass"].host_code["reason"] for p in seen]
    assert "CUDA inference graph" in reasons[0] and "not a CUDA graph" in reasons[1]
    assert "reduce-overhead" in reasons[2] and reasons[3] == "option cpp_wrapper is off"


def test_report_and_inspect_say_which_host_code_a_graph_got(compile_quant, capsys):
    import xpu_inductor_ext

    compiled = compile_quant(fp8_mlp("weight_only"))
    compiled(torch.randn(3, 64).to(BF16))
    assert compiled.reports()[-1]["host_code"] == xpu_inductor_ext.reports()[-1]["host_code"] == {
        "cpp": False, "reason": "not a CUDA graph (the C++ host code pays off at CUDA decode)"}
    assert cli_main(["inspect", str(compiled.dump_dir)]) == 0
    out = capsys.readouterr().out
    assert "host code (option cpp_wrapper)" in out and re.search(r"Python +not a CUDA graph", out)


def test_a_failed_cpp_build_falls_back_to_python_host_code(monkeypatch, caplog, tmp_path):
    """A machine without a working C++ toolchain still compiles: the graph is built again with
    Python host code, logged and reported; any other compile error is raised as it came."""
    from torch._inductor.exc import CppCompileError, InductorError
    from torch._subclasses.fake_tensor import FakeTensorMode

    from xpu_inductor_ext import backend

    calls = []

    def fake_compile_fx(gm, inputs, config_patches):
        calls.append(dict(config_patches))
        config_patches["post_grad_custom_pre_pass"](torch.fx.symbolic_trace(lambda t: t + 1).graph)  # reports, dumps
        if config_patches.get("cpp_wrapper"):
            raise InductorError(CppCompileError(["g++", "wrapper.cpp"], "fatal error: Python.h: missing"), None)
        return "python-wrapped"

    monkeypatch.setattr(backend, "compile_fx", fake_compile_fx)
    with FakeTensorMode(allow_non_fake_inputs=True):
        on_gpu = [torch.empty(4, 8, device="cuda")]
    RECENT_REPORTS.clear()
    with torch.no_grad(), caplog.at_level(logging.WARNING, logger="xpu_inductor_ext"):
        assert backend.compile_graph(None, on_gpu, load_config({"dump_dir": str(tmp_path)})) == "python-wrapped"
    assert [c["cpp_wrapper"] for c in calls] == [True, False]
    host_code = calls[-1]["post_grad_custom_pre_pass"].host_code
    assert not host_code["cpp"] and "did not build (CppCompileError: C++ compile error)" in host_code["reason"]
    assert "C++ host code did not build" in caplog.text
    # the failed attempt's report and dumps are taken back: one graph, reported once, as compiled
    reported = list(RECENT_REPORTS)
    assert [r["host_code"]["cpp"] for r in reported] == [False]
    assert [d.name for d in tmp_path.iterdir()] == [reported[0]["graph"]]

    def other_failure(gm, inputs, config_patches):
        raise ValueError("fp8_weight_only_mm: w_scale must be float32")

    monkeypatch.setattr(backend, "compile_fx", other_failure)
    with torch.no_grad(), pytest.raises(ValueError, match="w_scale must be float32"):
        backend.compile_graph(None, on_gpu, load_config())
