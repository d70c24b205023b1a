"""Shared pieces of the benchmarks: device limits measured in the same run, tables, headers."""

from __future__ import annotations

import datetime
import platform
import statistics
import time

import torch

from xpu_inductor_ext.inspect.table import format_table
from xpu_inductor_ext.timing import graph_ms, median_ms, synchronize

__all__ = ["DeviceLimits", "format_table", "graph_ms", "header", "median_ms", "measure_limits", "stream_ms",
           "synchronize"]


class DeviceLimits:
    """Copy bandwidth (read + write bytes / s) and GEMM rate (FLOP/s) measured on this device."""

    def __init__(self, copy_bytes_per_s: float, gemm_flops: dict[str, float]) -> None:
        self.copy_bytes_per_s = copy_bytes_per_s
        self.gemm_flops = gemm_flops

    def floor_ms(self, bytes_moved: float, flops: float = 0.0, rate: str = "bf16") -> float:
        """max(bytes / bandwidth, flops / GEMM rate) in milliseconds."""
        return max(bytes_moved / self.copy_bytes_per_s, flops / self.gemm_flops[rate]) * 1e3

    def describe(self) -> str:
        rates = ", ".join(f"{k} GEMM {v / 1e12:.1f} TFLOP/s" for k, v in self.gemm_flops.items())
        return f"copy {self.copy_bytes_per_s / 1e9:.0f} GB/s (read+write), {rates}"


def measure_limits(device: str, gemm_size: int) -> DeviceLimits:
    """Measure a large device copy and the GEMMs the floors are counted against."""
    n_bytes = (1 << 30) if device != "cpu" else (256 << 20)
    src = torch.empty(n_bytes // 4, device=device).uniform_()
    dst = torch.empty_like(src)
    copy_ms = median_ms(lambda: dst.copy_(src), device)
    rates = {}
    dtypes = {"bf16": torch.bfloat16, "fp32": torch.float32}
    for name, dtype in dtypes.items():
        a = torch.randn(gemm_size, gemm_size, device=device).to(dtype)
        b = torch.randn(gemm_size, gemm_size, device=device).to(dtype)
        rates[name] = 2 * gemm_size ** 3 / (median_ms(lambda: a @ b, device) * 1e-3)
    if device == "cuda":
        a8 = torch.randn(gemm_size, gemm_size, device=device).to(torch.float8_e4m3fn)
        b8 = torch.randn(gemm_size, gemm_size, device=device).to(torch.float8_e4m3fn).t()
        one = torch.ones((), device=device)
        rates["fp8"] = 2 * gemm_size ** 3 / (median_ms(
            lambda: torch._scaled_mm(a8, b8, one, one, out_dtype=torch.bfloat16), device) * 1e-3)
    return DeviceLimits(2 * n_bytes / (copy_ms * 1e-3), rates)


def stream_ms(fn, steps: int = 50, rounds: int = 5) -> float:
    """Milliseconds per call of ``steps`` back-to-back calls with one device sync at the end (the
    median of ``rounds``): the host launches every kernel of every call, as a model compiled in
    the default mode runs without CUDA graphs, so host cost shows wherever it exceeds the GPU's."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(rounds):
        synchronize("cuda")
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        synchronize("cuda")
        times.append((time.perf_counter() - start) * 1e3 / steps)
    return statistics.median(times)


def header(device: str) -> str:
    """Device, torch version and date line that every table starts with."""
    name = torch.cuda.get_device_name() if device == "cuda" else platform.processor() or platform.machine()
    return (f"# device: {device} ({name}), torch {torch.__version__}, "
            f"threads {torch.get_num_threads()}, date {datetime.date.today()}")
