"""Kernel selection: each fused ``xpu_quant`` node becomes its chosen implementation."""

from __future__ import annotations

import torch
from torch.fx import Graph, Node

from xpu_inductor_ext.patterns.graph_edit import replace_with_function

from ..config import Config
from ..kernels import OP_FUNCTIONS, linear_problem, select


def fused_op_name(node: Node) -> str | None:
    """The ``xpu_quant::`` op a node calls, or None."""
    if node.op != "call_function" or not isinstance(node.target, torch._ops.OpOverload):
        return None
    name = node.target.name()
    return name if name in OP_FUNCTIONS else None


def _bind(node: Node) -> tuple[list, dict]:
    """The node's arguments in schema order (defaults filled) and their values by name."""
    schema = node.target._schema
    positional = list(node.args)
    for arg in schema.arguments[len(positional):]:
        positional.append(node.kwargs.get(arg.name, arg.default_value))
    values = {a.name: (v.meta["val"] if isinstance(v, Node) else v) for a, v in zip(schema.arguments, positional)}
    return positional, values


def select_kernels(graph: Graph, config: Config, report) -> int:
    """Replace every fused node by its selected kernel; returns how many were lowered."""
    count = 0
    for node in list(graph.nodes):
        op = fused_op_name(node)
        if op is None:
            continue
        positional, values = _bind(node)
        problem = linear_problem(op, values)
        device = next(v.device for v in values.values() if isinstance(v, torch.Tensor))
        selection = select(problem, device, config.force_kernels, config.disable_kernels)
        report.selected(node, op, selection.chosen.name, selection.refused, problem.describe(), selection.notes)
        replace_with_function(node, selection.chosen.lower(problem), positional)
        count += 1
    return count
