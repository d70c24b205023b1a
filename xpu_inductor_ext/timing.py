"""Wall-clock medians that account for asynchronous devices (used by the demo and benchmarks)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def synchronize(device: str) -> None:
    """Wait for queued work on ``device``."""
    kind = torch.device(device).type
    if kind == "cuda":
        torch.cuda.synchronize()
    elif kind == "xpu":
        torch.xpu.synchronize()


def median_ms(fn: Callable[[], object], device: str = "cpu", warmup: int = 3, reps: int = 10,
              min_seconds: float = 0.0) -> float:
    """Median milliseconds of ``fn()`` over ``reps`` timed calls after ``warmup`` calls.

    On CUDA this uses ``triton.testing.do_bench`` (CUDA events, median) when Triton is present.
    """
    if torch.device(device).type == "cuda":
        try:
            from triton.testing import do_bench

            return float(do_bench(fn, warmup=25, rep=100, return_mode="median"))
        except ImportError:
            pass
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    start_all = time.perf_counter()
    while len(times) < reps or time.perf_counter() - start_all < min_seconds:
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


GRAPH_REPEATS = 16
"""Times each call is captured in the timed CUDA graph, so that the replay's own launch is amortized."""


def graph_ms(calls: list[Callable[[], object]]) -> float:
    """Median milliseconds per call of ``calls`` captured together (GRAPH_REPEATS times) in one CUDA graph.

    Replaying a graph removes host launch overhead (what a serving engine's CUDA graphs do); passing
    calls that read different weight copies keeps the L2 cache from serving the weights.
    """
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for call in calls:
            call()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(GRAPH_REPEATS):
            for call in calls:
                call()
    return median_ms(graph.replay, "cuda") / (len(calls) * GRAPH_REPEATS)
