"""Whole models: the FP8 modules and converter, an HF transformers Llama, the demo."""

import copy

import pytest
import torch

from conftest import rel_err
from xpu_inductor_ext.demo import run_demo
from xpu_inductor_ext.demo_model import DecoderConfig, build_decoder
from xpu_inductor_ext.nn import Fp8Linear, calibrate_static_scales, convert_linears_to_fp8

BF16 = torch.bfloat16
TINY = DecoderConfig(vocab=128, hidden=64, layers=2, heads=4, kv_heads=2, intermediate=128)
MODEL_TOLERANCE = 5e-2  # FP8 re-quantization downstream amplifies one-ulp bf16 differences


@pytest.mark.parametrize("mode", ["weight_only", "dynamic", "static"])
def test_converted_decoder_compiles_to_fused_linears(compile_quant, mode):
    dense = build_decoder(TINY)
    model = copy.deepcopy(dense)
    assert convert_linears_to_fp8(model, mode=mode) == 14
    assert isinstance(model.blocks[0].attn.q_proj, Fp8Linear) and isinstance(model.lm_head, torch.nn.Linear)
    tokens = torch.randint(0, TINY.vocab, (2, 9))
    if mode == "static":
        assert calibrate_static_scales(model, tokens) == 14
        assert all(m.input_scale.item() != 1.0 for m in model.modules() if isinstance(m, Fp8Linear))
    compiled = compile_quant(model)
    with torch.no_grad():
        out, ref, dense_ref = compiled(tokens), model(tokens), dense(tokens)
    expected_op = "xpu_quant::fp8_weight_only_mm" if mode == "weight_only" else "xpu_quant::fp8_scaled_mm"
    assert [e["op"] for e in compiled.fused()] == [expected_op] * 14
    assert rel_err(out, ref) < MODEL_TOLERANCE
    assert rel_err(out, dense_ref) < 0.15  # FP8 quantization error against the bf16 model


def test_hf_transformers_llama_converted_and_compiled(compile_quant):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(cfg).to(BF16).eval()
    assert convert_linears_to_fp8(model, mode="dynamic") == 14
    tokens = torch.randint(0, 128, (2, 12))
    compiled = compile_quant(model)
    with torch.no_grad():
        out, ref = compiled(tokens).logits, model(tokens).logits
    fused = [e for r in compiled.reports() for e in r["fused"]]
    assert len(fused) == 14 and {e["kernel"] for e in fused} == {"dequant_gemm"}
    assert rel_err(out, ref) < MODEL_TOLERANCE


def test_convert_skip_predicate_and_bad_arguments():
    model = build_decoder(TINY)
    assert convert_linears_to_fp8(model, skip=lambda name, m: "mlp" in name or name == "lm_head") == 8
    with pytest.raises(ValueError, match="mode must be one of"):
        Fp8Linear(4, 4, mode="int4")
    with pytest.raises(ValueError, match="scale must be one of"):
        Fp8Linear.from_linear(torch.nn.Linear(4, 4), scale="blocks")
    with pytest.raises(ValueError, match="block scales support modes"):
        Fp8Linear.from_linear(torch.nn.Linear(4, 4), mode="static", scale="block")


def test_demo_runs_checks_and_prints_the_report(capsys, tmp_path):
    assert run_demo(device="cpu", hidden=64, layers=1, dump_dir=str(tmp_path), timing=False) == 0
    out = capsys.readouterr().out
    assert "prefill [2, 64]: relative error vs eager" in out and "FAILED" not in out
    assert "xpu_quant::fp8_scaled_mm" in out and "dequant_gemm" in out
