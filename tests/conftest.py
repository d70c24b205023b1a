"""Shared test helpers: fresh random FP8 data, compiling with the backend, reading reports."""

from __future__ import annotations

import os

# Triton reads this at its first import (which the package triggers): the Triton kernels then run
# on CPU tensors through the interpreter. Set before anything imports triton.
os.environ.setdefault("TRITON_INTERPRET", "1")

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

import xpu_inductor_ext  # noqa: E402, F401  (registers ops and kernels)
from xpu_inductor_ext.formats import quantize_per_row, quantize_per_tensor  # noqa: E402


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    """``||out - ref|| / ||ref||`` in float64."""
    return ((out.double() - ref.double()).norm() / ref.double().norm()).item()


def fp8_weight(n: int, k: int, scale: str = "channel", dtype=torch.float8_e4m3fn, std: float = 0.05):
    """A fresh random FP8 weight ``[N, K]`` and its float32 scale (``[N, 1]`` or 0-d)."""
    w = torch.randn(n, k) * std
    return (quantize_per_row if scale == "channel" else quantize_per_tensor)(w, dtype)


class Compiled:
    """A function compiled with backend='xpu_quant', dumping into a temp dir (caches disabled)."""

    def __init__(self, fn, dump_dir: Path, dynamic=None, fullgraph: bool = False, **options) -> None:
        torch._dynamo.reset()
        self.dump_dir = dump_dir
        self.fn = torch.compile(fn, backend="xpu_quant", dynamic=dynamic, fullgraph=fullgraph,
                                options={"dump_dir": str(dump_dir), **options})

    def __call__(self, *args):
        with torch.no_grad():
            return self.fn(*args)

    def reports(self) -> list[dict]:
        paths = sorted(self.dump_dir.rglob("report.json"), key=lambda p: p.stat().st_mtime)
        return [json.loads(p.read_text()) for p in paths]

    def fused(self) -> list[dict]:
        """Fused-node entries of the last compiled graph."""
        return self.reports()[-1]["fused"]


@pytest.fixture
def compile_quant(tmp_path):
    """``compile_quant(fn, dynamic=..., **options) -> Compiled``."""
    counter = iter(range(1000))

    def make(fn, dynamic=None, fullgraph=False, **options):
        return Compiled(fn, tmp_path / f"dump{next(counter)}", dynamic, fullgraph, **options)

    return make


@pytest.fixture(autouse=True)
def _fresh_launch_cache():
    """Each test plans its own Triton launches: tests patch what plans read (see LaunchCache)."""
    import sys

    launches = sys.modules.get("xpu_inductor_ext.kernels.triton_fp8.launches")
    if launches is not None:
        launches.launch_cache.clear()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(1234)
