"""The main job: compile an FP8 Llama-style decoder with ``backend="xpu_quant"`` and report.

Builds the embedded decoder (random weights), converts its linears to FP8, compiles it with the
token dimension dynamic, checks prefill and decode logits against eager, prints the report and
the speed against eager and plain Inductor.
"""

from __future__ import annotations

import copy
import tempfile

import torch

from .demo_model import DecoderConfig, build_decoder
from .inspect.table import format_table, load_reports, report_table
from .nn import calibrate_static_scales, convert_linears_to_fp8
from .timing import median_ms

LOGITS_TOLERANCE = 5e-2
"""Relative error allowed between fused and eager FP8 logits (FP8 re-quantization flips a few
values by one FP8 step when upstream bf16 rounding differs)."""


def default_device() -> str:
    """The accelerator present (CUDA, then XPU), else the CPU."""
    if torch.cuda.is_available():
        return "cuda"
    if hasattr(torch, "xpu") and torch.xpu.is_available():
        return "xpu"
    return "cpu"


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """``||out - ref|| / ||ref||`` in float32."""
    return ((out.float() - ref.float()).norm() / ref.float().norm()).item()


def run_demo(device: str | None = None, mode: str = "dynamic", scale: str = "channel", hidden: int = 512,
             layers: int = 2,
             dump_dir: str | None = None, timing: bool = True) -> int:
    """Run the demo; returns 0 when the compiled model matches eager, 1 otherwise."""
    device = device or default_device()
    cfg = DecoderConfig(hidden=hidden, layers=layers, intermediate=hidden * 11 // 4 // 64 * 64 or 64,
                        heads=max(1, hidden // 64), kv_heads=max(1, hidden // 256))
    bf16_model = build_decoder(cfg, device=device)
    model = copy.deepcopy(bf16_model)
    converted = convert_linears_to_fp8(model, mode=mode, scale=scale)
    prefill = torch.randint(0, cfg.vocab, (2, 64), device=device)
    decode = torch.randint(0, cfg.vocab, (8, 1), device=device)
    if mode == "static":
        calibrate_static_scales(model, prefill)
    print(f"xpu_quant demo: device={device} torch={torch.__version__} mode={mode} scale={scale} "
          f"hidden={hidden} layers={layers}: {converted} linears converted to FP8")

    dump_dir = dump_dir or tempfile.mkdtemp(prefix="xpu_quant_demo_")
    compiled = torch.compile(model, backend="xpu_quant", dynamic=True, options={"dump_dir": dump_dir})
    ok = True
    with torch.inference_mode():
        for name, tokens in (("prefill", prefill), ("decode", decode)):
            err = relative_error(compiled(tokens), model(tokens))
            ok &= err < LOGITS_TOLERANCE
            print(f"  {name} {list(tokens.shape)}: relative error vs eager {err:.2e} "
                  f"({'ok' if err < LOGITS_TOLERANCE else 'FAILED'}, tolerance {LOGITS_TOLERANCE})")
    print(f"\nreport ({dump_dir}):")
    print(report_table(load_reports(dump_dir)))
    if timing:
        print("\n" + speed_table(model, bf16_model, compiled, {"prefill": prefill, "decode": decode}, device))
    return 0 if ok else 1


def speed_table(model, bf16_model, compiled, inputs: dict, device: str) -> str:
    """Median times of the FP8 model eager, under plain Inductor, under xpu_quant, and bf16 Inductor."""
    inductor = torch.compile(model, dynamic=True)
    inductor_bf16 = torch.compile(bf16_model, dynamic=True)
    rows = []
    with torch.inference_mode():
        for name, tokens in inputs.items():
            times = {label: median_ms(lambda f=f: f(tokens), device)
                     for label, f in (("fp8 eager", model), ("fp8 inductor", inductor),
                                      ("fp8 xpu_quant", compiled), ("bf16 inductor", inductor_bf16))}
            ours = times["fp8 xpu_quant"]
            rows.append([name] + [f"{t:.3f} ({t / ours:.2f}x)" for t in times.values()])
    headers = ["shape", *(f"{k} ms (vs ours)" for k in ("fp8 eager", "fp8 inductor", "fp8 xpu_quant", "bf16 inductor"))]
    return format_table(headers, rows)
