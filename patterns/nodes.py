"""Structural helpers over post-grad ATen graphs: what a node is, and the dequantize spelling.

Post-grad forms (see shared/reference/inductor-facts.md): ``w.to(dt)`` / ``w.float()`` are
``prims.convert_element_type``; ``.t()`` is ``aten.permute(w, [1, 0])``; broadcast scale multiplies
are ``aten.mul.Tensor``; views are ``aten.reshape``. Matchers here return either a match or a
string that says why not, so near misses can be reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.fx import Node

from xpu_inductor_ext.formats import ACTIVATION_DTYPES, FP8_DTYPES

aten = torch.ops.aten
prims = torch.ops.prims

CONVERT = prims.convert_element_type.default
MUL = aten.mul.Tensor
PERMUTE = aten.permute.default
RESHAPES = (aten.reshape.default, aten.view.default)
MM = aten.mm.default
ADDMM = aten.addmm.default
BMM = aten.bmm.default
EXPAND = aten.expand.default


def val(node):
    """Fake value of a node, or None."""
    return node.meta.get("val") if isinstance(node, Node) else None


def dtype_of(node) -> torch.dtype | None:
    """dtype of a tensor-valued node, or None."""
    v = val(node)
    return v.dtype if isinstance(v, torch.Tensor) else None


def shape_of(node) -> tuple:
    """Shape of a tensor-valued node (empty for anything else)."""
    v = val(node)
    return tuple(v.shape) if isinstance(v, torch.Tensor) else ()


def is_call(node, *targets) -> bool:
    """``node`` is a call of one of ``targets``."""
    return isinstance(node, Node) and node.op == "call_function" and node.target in targets


def is_fp8(node) -> bool:
    """``node`` holds an FP8 tensor."""
    return dtype_of(node) in FP8_DTYPES


def is_transpose(node) -> bool:
    """``node`` swaps the two dims of a 2-D tensor (``.t()`` / ``permute(1, 0)``)."""
    return is_call(node, PERMUTE) and list(node.args[1]) == [1, 0]


@dataclass
class Dequant:
    """``q.to(dt) * scale`` (any order, any extra casts): ``q`` FP8, ``scale`` a float tensor."""

    q: Node
    scale: Node
    nodes: list[Node] = field(default_factory=list)
    """The intermediate nodes the dequantization consumes (each must have a single user)."""


def _fp8_through_converts(node) -> tuple[Node | None, list[Node]]:
    chain = []
    while is_call(node, CONVERT):
        chain.append(node)
        if is_fp8(node.args[0]):
            return node.args[0], chain
        node = node.args[0]
    return None, chain


PRECISION = {torch.float16: 1, torch.bfloat16: 1, torch.float32: 2, torch.float64: 3}


def match_dequant(node) -> Dequant | str:
    """Match ``node`` as the dequantization of an FP8 tensor by a tensor scale.

    Refuses a dequantization rounded to a narrower dtype before it is widened again
    (``(w.to(bf16) * s).float()``): the fused kernel would not reproduce that rounding.
    """
    chain = []
    final = dtype_of(node)
    while is_call(node, CONVERT) and not is_fp8(node.args[0]):
        chain.append(node)
        node = node.args[0]
        if PRECISION.get(dtype_of(node), 0) < PRECISION.get(final, 0):
            return f"{chain[0]}: the dequantized value is rounded to {dtype_of(node)} before use in {final}"
    if not is_call(node, MUL):
        return f"{node} is not an FP8 dequantization (q.to(dtype) * scale)"
    chain.append(node)
    for x, scale in (node.args, tuple(reversed(node.args))):
        q, converts = _fp8_through_converts(x)
        if q is None:
            continue
        if not isinstance(scale, Node):
            return f"{node}: the scale is a Python number, not a tensor"
        if dtype_of(scale) not in ACTIVATION_DTYPES:
            return f"{node}: the scale has dtype {dtype_of(scale)}, not a float dtype"
        if shape_of(node) != shape_of(q):
            return f"{node}: the scale broadcasts the FP8 tensor to a larger shape"
        return Dequant(q, scale, chain + converts)
    return f"{node}: neither factor is an FP8 tensor cast to a float dtype"


def first_multi_user(nodes) -> Node | None:
    """The first node among ``nodes`` used by more than one node, if any."""
    return next((n for n in nodes if len(n.users) != 1), None)


def feeds_from_fp8(node, depth: int = 6) -> bool:
    """Whether an FP8 tensor lies within ``depth`` nodes upstream (for near-miss reporting)."""
    frontier = [node]
    for _ in range(depth):
        nxt = []
        for n in frontier:
            if is_fp8(n):
                return True
            if isinstance(n, Node):
                nxt.extend(n.all_input_nodes)
        frontier = nxt
    return False


def find_op_node(node: Node, op: str) -> Node:
    """The node calling ``op``: ``node`` itself, or its input when a bias add follows it."""
    for n in (node, *node.all_input_nodes):
        if n.op == "call_function" and getattr(n.target, "name", lambda: "")() == op:
            return n
    return node
