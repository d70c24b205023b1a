"""FP8 linears with per-tensor / per-token / per-channel scales.

Spellings matched (post-grad forms of ``F.linear``, ``@``, ``torch.matmul``, with or without bias,
2-D or 3-D activations — non-contiguous 3-D ones become a ``bmm`` against the broadcast weight,
fused weight-only — and ``.to(dtype)`` or ``.float()`` casts):

* weight-only (W8A16): ``x @ (w.to(dt) * s_w).t()`` with ``x`` bf16/fp16/fp32
  -> ``xpu_quant::fp8_weight_only_mm``;
* W8A8: ``(x_q.to(dt) * s_x) @ (w.to(dt) * s_w).t()`` with ``x_q`` FP8 (whatever quantized it,
  dynamic per-token or static per-tensor) -> ``xpu_quant::fp8_scaled_mm``; the quantization
  that produced ``x_q`` stays as written and Inductor fuses it into one kernel before the GEMM.

``s_w`` is one value or one per output channel (``[N, 1]`` for an ``[N, K]`` weight, ``[N]`` /
``[1, N]`` for a ``[K, N]`` one); ``s_x`` is one value or one per token (``[..., 1]``). Anything
else (scales varying along K, a dequantized weight used twice, a bias that is not per-channel
broadcast) is left alone and reported as a near miss with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.fx import Node

from xpu_inductor_ext.formats import ACTIVATION_DTYPES, scale_axis
from xpu_inductor_ext.ops import SCALED_MM, WEIGHT_ONLY_MM
from xpu_inductor_ext.ops.symbolic import is_one, numel_is_one
from .family import MatmulFusion
from .graph_edit import replace_with_function

from .nodes import (
    ADDMM,
    MM,
    BMM,
    EXPAND,
    RESHAPES,
    Dequant,
    dtype_of,
    feeds_from_fp8,
    find_op_node,
    first_multi_user,
    is_call,
    is_transpose,
    match_dequant,
    shape_of,
)

PATTERN = "fp8_linear"


@dataclass
class WeightSide:
    """The ``[K, N]`` operand of the matmul as a dequantized FP8 weight."""

    dequant: Dequant
    stored_nk: bool
    """True when the FP8 tensor is ``[N, K]`` (nn.Linear layout, used through ``.t()``)."""
    scale_kind: str
    nodes: list[Node]


@dataclass
class ActivationSide:
    """The ``[M, K]`` operand as a dequantized FP8 activation (W8A8)."""

    dequant: Dequant
    scale_kind: str
    nodes: list[Node]


def match_weight(node: Node) -> WeightSide | str:
    """``node`` (the matmul's ``[K, N]`` operand) as ``dequant(w).t()`` or ``dequant(w)``."""
    nodes = []
    stored_nk = is_transpose(node)
    if stored_nk:
        nodes.append(node)
        node = node.args[0]
    dq = match_dequant(node)
    if isinstance(dq, str):
        return dq
    rows, cols = shape_of(dq.q)
    axis = scale_axis(shape_of(dq.scale), rows, cols)
    per_channel_axis = "row" if stored_nk else "col"
    if axis not in ("tensor", per_channel_axis):
        return (f"weight scale of shape {list(shape_of(dq.scale))} is not per-tensor or per-output-channel "
                f"for a weight of shape {[rows, cols]} (block scales are matched by the block family)")
    nodes += dq.nodes
    return WeightSide(dq, stored_nk, "tensor" if axis == "tensor" else "row", nodes)


def match_activation(node: Node) -> ActivationSide | str:
    """``node`` (the ``[M, K]`` operand) as ``dequant(x_q)`` possibly flattened from 3-D."""
    nodes = []
    if is_call(node, *RESHAPES):
        nodes.append(node)
        node = node.args[0]
    dq = match_dequant(node)
    if isinstance(dq, str):
        return dq
    s_shape = shape_of(dq.scale)
    if s_shape and not is_one(s_shape[-1]):
        return f"activation scale of shape {list(s_shape)} varies along K: not per-tensor or per-token"
    kind = "tensor" if numel_is_one(s_shape) else "row"
    return ActivationSide(dq, kind, nodes + dq.nodes)


def bias_of(anchor: Node) -> tuple[Node | None, str]:
    """The bias of an addmm and how it is applied: ``"fused"`` ([N]-broadcast) or ``"after"``."""
    if not is_call(anchor, ADDMM):
        return None, "none"
    if anchor.kwargs.get("beta", 1) != 1 or anchor.kwargs.get("alpha", 1) != 1:
        return None, "scaled"
    bias = anchor.args[0]
    n = shape_of(anchor)[1]
    shape = shape_of(bias)
    if len(shape) == 1 or (len(shape) == 2 and shape[0] == 1):
        return bias, "fused" if shape[-1] == n else "after"
    return bias, "after"


def weight_only_replacement(stored_nk: bool, w_scale: str, bias_mode: str, batched: bool = False):
    """The replacement for ``x @ dequant(w)^T (+ bias)`` with the match's static choices bound.

    ``batched``: x is ``[B, M, K]`` (a bmm anchor); it is flattened and the result unflattened.
    """

    def replacement(x, w, scale, bias):
        w_nk = w if stored_nk else w.t()
        s = scale.float().reshape(-1, 1) if w_scale == "row" else scale.float().reshape(1, 1)
        fused_bias = bias.reshape(-1) if bias_mode == "fused" else None
        x2 = x.reshape(-1, x.shape[-1]) if batched else x
        out = torch.ops.xpu_quant.fp8_weight_only_mm(x2, w_nk, s, fused_bias, 0, 0)
        if batched:
            out = out.reshape(*x.shape[:-1], w_nk.shape[0])
        return out + bias if bias_mode == "after" else out

    return replacement


def w8a8_replacement(stored_nk: bool, a_scale: str, w_scale: str, bias_mode: str, out_dtype: torch.dtype):
    """The replacement for ``dequant(x_q) @ dequant(w)^T (+ bias)``."""

    def replacement(xq, x_scale, w, scale, bias):
        k = xq.shape[-1]
        a = xq.reshape(-1, k)
        if a_scale == "row":
            sa = x_scale.float().expand(*xq.shape[:-1], 1).reshape(-1, 1)
        else:
            sa = x_scale.float().reshape(1, 1)
        w_nk = w if stored_nk else w.t()
        sb = scale.float().reshape(-1, 1) if w_scale == "row" else scale.float().reshape(1, 1)
        fused_bias = bias.reshape(-1) if bias_mode == "fused" else None
        out = torch.ops.xpu_quant.fp8_scaled_mm(a, w_nk, sa, sb, fused_bias, out_dtype)
        return out + bias if bias_mode == "after" else out

    return replacement


class Fp8LinearFusion(MatmulFusion):
    """Rewrite FP8 linears with tensor/row scales into the ``xpu_quant`` FP8 matmul ops."""

    name = PATTERN
    option = "fuse_fp8_linear"
    anchors = (MM, ADDMM, BMM)

    def is_near_miss(self, anchor: Node, reason: str) -> bool:
        return feeds_from_fp8(anchor.args[-1])

    def rewrite(self, anchor: Node, report) -> Node | str:
        a_node, b_node = anchor.args[-2], anchor.args[-1]
        batched = is_call(anchor, BMM)
        if batched:  # x[B, M, K] @ w.T with x non-contiguous: bmm(x, expand(w.T, [B, K, N]))
            if not is_call(b_node, EXPAND) or len(shape_of(b_node.args[0])) != 2:
                return "batched matmul whose second operand is not one weight broadcast over the batch"
            b_node = b_node.args[0]
        weight = match_weight(b_node)
        if isinstance(weight, str):
            return weight
        out_dtype = dtype_of(anchor)
        if out_dtype not in ACTIVATION_DTYPES:
            return f"matmul output dtype {out_dtype} is not bf16/fp16/fp32"
        bias, bias_mode = bias_of(anchor)
        if bias_mode == "scaled":
            return "addmm with alpha/beta != 1"
        activation = "batched matmul: the activation side is not fused" if batched else match_activation(a_node)
        if isinstance(activation, ActivationSide):
            nodes = weight.nodes + activation.nodes
        else:
            nodes = weight.nodes
        if batched:
            nodes = nodes + [anchor.args[1]]
        busy = first_multi_user(nodes)
        if busy is not None:
            return f"{busy} (part of the dequantization) has {len(busy.users)} users; fusing would duplicate it"
        w = weight.dequant
        if isinstance(activation, ActivationSide):
            xa = activation.dequant
            fn = w8a8_replacement(weight.stored_nk, activation.scale_kind, weight.scale_kind, bias_mode, out_dtype)
            args = [xa.q, xa.scale, w.q, w.scale, bias]
            op, detail = SCALED_MM, {"a_scale": activation.scale_kind}
        else:
            fn = weight_only_replacement(weight.stored_nk, weight.scale_kind, bias_mode, batched)
            args = [a_node, w.q, w.scale, bias]
            op, detail = WEIGHT_ONLY_MM, {"activation": str(out_dtype).replace("torch.", "")}
            if feeds_from_fp8(a_node):
                detail["activation_not_fused"] = activation
        fused = replace_with_function(anchor, fn, args)
        fused_node = find_op_node(fused, op)
        detail.update(b_scale=weight.scale_kind, bias=bias_mode,
                      weight_layout="[N, K]" if weight.stored_nk else "[K, N]",
                      weight_dtype=str(dtype_of(w.q)).replace("torch.", ""))
        report.fused(f"{self.name}.{'w8a8' if op == SCALED_MM else 'weight_only'}", fused_node, op, anchor.name,
                     detail)
        return fused_node
