"""Graph surgery shared by the pattern and selection passes.

One way to put code into a post-grad graph: trace a plain-PyTorch function at the fake values of
its input nodes (symbolic sizes included) and splice the result in place of a node, exactly as
Inductor's own pattern replacements do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch._inductor.pattern_matcher import Match, MatchContext
from torch.fx import Node


def replace_with_function(node: Node, fn: Callable, args: Sequence, mutating: bool = False) -> Node:
    """Replace ``node`` (all its uses) by ``fn(*args)`` traced into the graph.

    ``args`` may mix graph nodes (their ``meta["val"]`` drives tracing) and constants (dtypes,
    ints, None), which are bound into the traced function. ``mutating``: ``fn`` writes tensors
    in place (user-defined Triton kernels filling the buffers it returns); the replacement then
    skips the functional passes, whose dead-code elimination would drop those writes.
    """
    positions = [i for i, a in enumerate(args) if isinstance(a, Node)]
    node_args = [args[i] for i in positions]

    def traced(*tensors):
        call_args = list(args)
        for i, t in zip(positions, tensors):
            call_args[i] = t
        return fn(*call_args)

    key = object()  # stands in for a pattern: Match only needs a key that maps to the output node
    ctx = MatchContext([key], {key: node}, graph=node.graph)
    match = Match(ctx, key)
    match.nodes = [node]
    graph = node.graph
    before = set(graph.nodes)
    with torch.no_grad():
        match.replace_by_example(traced, node_args, run_functional_passes=not mutating)
    added = [n for n in graph.nodes if n not in before]
    outputs = [n for n in added if any(u not in added for u in n.users)]
    return outputs[-1] if outputs else added[-1]
