"""Block-FP8 and FP8 weight-only through the compiled path (``backend="xpu_quant"``) on a GPU.

1. weight-only FP8 decode, M in {1, 4, 16}: the compiled dequant-matmul (selects the Triton
   weight-only kernel) against eager, plain Inductor, the bf16 linear and the floor; also
   compiled with option graph_launch off (the op at run time: what the README advises when one
   captures CUDA graphs oneself, as these tables do);
2. block W8A8 prefill, M in {2048, 8192}: the compiled block dequant-matmul (selects blockwise
   ``_scaled_mm``; and with the Triton kernel forced) against calling ``_scaled_mm`` directly;
3. block W8A8 decode, M in {1, 8, 16}: the compiled block dequant-matmul (the Triton decode plan)
   against cuBLASLt's blockwise ``_scaled_mm`` called directly and the bf16 linear (and graph_launch off);
4. the demo decoder at hidden 4096 with block-FP8 weights: one decode step against the same
   model in bf16 under plain Inductor: replayed from CUDA graphs; launched by the host step after
   step as the default mode runs (`stream_ms`); and with mode="reduce-overhead" (Inductor's CUDA
   graphs) for both. The default mode also times ours with option cpp_wrapper off (Inductor's
   Python host code, as plain Inductor has), side by side in the same run.
`--only kernels` / `--only decoder` runs 1-3 / 4; `--batches 1` limits the decoder's batch sizes.

Run on a CUDA machine: ``python benchmarks/bench_block_fp8.py``.
"""

from __future__ import annotations

import argparse
import copy
import sys

import torch
import torch.nn.functional as F

import xpu_inductor_ext
from common import format_table, graph_ms, header, measure_limits, median_ms, stream_ms
from xpu_inductor_ext.demo_model import DecoderConfig, build_decoder
from xpu_inductor_ext.formats import dequantize_blocks, dequantize_groups, quantize_per_block, quantize_per_group
from xpu_inductor_ext.nn import convert_linears_to_fp8

DEV = "cuda"
SHAPES = ((8192, 8192), (14336, 4096), (4096, 14336))
BLOCK = 128


