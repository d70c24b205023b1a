"""Host cost of one op call by registration: `torch.library.custom_op` against `define_op`
(`xpu_inductor_ext.kernels.dispatcher_ops`), both wrapping the same clone; the bare clone is the
baseline. Host time only (CPU tensors), under inference_mode and no_grad.

    PYTHONPATH=.:benchmarks python benchmarks/bench_op_dispatch.py
"""

from __future__ import annotations

import time
from typing import Optional

import torch

from common import format_table, header
from xpu_inductor_ext.kernels.dispatcher_ops import define_op

CALLS, ROUNDS = 5000, 5


def _clone(x: torch.Tensor, w: torch.Tensor, bias: Optional[torch.Tensor], out_dtype: torch.dtype) -> torch.Tensor:
    return x.clone()


def _fake(x, w, bias, out_dtype):
    return x.new_empty(x.shape)


def best_us(fn) -> float:
    """Fastest of ROUNDS rounds of CALLS calls, µs per call."""
    for _ in range(200):
        fn()
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(CALLS):
            fn()
        times.append((time.perf_counter() - start) / CALLS * 1e6)
    return min(times)


def main() -> int:
    heavy = torch.library.custom_op("xpu_quant_bench::custom_op_clone", mutates_args=())(_clone)
    lean = define_op("xpu_quant_bench::define_op_clone", _clone, _fake)
    x, w = torch.randn(4, 4), torch.randn(4, 4)
    rows = []
    for mode in (torch.inference_mode, torch.no_grad):
        with mode():
            bare = best_us(lambda: x.clone())
            t_heavy = best_us(lambda: heavy(x, w, None, torch.bfloat16))
            t_lean = best_us(lambda: lean(x, w, None, torch.bfloat16))
        rows.append([mode.__name__, f"{bare:.1f}", f"{t_heavy:.1f}", f"{t_lean:.1f}", f"{t_heavy / t_lean:.2f}"])
    print(header("cpu"))
    print(format_table(["mode", "bare clone us", "custom_op us", "define_op us", "custom_op/define_op"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
