"""The pass manager installed as Inductor's ``post_grad_custom_pre_pass``.

Runs the enabled pattern families, then kernel selection, then dead-code elimination, writing the
graph after each stage and the report. Its ``uuid()`` hashes the config and the source of every
module of the package and the pattern library, so a cached compile is reused only when nothing
that shapes it changed.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import logging
import time
from pathlib import Path

import torch
from torch._higher_order_ops.triton_kernel_wrap import triton_kernel_wrapper_mutation
from torch._inductor.custom_graph_pass import CustomGraphPass
from torch.fx import Graph

from xpu_inductor_ext import patterns

from ..config import Config
from ..inspect.dump import GraphDumper, new_graph_id
from ..inspect.report import CompileReport
from .selection import select_kernels

log = logging.getLogger("xpu_inductor_ext")

RECENT_REPORTS: collections.deque = collections.deque(maxlen=64)
"""Reports of the graphs compiled in this process, newest last."""

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


@functools.lru_cache(maxsize=None)
def source_fingerprint() -> str:
    """SHA-256 over every Python source of the package and the pattern library (path + bytes)."""
    digest = hashlib.sha256()
    roots = [PACKAGE_ROOT, *(Path(p).resolve() for p in patterns.__path__)]
    for root in dict.fromkeys(roots):
        for path in sorted(root.rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _graph_device(graph: Graph) -> str:
    for node in graph.nodes:
        v = node.meta.get("val")
        if isinstance(v, torch.Tensor):
            return str(v.device)
    return "unknown"


def _summary(report: CompileReport) -> str:
    kernels = collections.Counter(f"{e['op'].split('::')[-1]}->{e['kernel']}" for e in report.fused_nodes)
    text = ", ".join(f"{k} x{n}" for k, n in kernels.items()) or "nothing fused"
    if report.near_misses:
        text += f"; {len(report.near_misses)} near miss(es): " + "; ".join(
            f"{m['node']}: {m['reason']}" for m in report.near_misses[:3])
    return text


def _kept(node) -> bool:
    """Dead-code elimination keeps impure nodes and the kernel launches fixed in the graph: a
    user-defined Triton kernel node fills the buffer its users read and has no users itself."""
    return node.is_impure() or node.target is triton_kernel_wrapper_mutation


class XpuQuantPassManager(CustomGraphPass):
    """Pattern families -> kernel selection -> cleanup, with dumps and a report."""

    def __init__(self, config: Config, host_code: dict | None = None) -> None:
        self.config = config
        self.host_code = host_code  # the backend's choice of host code (reported, not acted on here)
        self._written: list[tuple[dict, GraphDumper]] = []  # what each call reported and dumped

    def withdraw(self) -> None:
        """Take back the reports and dumps of the graphs this pass ran on: their compile failed
        and is made again (the backend's Python host code after a failed C++ build)."""
        for report, dumper in self._written:
            if report in RECENT_REPORTS:
                RECENT_REPORTS.remove(report)
            dumper.remove()
        self._written.clear()

    def __call__(self, graph: Graph) -> None:
        graph_id = new_graph_id()
        report = CompileReport(graph_id, self.config.to_json(), _graph_device(graph), self.host_code)
        dumper = GraphDumper(self.config.dump_dir, graph_id)
        dumper.stage("input", graph)
        for family in patterns.FAMILIES:
            if not getattr(self.config, family.option):
                report.notes.append(f"{family.name}: disabled by option {family.option}")
                continue
            start = time.perf_counter()
            matches = family.apply(graph, report)
            report.pass_ran(family.name, matches, time.perf_counter() - start)
            dumper.stage(f"after_{family.name}", graph)
        start = time.perf_counter()
        lowered = select_kernels(graph, self.config, report)
        graph.eliminate_dead_code(is_impure_node=_kept)
        report.pass_ran("kernel_selection", lowered, time.perf_counter() - start)
        dumper.stage("after_kernel_selection", graph)
        dumper.report(report.to_json())
        entry = report.to_dict()
        RECENT_REPORTS.append(entry)
        self._written.append((entry, dumper))
        log.info("xpu_quant %s: %s", graph_id, _summary(report))

    def uuid(self) -> str:
        """Cache key: config + every source file that shapes the passes + torch version."""
        return hashlib.sha256(
            f"{self.config.to_json()}|{source_fingerprint()}|{torch.__version__}".encode()).hexdigest()
