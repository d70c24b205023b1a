"""Plain-text tables of reports (the ``xpu-quant inspect`` view)."""

from __future__ import annotations

import json
from pathlib import Path

from .report import REPORT_FILE


def format_table(headers: list[str], rows: list[list[str]], max_width: int = 90) -> str:
    """Left-aligned columns, cells clipped to ``max_width`` characters."""
    cells = [[str(c) if len(str(c)) <= max_width else str(c)[: max_width - 3] + "..." for c in row]
             for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda row: "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def _refusals(entry: dict) -> str:
    return "; ".join(f"{r['kernel']}: {r['reason']}" for r in entry.get("refused", [])) or "-"


def _launch(entry: dict) -> str:
    launch = entry.get("launch")
    return f"{launch['by']}: {launch['reason']}" if launch else "-"


def report_table(reports: list[dict], verbose: bool = False) -> str:
    """One row per fused node (graph, pattern, op, kernel, who launches it and why, refusals),
    then each graph's host code and the near misses."""
    rows = [[r["graph"], e["pattern"], e["op"], e.get("kernel") or "-", _launch(e), _refusals(e)]
            for r in reports for e in r["fused"]]
    text = format_table(["graph", "pattern", "op", "kernel", "launch", "refused"], rows,
                        10_000 if verbose else 90)
    hosts = [[r["graph"], "C++" if r["host_code"]["cpp"] else "Python", r["host_code"]["reason"]]
             for r in reports if r.get("host_code")]
    if hosts:
        text += "\n\nhost code (option cpp_wrapper):\n" + format_table(["graph", "host code", "why"], hosts)
    misses = [[r["graph"], m["pattern"], m["node"], m["reason"]] for r in reports for m in r["near_misses"]]
    if misses:
        text += "\n\nnear misses (left unfused):\n" + format_table(["graph", "pattern", "node", "reason"], misses,
                                                                  10_000 if verbose else 120)
    return text


def load_reports(folder: str | Path) -> list[dict]:
    """Every ``report.json`` under ``folder`` (one per compiled graph), oldest first."""
    paths = sorted(Path(folder).rglob(REPORT_FILE), key=lambda p: p.stat().st_mtime)
    return [json.loads(p.read_text()) for p in paths]
