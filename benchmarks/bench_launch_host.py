"""Host cost of one fused linear without CUDA graphs: who launches the Triton kernel.

A 1024 x 1024 FP8 weight-only linear (per-channel, bf16, M = 1: the GEMV, tiny on the GPU, so
the host sets the pace), µs per call with one sync per round, all in one run:
- eager: `F.linear` in bf16, and our op called directly;
- compiled: `x + 1` (the wrappers and one Inductor kernel: what every compiled call pays),
  `F.linear` in bf16 under plain Inductor, and the FP8 linear under `backend="xpu_quant"` as the
  defaults compile it (Inductor launches the kernel from C++ host code), with option `cpp_wrapper`
  off (Python host code), and with `graph_launch` off too (the op launches it at run time).

    PYTHONPATH=.:benchmarks python benchmarks/bench_launch_host.py
"""

from __future__ import annotations

import sys
import time

import torch
import torch.nn.functional as F

from common import format_table, header, synchronize
from xpu_inductor_ext.kernels.triton_fp8 import register_triton_ops
from xpu_inductor_ext.nn import convert_linears_to_fp8

N = K = 1024
M = 1
CALLS, ROUNDS = 3000, 5


def host_us(fn) -> float:
    """Fastest of ROUNDS rounds of CALLS back-to-back calls (one sync each), µs per call."""
    best = float("inf")
    for _ in range(ROUNDS):
        fn()
        synchronize("cuda")
        start = time.perf_counter()
        for _ in range(CALLS):
            fn()
        synchronize("cuda")
        best = min(best, (time.perf_counter() - start) / CALLS * 1e6)
    return best


def main() -> int:
    if not torch.cuda.is_available():
        print("bench_launch_host: needs a CUDA GPU; nothing to do here")
        return 0
    torch.manual_seed(0)
    dense = torch.nn.Sequential(torch.nn.Linear(K, N, bias=False)).to("cuda", torch.bfloat16)
    quant = torch.nn.Sequential(torch.nn.Linear(K, N, bias=False)).to("cuda", torch.bfloat16)
    quant.load_state_dict(dense.state_dict())
    convert_linears_to_fp8(quant, mode="weight_only", scale="channel")
    fp8 = quant[0]
    x = (torch.randn(M, K, device="cuda") / 10).to(torch.bfloat16)
    register_triton_ops()
    op = torch.ops.xpu_quant.triton_fp8_weight_only_mm.default
    cases = {}
    with torch.inference_mode():
        cases["eager F.linear bf16"] = lambda: F.linear(x, dense[0].weight)
        ref = quant(x)
        cases["eager op call"] = lambda: op(x, fp8.weight, fp8.weight_scale, None, 0, 0)
        plus_one = torch.compile(lambda t: t + 1)
        plain = torch.compile(dense)
        variants = {"defaults (Inductor launches, C++ host code)": {},
                    "cpp_wrapper off (Inductor launches, Python host code)": {"cpp_wrapper": False},
                    "graph_launch and cpp_wrapper off (the op launches)": {"graph_launch": False, "cpp_wrapper": False}}
        compiled = {name: torch.compile(quant, backend="xpu_quant", dynamic=False, options=options)
                    for name, options in variants.items()}
        errors = {name: (fn(x).float() - ref.float()).norm().item() / ref.float().norm().item()
                  for name, fn in compiled.items()}
        cases["compiled x + 1"] = lambda: plus_one(x)
        cases["compiled F.linear bf16 (plain Inductor)"] = lambda: plain(x)
        for name, fn in compiled.items():
            cases[f"compiled xpu_quant, {name}"] = lambda fn=fn: fn(x)
        rows = [[name, f"{host_us(fn):.1f}"] for name, fn in cases.items()]
    print(header("cuda"))
    print(f"# M = {M}, N = K = {N}; rel err vs eager: " + ", ".join(f"{k} {v:.1e}" for k, v in errors.items()))
    print(format_table(["call", "host us per call"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
