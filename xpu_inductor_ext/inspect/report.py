"""The per-graph compile report: what matched, what was chosen, what was refused and why."""

from __future__ import annotations

import datetime
import json
import platform as host

import torch
from torch.fx import Node

REPORT_FILE = "report.json"


class CompileReport:
    """Collects the decisions of one compiled graph; serialises to ``report.json``."""

    def __init__(self, graph_id: str, config_json: str, device: str, host_code: dict | None = None) -> None:
        self.graph_id = graph_id
        self.config = json.loads(config_json)
        self.device = device
        self.host_code = host_code  # {"cpp": bool, "reason": str}: Inductor's host code for the graph
        self.passes: list[dict] = []
        self.fused_nodes: list[dict] = []
        self.near_misses: list[dict] = []
        self.notes: list[str] = []
        self._by_node: dict[str, dict] = {}

    def fused(self, pattern: str, node: Node, op: str, replaced: str, detail: dict) -> None:
        """Record that ``pattern`` replaced ``replaced`` by the fused ``op`` node ``node``."""
        entry = {"pattern": pattern, "op": op, "node": node.name, "replaced": replaced,
                 "detail": {k: v for k, v in detail.items() if v is not None},
                 "kernel": None, "refused": []}
        self.fused_nodes.append(entry)
        self._by_node[node.name] = entry

    def near_miss(self, pattern: str, node: Node, reason: str) -> None:
        """Record a node that looked like ``pattern`` but was left alone, with the reason."""
        self.near_misses.append({"pattern": pattern, "node": node.name, "reason": reason})

    def selected(self, node: Node, op: str, kernel: str, refused: list[dict], problem: dict,
                 notes: list[str], launch: dict | None = None) -> None:
        """Record the kernel chosen for a fused node (one the user may have written directly) and,
        for kernels that can have their launches fixed in the graph, who launches them and why
        (``{"by": "inductor" | "op", "reason": ...}``)."""
        entry = self._by_node.get(node.name)
        if entry is None:
            entry = {"pattern": "direct call", "op": op, "node": node.name, "replaced": None, "detail": {}}
            self.fused_nodes.append(entry)
        entry.update(kernel=kernel, refused=refused, problem=problem)
        if notes:
            entry["notes"] = notes
        if launch is not None:
            entry["launch"] = launch

    def pass_ran(self, name: str, matches: int, seconds: float) -> None:
        """Record one pass: its match count and wall time."""
        self.passes.append({"name": name, "matches": matches, "ms": round(seconds * 1e3, 3)})

    def to_dict(self) -> dict:
        """JSON-ready form: the schema of report.json."""
        return {
            "graph": self.graph_id,
            "created": datetime.datetime.now().isoformat(timespec="seconds"),
            "torch": torch.__version__,
            "python": host.python_version(),
            "device": self.device,
            "host_code": self.host_code,
            "config": self.config,
            "passes": self.passes,
            "fused": self.fused_nodes,
            "near_misses": self.near_misses,
            "notes": self.notes,
        }

    def to_json(self) -> str:
        """Indented JSON text."""
        return json.dumps(self.to_dict(), indent=2, default=str)
