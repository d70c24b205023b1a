"""Recognise block-scaled FP8 dequantizations, whatever the spelling of the scale broadcast.

A block dequantization multiplies an FP8 tensor ``q [R, C]`` by a small scale ``s [ceil(R/br),
ceil(C/bc)]`` broadcast to one value per ``br x bc`` block. People spell the broadcast as a
reshape (``q.reshape(R/br, br, C/bc, bc) * s[:, None, :, None]``), as ``repeat_interleave`` (with a
slice for ragged edges), with ``expand``/``index``, or through our formats helper. Instead of
listing spellings, the weight side is matched semantically: the scale-side subgraph (data
movement only) is run on a probe scale and must equal the block expansion exactly.

Activations (``1 x G`` groups, token count often symbolic) are matched structurally: the grouped
reshape ``q.reshape(..., K/G, G) * s[..., K/G, 1]`` followed by a reshape back to ``[..., K]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.fx import Node
from torch.fx.experimental.symbolic_shapes import guard_int

from xpu_inductor_ext.formats import block_count, expand_block_scale
from xpu_inductor_ext.ops.symbolic import differs, is_one

from .nodes import CONVERT, MUL, PRECISION, RESHAPES, dtype_of, is_call, is_fp8, shape_of

aten = torch.ops.aten
SCALE_MOVEMENT_OPS = {
    aten.unsqueeze.default, aten.expand.default, aten.clone.default, aten.reshape.default, aten.view.default,
    aten.slice.Tensor, aten.permute.default, aten.repeat_interleave.self_int, aten.repeat.default,
    aten.squeeze.dim, aten.squeeze.default, CONVERT,
}
"""Ops allowed between a block scale and the multiply: they move or cast values, never compute."""

BLOCK_SIZE_GUESSES = (128, 256, 64, 32, 16)
"""Block sizes tried (with the exact quotient) when a ragged edge makes the size ambiguous."""

MIN_BLOCK_K = 16
"""Narrower K blocks are per-input-channel scales, which no GEMM kernel can apply per K-tile."""


@dataclass
class BlockDequant:
    """``q`` FP8 ``[R, C]`` times ``scale`` ``[ceil(R/block_rows), ceil(C/block_cols)]`` expanded."""

    q: Node
    scale: Node
    block_rows: int
    block_cols: int
    nodes: list[Node]


def _strip_converts(node: Node, reshapes: bool = False) -> tuple[Node, list[Node]] | str:
    """Walk up through casts (and reshapes, if asked) that never narrow below the final dtype."""
    chain, final = [], dtype_of(node)
    ops = (CONVERT, *RESHAPES) if reshapes else (CONVERT,)
    while is_call(node, *ops) and not is_fp8(node.args[0]):
        chain.append(node)
        node = node.args[0]
        if PRECISION.get(dtype_of(node), 0) < PRECISION.get(final, 0):
            return f"{chain[0]}: the dequantized value is rounded to {dtype_of(node)} before use in {final}"
    return node, chain


def _fp8_source(node: Node) -> tuple[Node, list[Node]] | None:
    """Follow reshapes and converts up to an FP8 tensor."""
    chain = []
    while is_call(node, CONVERT, *RESHAPES):
        chain.append(node)
        node = node.args[0]
        if is_fp8(node):
            return node, chain
    return None


def _fp8_times_scale(mul: Node):
    """Each way to read ``mul`` as (FP8 source, its cast/reshape chain, data operand, scale operand)."""
    for data, scale in (mul.args, tuple(reversed(mul.args))):
        source = _fp8_source(data) if isinstance(data, Node) else None
        if source is not None and isinstance(scale, Node):
            yield (*source, data, scale)


def _scale_subgraph(node: Node) -> tuple[Node, list[Node]] | None:
    """The single tensor leaf feeding ``node`` through movement ops, and those ops (topological)."""
    ops, leaves, stack = [], set(), [node]
    while stack:
        n = stack.pop()
        if is_call(n, *SCALE_MOVEMENT_OPS):
            if n not in ops:
                ops.append(n)
                stack.extend(n.all_input_nodes)
        else:
            leaves.add(n)
    if len(leaves) != 1:
        return None
    order = {n: i for i, n in enumerate(node.graph.nodes)}
    return leaves.pop(), sorted(ops, key=order.__getitem__)


def _evaluate(ops: list[Node], leaf: Node, value: torch.Tensor) -> torch.Tensor:
    env = {leaf: value}
    for n in ops:
        args = torch.fx.map_arg(n.args, env.__getitem__)
        kwargs = torch.fx.map_arg(n.kwargs, env.__getitem__)
        env[n] = n.target(*args, **kwargs)
    return env[ops[-1]] if ops else value


def _concrete(shape) -> bool:
    return all(isinstance(d, int) for d in shape)


def match_weight_block_dequant(node: Node) -> BlockDequant | str:
    """Match ``node`` (``[R, C]``) as a block dequantization of an FP8 weight."""
    stripped = _strip_converts(node)
    if isinstance(stripped, str):
        return stripped
    top, chain = stripped
    outer = None
    if is_call(top, *RESHAPES):
        outer, top = top, top.args[0]
    if not is_call(top, MUL):
        return f"{node} is not a block dequantization"
    for q, data_chain, data, scale in _fp8_times_scale(top):
        rows_cols = shape_of(q)
        if len(rows_cols) != 2 or shape_of(outer or top) != rows_cols or not _concrete(shape_of(top)):
            return f"{node}: FP8 weight shape {list(rows_cols)} does not round-trip through the scale multiply"
        found = _scale_subgraph(scale)
        if found is None:
            return f"{node}: the scale is computed, not a block scale broadcast"
        leaf, ops = found
        block = _infer_blocks(leaf, ops, top, outer, rows_cols, data)
        if isinstance(block, str):
            return block
        nodes = chain + ([outer] if outer is not None else []) + [top] + data_chain + ops
        return BlockDequant(q, leaf, *block, nodes)
    return f"{node}: neither factor is an FP8 tensor"


def _infer_blocks(leaf, ops, mul, outer, rows_cols, data) -> tuple[int, int] | str:
    leaf_shape = shape_of(leaf)
    if len(leaf_shape) != 2 or not _concrete(leaf_shape) or dtype_of(leaf) not in PRECISION:
        return f"scale {leaf} of shape {list(leaf_shape)} is not a 2-D block scale"
    if leaf_shape[1] == 1:
        return f"scale {leaf} {list(leaf_shape)} is per-tensor or per-channel: left to the fp8_linear family"
    rows, cols = rows_cols
    probe = torch.rand(leaf_shape, dtype=torch.float64) + 1.0
    try:
        full = _evaluate(ops, leaf, probe.to(dtype_of(leaf)))
        full = full.double().expand(shape_of(data)).reshape(rows, cols)
    except RuntimeError as e:
        return f"scale broadcast could not be evaluated: {e}"
    probe = probe.to(dtype_of(leaf)).double()
    for br in _guesses(rows, leaf_shape[0]):
        for bc in _guesses(cols, leaf_shape[1]):
            if torch.equal(full, expand_block_scale(probe, rows, cols, br, bc).double()):
                return br, bc
    return f"scale {leaf} {list(leaf_shape)} is not a block broadcast over [{rows}, {cols}]"


def _guesses(size: int, count: int) -> list[int]:
    exact = -(-size // count)
    return [b for b in dict.fromkeys((exact, *BLOCK_SIZE_GUESSES)) if block_count(size, b) == count]


@dataclass
class GroupDequant:
    """An activation ``q [..., K]`` times ``scale [..., K/G, 1]`` per group of ``G`` along K."""

    q: Node
    scale: Node
    group: int
    nodes: list[Node]
    q_grouped: bool = False
    """True when ``q`` itself is ``[..., K/G, G]`` (quantized after the grouping reshape)."""


def match_activation_group_dequant(node: Node) -> GroupDequant | str:
    """Match ``node`` (``[M, K]``) as ``(q.reshape(..., K/G, G) * s).reshape(M, K)`` (casts allowed)."""
    stripped = _strip_converts(node, reshapes=True)
    if isinstance(stripped, str):
        return stripped
    top, chain = stripped
    if not is_call(top, MUL) or not any(is_call(n, *RESHAPES) for n in chain):
        return f"{node} is not a grouped dequantization"
    for q, data_chain, _, scale in _fp8_times_scale(top):
        grouped, s_shape, q_shape = shape_of(top), shape_of(scale), shape_of(q)
        if len(grouped) < 3:
            return f"{node}: the activation is not reshaped into groups along K"
        # With dynamic=True the group size is an expression of the (symbolic) hidden size; the
        # static weight pins K anyway, so specialising it costs no recompiles.
        group = guard_int(grouped[-1])
        q_grouped = len(q_shape) == len(grouped) and not any(differs(a, b) for a, b in zip(q_shape, grouped))
        if not q_grouped and differs(q_shape[-1], grouped[-1] * grouped[-2]):
            return f"{node}: the activation is not reshaped into groups along K"
        if len(s_shape) != len(grouped) or not is_one(s_shape[-1]) or differs(s_shape[-2], grouped[-2]):
            return f"{node}: activation scale of shape {list(s_shape)} is not one value per group"
        return GroupDequant(q, scale, group, chain + [top] + data_chain, q_grouped)
    return f"{node}: neither factor is an FP8 tensor"
