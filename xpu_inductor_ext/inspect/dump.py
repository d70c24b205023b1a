"""Dump writer: one folder per compiled graph with the graph after each pass and report.json.

Each artifact also goes to ``torch._logging.trace_structured`` so ``TORCH_TRACE`` + tlparse show it.
"""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

from torch._logging import trace_structured
from torch.fx import Graph

from .report import REPORT_FILE

_counter = itertools.count()


def graph_text(graph: Graph) -> str:
    """The graph as readable Python with shapes, strides and devices annotated."""
    module = graph.owning_module
    if module is not None and hasattr(module, "print_readable"):
        return module.print_readable(print_output=False, include_stride=True, include_device=True)
    return graph.python_code("self", verbose=True).src


def _trace(name: str, text: str) -> None:
    trace_structured(
        "artifact",
        metadata_fn=lambda: {"name": f"xpu_quant_{name}", "encoding": "string"},
        payload_fn=lambda: text,
    )


def new_graph_id() -> str:
    """A process-unique id for the next compiled graph (``graph_000``, ``graph_001``, ...)."""
    return f"graph_{os.getpid()}_{next(_counter):03d}"


class GraphDumper:
    """Writes the stages of one graph under ``dump_dir/<graph_id>/`` (or only traces if no dir)."""

    def __init__(self, dump_dir: str | None, graph_id: str) -> None:
        self.folder = Path(dump_dir) / graph_id if dump_dir else None
        self.step = 0
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)

    def stage(self, name: str, graph: Graph) -> None:
        """Record the graph as it is after stage ``name``."""
        text = graph_text(graph)
        _trace(f"{self.step:02d}_{name}", text)
        if self.folder is not None:
            (self.folder / f"{self.step:02d}_{name}.py").write_text(text)
        self.step += 1

    def report(self, report_json: str) -> None:
        """Write ``report.json``."""
        _trace("report", report_json)
        if self.folder is not None:
            (self.folder / REPORT_FILE).write_text(report_json)

    def remove(self) -> None:
        """Delete the graph's folder (what this dumper wrote)."""
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