def rel(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def weight_only(x, w, s):
    return F.linear(x, (w.float() * s).to(x.dtype))


def block_w8a8(xq, xs, w, ws):
    return F.linear(dequantize_groups(xq, xs, torch.bfloat16), dequantize_blocks(w, ws, BLOCK, torch.bfloat16))


def compile_quant(fn, **options):
    torch._dynamo.reset()
    return torch.compile(fn, backend="xpu_quant", dynamic=False, options=options)


def last_kernels():
    """The kernels of the last compiled graph, each with who launches it (the op at run time, or
    Inductor where the launch is fixed in the graph) where that applies."""
    names = set()
    for entry in xpu_inductor_ext.reports()[-1]["fused"]:
        launch = entry.get("launch")
        names.add(entry["kernel"] + (f" ({launch['by']})" if launch else ""))
    return sorted(names)


COPIES = 4
"""Weight copies each timed graph cycles through, so that the L2 cache cannot hold the weight."""


def _timed(fn, weights, x):
    return graph_ms([lambda w=w: fn(x, *w) for w in weights])


@torch.inference_mode()
def decode_weight_only(limits):
    rows = []
    for n, k in SHAPES:
        weights = [xpu_inductor_ext.formats.quantize_per_row(torch.randn(n, k, device=DEV) * 0.02)
                   for _ in range(COPIES)]
        dense_weights = [((w8.float() * s).bfloat16(),) for w8, s in weights]
        w8, s = weights[0]
        ours = compile_quant(weight_only, dump_dir=f"/tmp/xq_wo_{n}_{k}")
        by_op = torch.compile(weight_only, backend="xpu_quant", dynamic=False, options={"graph_launch": False})
        plain = torch.compile(weight_only)
        dense = torch.compile(lambda x, w: F.linear(x, w))
        for m in (1, 4, 16):
            x = torch.randn(m, k, device=DEV, dtype=torch.bfloat16)
            err = rel(ours(x, w8, s), weight_only(x, w8, s))
            kernels = ",".join(last_kernels())
            t = [_timed(weight_only, weights, x), _timed(plain, weights, x), _timed(dense, dense_weights, x),
                 _timed(ours, weights, x), _timed(by_op, weights, x)]
            floor = limits.floor_ms(n * k)
            rows.append([f"M={m} N={n} K={k}", *(f"{v * 1e3:.1f}" for v in t), f"{floor * 1e3:.1f}",
                         f"{t[3] / floor:.2f}", f"{t[4] / floor:.2f}", f"{t[1] / t[3]:.2f}", f"{t[2] / t[3]:.2f}",
                         f"{err:.1e}", kernels])
    return format_table(["weight-only fp8 decode (us, CUDA graphs)", "eager", "plain inductor", "bf16 linear", "xpu_quant",
                         "xpu_quant, graph_launch off", "floor", "ours/floor", "graph_launch off/floor",
                         "inductor/ours", "bf16/ours", "rel err", "kernel"], rows)


@torch.inference_mode()
def prefill_block(limits):
    rows = []
    for n, k in SHAPES:
        w8, ws = quantize_per_block(torch.randn(n, k, device=DEV) * 0.02, BLOCK)
        for m in (2048, 8192):
            native = compile_quant(block_w8a8, dump_dir=f"/tmp/xq_blk_{n}_{k}")
            triton = torch.compile(block_w8a8, backend="xpu_quant", dynamic=False,
                                   options={"force_kernels": "triton_fp8_block_scaled_mm", "dump_dir": "/tmp/xq_bt"})
            xq, xs = quantize_per_group(torch.randn(m, k, device=DEV), BLOCK)
            a, sa = xq.reshape(m, k), xs.reshape(m, k // BLOCK)
            direct = lambda: torch._scaled_mm(a, w8.t(), sa.t().contiguous().t(), ws.t(),  # noqa: E731
                                              out_dtype=torch.bfloat16)
            ref = block_w8a8(xq, xs, w8, ws)
            err_n, kn = rel(native(xq, xs, w8, ws), ref), last_kernels()
            err_t, kt = rel(triton(xq, xs, w8, ws), ref), last_kernels()
            td, tn, tt = (median_ms(direct, DEV), median_ms(lambda: native(xq, xs, w8, ws), DEV),
                          median_ms(lambda: triton(xq, xs, w8, ws), DEV))
            flops = 2 * m * n * k
            rows.append([f"M={m} N={n} K={k}", f"{flops / td / 1e9:.0f}", f"{flops / tn / 1e9:.0f}",
                         f"{(tn / td - 1) * 100:+.1f}%", f"{flops / tt / 1e9:.0f}", f"{td / tt:.2f}",
                         f"{limits.floor_ms(m * k + n * k + 2 * m * n, flops, 'fp8'):.3f}",
                         f"{err_n:.1e}/{err_t:.1e}", f"{','.join(kn)} | {','.join(kt)}"])
    return format_table(["block W8A8 prefill", "_scaled_mm TFLOP/s", "xpu_quant native TFLOP/s", "native overhead",
                         "xpu_quant triton TFLOP/s", "triton/_scaled_mm", "floor ms", "rel err", "kernels"], rows)


@torch.inference_mode()
def decode_block(limits):
    """Block W8A8 at decode sizes: the compiled block dequant-matmul (the Triton decode plan at
    M <= 16) against calling cuBLASLt's blockwise ``_scaled_mm`` directly (M a multiple of 4) and the
    bf16 linear, every call reading a different weight copy (CUDA graphs)."""
    rows = []
    for n, k in SHAPES:
        weights = [quantize_per_block(torch.randn(n, k, device=DEV) * 0.02, BLOCK) for _ in range(COPIES)]
        dense = [(dequantize_blocks(w8, ws, BLOCK, torch.bfloat16),) for w8, ws in weights]
        ours = compile_quant(block_w8a8, dump_dir=f"/tmp/xq_blkdec_{n}_{k}")
        by_op = torch.compile(block_w8a8, backend="xpu_quant", dynamic=False, options={"graph_launch": False})
        bf16 = torch.compile(lambda x, w: F.linear(x, w))
        for m in (1, 8, 16):
            xq, xs = quantize_per_group(torch.randn(m, k, device=DEV), BLOCK)
            a, sa = xq.reshape(m, k), xs.reshape(m, k // BLOCK).t().contiguous().t()
            err = rel(ours(xq, xs, *weights[0]), block_w8a8(xq, xs, *weights[0]))
            kernels = ",".join(last_kernels())
            t_ours = graph_ms([lambda w=w: ours(xq, xs, *w) for w in weights])
            t_op = graph_ms([lambda w=w: by_op(xq, xs, *w) for w in weights])
            t_cublas = float("nan")
            if m % 4 == 0:
                t_cublas = graph_ms([lambda w=w: torch._scaled_mm(a, w[0].t(), sa, w[1].t(), out_dtype=torch.bfloat16)
                                     for w in weights])
            x = dequantize_groups(xq, xs, torch.bfloat16)
            t_bf16 = graph_ms([lambda w=w: bf16(x, *w) for w in dense])
            floor = limits.floor_ms(n * k)
            rows.append([f"M={m} N={n} K={k}", f"{t_cublas * 1e3:.1f}", f"{t_bf16 * 1e3:.1f}", f"{t_ours * 1e3:.1f}",
                         f"{t_op * 1e3:.1f}", f"{floor * 1e3:.1f}", f"{t_ours / floor:.2f}", f"{t_cublas / t_ours:.2f}",
                         f"{t_bf16 / t_ours:.2f}", f"{err:.1e}", kernels])
    return format_table(["block W8A8 decode (us, CUDA graphs)", "_scaled_mm direct", "bf16 linear", "xpu_quant",
                         "xpu_quant, graph_launch off", "floor", "ours/floor", "_scaled_mm/ours", "bf16/ours",
                         "rel err", "kernel"], rows)


@torch.inference_mode()
def cublas_blockwise_m_probe(n=4096, k=4096):
    """Which token counts cuBLASLt's blockwise FP8 GEMM accepts (it answers NOT_SUPPORTED for some)."""
    w8, ws = quantize_per_block(torch.randn(n, k, device=DEV) * 0.02, BLOCK)
    ok, bad = [], []
    for m in (1, 2, 3, 4, 8, 12, 15, 16, 17, 24, 32, 33, 64, 100, 128, 129, 256):
        xq, xs = quantize_per_group(torch.randn(m, k, device=DEV), BLOCK)
        try:
            torch._scaled_mm(xq.reshape(m, k), w8.t(), xs.reshape(m, -1).t().contiguous().t(), ws.t(),
                             out_dtype=torch.bfloat16)
            torch.cuda.synchronize()
            ok.append(m)
        except RuntimeError:
            bad.append(m)
    return f"cuBLASLt blockwise _scaled_mm: M accepted {ok}; refused {bad}"


RECOMPILE_LIMIT = 64
"""Dynamo's per-function cache while this script runs: it compiles one function many ways
(backends, options, modes, sizes), past the default of 8, after which Dynamo runs it eagerly."""


def many_compiles():
    """Dynamo's config with RECOMPILE_LIMIT entries per function (the option's name by torch version)."""
    name = "recompile_limit" if hasattr(torch._dynamo.config, "recompile_limit") else "cache_size_limit"
    return torch._dynamo.config.patch({name: RECOMPILE_LIMIT})


DECODER_COLUMNS = ["decoder hidden 4096 x4 layers, 1-token step", "graphs: bf16 inductor ms", "xpu_quant ms", "bf16/ours",
                   "default mode, no graphs: bf16 ms", "xpu_quant ms", "xpu_quant, cpp_wrapper off ms", "bf16/ours",
                   "mode=reduce-overhead: bf16 ms", "xpu_quant ms", "bf16/ours",
                   "rel err vs eager default/reduce-overhead (decomposition's)", "kernels"]


@torch.inference_mode()
def decoder_decode_step(batches=(1, 8)):
    cfg = DecoderConfig(vocab=32000, hidden=4096, layers=4, heads=32, kv_heads=8, intermediate=14336)
    dense = build_decoder(cfg, device=DEV)
    rows = []
    for mode in ("weight_only", "dynamic"):
        model = copy.deepcopy(dense)
        convert_linears_to_fp8(model, mode=mode, scale="block")
        ours = compile_quant(model, dump_dir=f"/tmp/xq_dec_{mode}")
        ours_py = compile_quant(model, dump_dir=f"/tmp/xq_dec_{mode}_py", cpp_wrapper=False)  # Python host code
        plain_bf16 = torch.compile(dense)
        ours_ro = torch.compile(model, backend="xpu_quant", mode="reduce-overhead", dynamic=False)
        bf16_ro = torch.compile(dense, mode="reduce-overhead", dynamic=False)
        for batch in batches:
            tokens = torch.randint(0, cfg.vocab, (batch, 1), device=DEV)
            try:
                err = rel(ours(tokens), model(tokens))
            except RuntimeError as e:
                rows.append([f"{mode} block-FP8, batch {batch}"] + ["-"] * 10 + [f"FAILED: {str(e)[:80]}", "-"])
                continue
            kernels = ",".join(last_kernels())
            reference = torch.compile(model, backend="xpu_quant", dynamic=False,
                                      options={"force_kernels": "decomposition", "dump_dir": "/tmp/xq_dec_ref",
                                               "cpp_wrapper": False})
            err_ref = rel(reference(tokens), model(tokens))  # the fp32 oracle, compiled: FP8 noise floor
            t_ours = graph_ms([lambda: ours(tokens)])
            t_bf16 = graph_ms([lambda: plain_bf16(tokens)])
            s_ours = stream_ms(lambda: ours(tokens))
            s_bf16 = stream_ms(lambda: plain_bf16(tokens))
            s_py = stream_ms(lambda: ours_py(tokens))
            err_ro = rel(stepped(ours_ro)(tokens), model(tokens))
            r_ours = stream_ms(lambda: stepped(ours_ro)(tokens))
            r_bf16 = stream_ms(lambda: stepped(bf16_ro)(tokens))
            rows.append([f"{mode} block-FP8, batch {batch}", f"{t_bf16:.3f}", f"{t_ours:.3f}", f"{t_bf16 / t_ours:.2f}",
                         f"{s_bf16:.3f}", f"{s_ours:.3f}", f"{s_py:.3f}", f"{s_bf16 / s_ours:.2f}",
                         f"{r_bf16:.3f}", f"{r_ours:.3f}", f"{r_bf16 / r_ours:.2f}",
                         f"{err:.1e}/{err_ro:.1e} ({err_ref:.1e})", kernels])
            print("  " + " | ".join(rows[-1]), flush=True)  # each row as it lands (long compiles)
    return format_table(DECODER_COLUMNS, rows)


def stepped(compiled):
    """`compiled` called as one step of Inductor's CUDA-graph trees (mode="reduce-overhead")."""
    def step(*args):
        torch.compiler.cudagraph_mark_step_begin()
        return compiled(*args)
    return step


def run_sections(args):
    """The sections `--only` asks for (all by default)."""
    if args.only != "decoder":
        limits = measure_limits(DEV, 8192)
        print(f"# measured limits: {limits.describe()}\n")
        print(cublas_blockwise_m_probe(), "\n", flush=True)
        for section in (decode_weight_only, decode_block, prefill_block):
            print(section(limits), "\n", flush=True)
    if args.only != "kernels":
        print(decoder_decode_step(args.batches), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("kernels", "decoder"), help="the kernel tables (1-3) or the decoder (4)")
    parser.add_argument("--batches", type=lambda t: tuple(int(v) for v in t.split(",")), default=(1, 8),
                        help="decoder batch sizes (comma-separated)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench_block_fp8: needs a CUDA GPU; nothing to do here")
        return 0
    print(header(DEV))
    with many_compiles():
        run_sections(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
