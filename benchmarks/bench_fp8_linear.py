"""FP8 linear benchmarks: our compiled path beside eager, plain Inductor, bf16 and the floor.

CPU: weight-only FP8 linear, K = N = 4096, M in {1, 2, 4, 8, 32, 256} (with cpu_fused_gemv's form at every M),
and fp8 -> bf16 widening of a weight under Inductor (direct cast against through float32).
CUDA: W8A8 per-token x per-channel through ``_scaled_mm``: the compiled dequant-matmul against
calling ``_scaled_mm`` directly on the same FP8 inputs (our overhead), plus the whole layer with
dynamic activation quantization against eager, plain Inductor and the bf16 linear.

Run: ``python benchmarks/bench_fp8_linear.py [--device cpu|cuda]``. Prints one table per section;
all columns of a table come from one run.
"""

from __future__ import annotations

import argparse
import tempfile

import torch
import torch.nn.functional as F

import xpu_inductor_ext
from common import format_table, header, measure_limits, median_ms
from xpu_inductor_ext.formats import quantize_per_row
from xpu_inductor_ext.kernels.generic import gemv_weight_only_mm, widen_fp8
from xpu_inductor_ext.nn import Fp8Linear


def weight_only(x, w, s):
    return F.linear(x, (w.float() * s).to(x.dtype))


def gemm_from_fp8(x_q, x_s, w, w_s):
    return F.linear((x_q.float() * x_s).to(torch.bfloat16), (w.float() * w_s).to(torch.bfloat16))


def compiled(fn, backend=None, **kw):
    torch._dynamo.reset()
    return torch.compile(fn, backend=backend, **kw) if backend else torch.compile(fn, **kw)


def _row(label, times, ours, floor):
    return [label] + [f"{t:.3f} ({t / ours:.2f}x)" for t in times] + [f"{floor:.3f} ({ours / floor:.2f}x)"]


@torch.inference_mode()
def cpu_weight_only(limits, n=4096, k=4096, ms=(1, 2, 4, 8, 32, 256)):
    w, s = quantize_per_row(torch.randn(n, k) * 0.02)
    w_bf16 = (w.float() * s).bfloat16()
    rows = []
    for m in ms:  # compiled per M with static shapes: each row is the graph a fixed batch gets
        x = torch.randn(m, k).bfloat16()
        plain = compiled(weight_only, dynamic=False)
        dense = compiled(lambda x, wd: F.linear(x, wd), dynamic=False)
        fused = compiled(gemv_weight_only_mm, dynamic=False)  # cpu_fused_gemv's form, at every M
        t = [median_ms(lambda: weight_only(x, w, s)), median_ms(lambda: plain(x, w, s)),
             median_ms(lambda: dense(x, w_bf16)), median_ms(lambda: fused(x, w, s, None))]
        with tempfile.TemporaryDirectory() as dumps:  # a dump dir turns the caches off: the passes run, and report
            ours = compiled(weight_only, "xpu_quant", dynamic=False, options={"dump_dir": dumps})
            ours(x, w, s)
        t.append(median_ms(lambda: ours(x, w, s)))
        kernels = sorted({e["kernel"] for e in xpu_inductor_ext.reports()[-1]["fused"]})
        floor = limits.floor_ms(n * k + 2 * m * (n + k), 2 * m * n * k, "fp32")
        rows.append(_row(f"M={m}", t, t[-1], floor) + [", ".join(kernels)])
    return format_table(["CPU weight-only fp8 K=N=4096", "eager ms", "plain inductor", "bf16 linear (inductor)",
                         "fused GEMV form", "xpu_quant", "floor ms (ours/floor)", "kernel"], rows)


@torch.inference_mode()
def cpu_widening(shapes=((1408, 512), (4096, 4096))):
    """fp8 -> bf16 of a weight under plain Inductor: the direct cast against through float32."""
    rows = []
    for n, k in shapes:
        w = torch.randn(n, k).to(torch.float8_e4m3fn)
        direct = compiled(lambda w: w.to(torch.bfloat16), dynamic=False)
        via_fp32 = compiled(lambda w: widen_fp8(w, torch.bfloat16), dynamic=False)
        assert torch.equal(direct(w), via_fp32(w))
        t_direct, t_fp32 = median_ms(lambda: direct(w)), median_ms(lambda: via_fp32(w))
        rows.append([f"[{n}, {k}]", f"{t_direct:.3f}", f"{t_fp32:.3f}", f"{t_direct / t_fp32:.1f}x"])
    return format_table(["fp8 e4m3 -> bf16 weight (Inductor, CPU)", "direct cast ms", "through float32 ms",
                         "direct / through fp32"], rows)


@torch.inference_mode()
def cuda_w8a8(limits, shapes=((8192, 8192), (14336, 4096), (4096, 14336)), ms=(16, 2048, 8192)):
    dev = "cuda"
    rows = []
    for n, k in shapes:
        ours = compiled(gemm_from_fp8, "xpu_quant", dynamic=False)  # fresh per shape: no recompile limit
        w, w_s = quantize_per_row(torch.randn(n, k, device=dev) * 0.02)
        for m in ms:
            x_q, x_s = quantize_per_row(torch.randn(m, k, device=dev))
            direct = median_ms(lambda: torch._scaled_mm(x_q, w.t(), x_s, w_s.t(), out_dtype=torch.bfloat16), dev)
            t = median_ms(lambda: ours(x_q, x_s, w, w_s), dev)
            flops = 2 * m * n * k
            rows.append([f"M={m} N={n} K={k}", f"{direct:.4f}", f"{t:.4f}", f"{(t / direct - 1) * 100:+.1f}%",
                         f"{flops / t / 1e9:.0f}", f"{limits.floor_ms(m * k + n * k + 2 * m * n, flops, 'fp8'):.4f}"])
    return format_table(["W8A8 per-token x per-channel", "_scaled_mm direct ms", "xpu_quant ms", "overhead",
                         "TFLOP/s", "floor ms"], rows)


@torch.inference_mode()
def cuda_layer(limits, n=8192, k=8192, ms=(1, 16, 2048)):
    dev = "cuda"
    dense = torch.nn.Linear(k, n, bias=False, device=dev, dtype=torch.bfloat16)
    layer = Fp8Linear.from_linear(dense, mode="dynamic").eval()
    ours, plain, dense_c = compiled(layer, "xpu_quant"), compiled(layer), compiled(dense)
    rows = []
    for m in ms:
        x = torch.randn(m, k, device=dev, dtype=torch.bfloat16)
        t = [median_ms(lambda: layer(x), dev), median_ms(lambda: plain(x), dev),
             median_ms(lambda: dense_c(x), dev), median_ms(lambda: ours(x), dev)]
        floor = limits.floor_ms(n * k + 4 * m * k + 2 * m * n, 2 * m * n * k, "fp8")
        rows.append(_row(f"M={m}", t, t[-1], floor))
    return format_table([f"W8A8 dynamic layer N=K={n}", "eager ms", "plain inductor", "bf16 linear (inductor)",
                         "xpu_quant", "floor ms (ours/floor)"], rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    print(header(args.device))
    limits = measure_limits(args.device, 8192 if args.device == "cuda" else 1024)
    print(f"# measured limits: {limits.describe()}\n")
    if args.device == "cpu":
        print(cpu_weight_only(limits), "\n")
        print(cpu_widening())
    else:
        print(cuda_w8a8(limits), "\n")
        print(cuda_layer(limits))


if __name__ == "__main__":
    main()
