"""Block-scaled FP8 linears (DeepSeek-V3 / Qwen3-FP8 checkpoints: ``weight_scale_inv`` per block).

Weight side: an FP8 ``[N, K]`` weight times a ``[ceil(N/bn), ceil(K/bk)]`` scale, any broadcast
spelling (see :mod:`.block_scales`). Activation side, one of:

* ``1 x G`` groups (``x_q.reshape(..., K/G, G) * s``), G equal to the weight's K block
  -> ``xpu_quant::fp8_block_scaled_mm``;
* a per-token or per-tensor dequantization -> the same op with the scale broadcast to groups;
* a high-precision activation -> ``xpu_quant::fp8_weight_only_mm`` in block mode.

Runs before the ``fp8_linear`` family, which would otherwise report these as near misses.
"""

from __future__ import annotations

import torch
from torch.fx import Node

from xpu_inductor_ext.formats import ACTIVATION_DTYPES
from xpu_inductor_ext.ops import BLOCK_SCALED_MM, WEIGHT_ONLY_MM

from .block_scales import MIN_BLOCK_K, GroupDequant, match_activation_group_dequant, match_weight_block_dequant
from .fp8_linear import ActivationSide, bias_of, match_activation
from .family import MatmulFusion
from .graph_edit import replace_with_function
from .nodes import dtype_of, find_op_node, first_multi_user, is_transpose

PATTERN = "fp8_block_linear"
BLOCK_WEIGHT = "block weight matched, but "
"""Prefix of the refusals that come after the weight matched as a block dequantization."""


def _weight_nk(w, scale, stored_nk: bool):
    return (w, scale) if stored_nk else (w.t(), scale.t())


def _finish(out, bias, bias_mode):
    return out + bias if bias_mode == "after" else out


def weight_only_block_replacement(stored_nk: bool, block_n: int, block_k: int, bias_mode: str):
    """``x @ block_dequant(w)^T`` -> ``fp8_weight_only_mm`` in block mode."""

    def replacement(x, w, scale, bias):
        w_nk, s_nk = _weight_nk(w, scale.float(), stored_nk)
        fused_bias = bias.reshape(-1) if bias_mode == "fused" else None
        return _finish(torch.ops.xpu_quant.fp8_weight_only_mm(x, w_nk, s_nk, fused_bias, block_n, block_k),
                       bias, bias_mode)

    return replacement


def block_w8a8_replacement(stored_nk: bool, block_n: int, block_k: int, act: str, q_grouped: bool, bias_mode: str,
                           out_dtype):
    """``dequant(x_q) @ block_dequant(w)^T`` -> ``fp8_block_scaled_mm``; ``act`` is group/row/tensor."""

    def replacement(xq, x_scale, w, scale, bias):
        k = w.shape[1] if stored_nk else w.shape[0]
        groups = -(-k // block_k)
        a = xq.reshape(-1, k)
        lead = xq.shape[:-2] if q_grouped else xq.shape[:-1]
        if act == "group":
            sa = x_scale.float().expand(*lead, groups, 1).reshape(-1, groups)
        else:
            sa = x_scale.float().expand(*xq.shape[:-1], 1).reshape(-1, 1).expand(-1, groups)
        w_nk, s_nk = _weight_nk(w, scale.float(), stored_nk)
        fused_bias = bias.reshape(-1) if bias_mode == "fused" else None
        out = torch.ops.xpu_quant.fp8_block_scaled_mm(a, w_nk, sa, s_nk, fused_bias, out_dtype, block_n, block_k)
        return _finish(out, bias, bias_mode)

    return replacement


class Fp8BlockLinearFusion(MatmulFusion):
    """Rewrite block-scaled FP8 linears into the block ``xpu_quant`` ops.

    Refusals of anchors whose weight is not block-dequantized are not near misses of this family
    (the per-channel family reports on those); refusals after a block weight matched are.
    """

    name = PATTERN
    option = "fuse_fp8_block_linear"

    def is_near_miss(self, anchor: Node, reason: str) -> bool:
        return reason.startswith(BLOCK_WEIGHT)

    def rewrite(self, anchor: Node, report) -> Node | str:
        a_node, b_node = anchor.args[-2], anchor.args[-1]
        stored_nk = is_transpose(b_node)
        weight = match_weight_block_dequant(b_node.args[0] if stored_nk else b_node)
        if isinstance(weight, str):
            return weight  # not a block weight: the fp8_linear family reports on it
        block_n, block_k = (weight.block_rows, weight.block_cols) if stored_nk else (weight.block_cols,
                                                                                       weight.block_rows)
        if block_k < MIN_BLOCK_K:
            return BLOCK_WEIGHT + f"{block_n}x{block_k} blocks are per-input-channel scales, not K blocks"
        out_dtype = dtype_of(anchor)
        bias, bias_mode = bias_of(anchor)
        if out_dtype not in ACTIVATION_DTYPES or bias_mode == "scaled":
            return BLOCK_WEIGHT + f"output dtype {out_dtype} / addmm scaling not supported"
        activation = self._activation(a_node, block_k)
        if isinstance(activation, str):
            return BLOCK_WEIGHT + activation
        nodes = weight.nodes + ([] if activation is None else activation.nodes) + ([b_node] if stored_nk else [])
        busy = first_multi_user(nodes)
        if busy is not None:
            return BLOCK_WEIGHT + f"{busy} (part of the dequantization) has {len(busy.users)} users"
        detail = {"block": [block_n, block_k], "bias": bias_mode,
                  "weight_layout": "[N, K]" if stored_nk else "[K, N]"}
        if activation is None:
            fn = weight_only_block_replacement(stored_nk, block_n, block_k, bias_mode)
            args, op, name = [a_node, weight.q, weight.scale, bias], WEIGHT_ONLY_MM, "weight_only"
        else:
            act = "group" if isinstance(activation, GroupDequant) else activation.scale_kind
            fn = block_w8a8_replacement(stored_nk, block_n, block_k, act,
                                        getattr(activation, "q_grouped", False), bias_mode, out_dtype)
            dq = activation if isinstance(activation, GroupDequant) else activation.dequant
            args, op, name = [dq.q, dq.scale, weight.q, weight.scale, bias], BLOCK_SCALED_MM, "w8a8"
            detail["a_scale"] = act
        fused = replace_with_function(anchor, fn, args)
        fused_node = find_op_node(fused, op)
        report.fused(f"{self.name}.{name}", fused_node, op, anchor.name, detail)
        return fused_node

    @staticmethod
    def _activation(a_node, block_k) -> GroupDequant | ActivationSide | str | None:
        """The activation's dequantization, None for a high-precision activation, or why not."""
        group = match_activation_group_dequant(a_node)
        if isinstance(group, GroupDequant):
            if group.group != block_k:
                return f"activation group {group.group} differs from the weight's K block {block_k}"
            return group
        row = match_activation(a_node)
        return row if isinstance(row, ActivationSide) else None
