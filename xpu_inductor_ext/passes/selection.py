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


def inductor_cudagraphs(patches: dict | None = None) -> bool:
    """Whether Inductor captures the graph it compiles in CUDA graphs (mode="reduce-overhead"):
    `patches` about to be given to compile_fx, else Inductor's config as it stands (inside a
    compile, with the patches applied)."""
    return bool((patches or {}).get("triton.cudagraphs", torch._inductor.config.triton.cudagraphs))


def graph_launch_refusal(config: Config) -> str | None:
    """Why no kernel launch of this compile may be fixed in the graph (``Candidate.lower_fixed``),
    or None."""
    if not config.graph_launch:
        return "option graph_launch is off"
    if inductor_cudagraphs():
        return ("Inductor's CUDA graphs (mode='reduce-overhead') replay the op's launches, host cost and all; "
                "the op keeps PDL and tensor descriptors")
    return None


def select_kernels(graph: Graph, config: Config, report) -> int:
    """Replace every fused node by its selected kernel; returns how many were lowered."""
    count = 0
    refusal = graph_launch_refusal(config)
    for node in list(graph.nodes):
        op = fused_op_name(node)
        if op is None:
            continue
        positional, values = _bind(node)
        problem = linear_problem(op, values)
        device = next(v.device for v in values.values() if isinstance(v, torch.Tensor))
        selection = select(problem, device, config.force_kernels, config.disable_kernels)
        lowered, launch = _lowering(selection.chosen, problem, values, refusal)
        report.selected(node, op, selection.chosen.name, selection.refused, problem.describe(), selection.notes,
                        launch)
        replace_with_function(node, lowered, positional, mutating=launch is not None and launch["by"] == "inductor")
        count += 1
    return count


def _lowering(chosen, problem, values: dict, refusal: str | None) -> tuple:
    """The chosen kernel's function for this node, with its launches fixed in the graph where the
    candidate can and the compile allows; and the report's launch entry (None: not applicable)."""
    if not chosen.fixes_launches:
        return chosen.lower(problem), None
    if refusal is not None:
        return chosen.lower(problem), {"by": "op", "reason": refusal}
    fixed, why = chosen.lower_fixed(values)
    if fixed is None:
        return chosen.lower(problem), {"by": "op", "reason": why}
    return fixed, {"by": "inductor", "reason": why}
