"""FP8 linear layers whose forward is the plain-PyTorch spelling the patterns fuse.

Under ``torch.compile(backend="xpu_quant")`` each layer becomes one fused op; in eager mode (or
any other backend) it computes the same function unfused.

Modes:

* ``"weight_only"``: ``x @ dequant(w).T`` with x in its own dtype (W8A16);
* ``"dynamic"``: x quantized per token at run time, then ``dequant(x_q) @ dequant(w).T`` (W8A8);
* ``"static"``: x quantized with a calibrated per-tensor ``input_scale`` (W8A8).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..formats import (
    DEFAULT_BLOCK,
    dequantize,
    dequantize_blocks,
    dequantize_groups,
    quantize,
    quantize_per_block,
    quantize_per_group,
    quantize_per_row,
    quantize_per_tensor,
    scale_from_amax,
)

MODES = ("weight_only", "dynamic", "static")
SCALE_GRANULARITIES = ("channel", "tensor", "block")


class Fp8Linear(nn.Module):
    """``nn.Linear`` with an FP8 ``[N, K]`` weight and a float32 weight scale.

    The scale is 0-d (per-tensor), ``[N, 1]`` (per-channel) or ``[ceil(N/B), ceil(K/B)]`` (block,
    ``block = B``). With block scales, ``dynamic`` mode quantizes activations per ``1 x B`` group
    (power-of-two UE8M0 scales with ``pow2_scales=True``).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, mode: str = "weight_only",
                 weight_dtype: torch.dtype = torch.float8_e4m3fn, activation_dtype: torch.dtype = torch.float8_e4m3fn,
                 dtype: torch.dtype = torch.bfloat16, device=None) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"Fp8Linear: mode must be one of {MODES}; got {mode!r}")
        self.in_features, self.out_features, self.mode = in_features, out_features, mode
        self.activation_dtype = activation_dtype
        self.block = 0
        self.pow2_scales = False
        self.register_buffer("weight", torch.empty(out_features, in_features, dtype=weight_dtype, device=device))
        self.register_buffer("weight_scale", torch.ones(out_features, 1, device=device))
        self.register_buffer("input_scale", torch.ones((), device=device) if mode == "static" else None)
        self.bias = nn.Parameter(torch.zeros(out_features, dtype=dtype, device=device),
                                 requires_grad=False) if bias else None

    @classmethod
    def from_linear(cls, linear: nn.Linear, mode: str = "weight_only", scale: str = "channel",
                    weight_dtype: torch.dtype = torch.float8_e4m3fn, block: int = DEFAULT_BLOCK,
                    pow2_scales: bool = False) -> Fp8Linear:
        """Quantize ``linear``'s weight (per channel, per tensor or per block) into a new layer."""
        if scale not in SCALE_GRANULARITIES:
            raise ValueError(f"Fp8Linear.from_linear: scale must be one of {SCALE_GRANULARITIES}; got {scale!r}")
        if scale == "block" and mode == "static":
            raise ValueError("Fp8Linear.from_linear: block scales support modes 'weight_only' and 'dynamic'")
        if scale == "block" and mode == "dynamic" and linear.in_features % block:
            raise ValueError(f"Fp8Linear.from_linear: dynamic block mode needs in_features ({linear.in_features}) "
                             f"divisible by the block ({block})")
        weight = linear.weight.detach()
        layer = cls(linear.in_features, linear.out_features, linear.bias is not None, mode=mode,
                    weight_dtype=weight_dtype, dtype=weight.dtype, device=weight.device)
        if scale == "block":
            layer.block, layer.pow2_scales = block, pow2_scales
            q, s = quantize_per_block(weight, block, weight_dtype, pow2_scales)
        else:
            q, s = (quantize_per_row if scale == "channel" else quantize_per_tensor)(weight, weight_dtype)
        layer.weight.copy_(q)
        layer.weight_scale = s.float()
        if linear.bias is not None:
            layer.bias.data.copy_(linear.bias.detach())
        return layer

    def dequantized_weight(self, dtype: torch.dtype) -> torch.Tensor:
        """The weight in ``dtype`` (the spelling the patterns match)."""
        if self.block:
            return dequantize_blocks(self.weight, self.weight_scale, self.block, dtype)
        return dequantize(self.weight, self.weight_scale, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.dequantized_weight(x.dtype)
        if self.mode == "dynamic" and self.block:
            x_q, x_scale = quantize_per_group(x, self.block, self.activation_dtype, self.pow2_scales)
            x = dequantize_groups(x_q, x_scale, x.dtype)
        elif self.mode == "dynamic":
            x_q, x_scale = quantize_per_row(x, self.activation_dtype)
            x = dequantize(x_q, x_scale, x.dtype)
        elif self.mode == "static":
            x = dequantize(quantize(x, self.input_scale, self.activation_dtype), self.input_scale, x.dtype)
        return F.linear(x, w, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, mode={self.mode}, "
                f"weight={self.weight.dtype}, scale={list(self.weight_scale.shape)}, block={self.block}")


def convert_linears_to_fp8(model: nn.Module, mode: str = "weight_only", scale: str = "channel",
                           weight_dtype: torch.dtype = torch.float8_e4m3fn,
                           skip: Callable[[str, nn.Linear], bool] | Iterable[str] = ("lm_head",),
                           block: int = DEFAULT_BLOCK, pow2_scales: bool = False) -> int:
    """Replace every ``nn.Linear`` of ``model`` (in place) by an :class:`Fp8Linear`; returns the count.

    ``skip`` is a predicate ``(qualified_name, module) -> bool`` or a collection of name suffixes
    (default: the output head ``lm_head``, which is usually kept in high precision).
    """
    if not callable(skip):
        suffixes = tuple(skip)

        def skip(name, module):  # noqa: F811
            return name.endswith(suffixes) if suffixes else False

    targets = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear) and not skip(name, m)]
    for name, linear in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, Fp8Linear.from_linear(linear, mode, scale, weight_dtype, block, pow2_scales))
    return len(targets)


@torch.no_grad()
def calibrate_static_scales(model: nn.Module, *inputs, **kwargs) -> int:
    """Set ``input_scale`` of every static :class:`Fp8Linear` from one eager forward; returns the count."""
    amax: dict[Fp8Linear, torch.Tensor] = {}
    hooks = []
    for module in model.modules():
        if isinstance(module, Fp8Linear) and module.mode == "static":
            def record(mod, args):
                seen = args[0].detach().abs().amax().float()
                amax[mod] = torch.maximum(amax.get(mod, seen), seen)
            hooks.append(module.register_forward_pre_hook(record))
    try:
        model(*inputs, **kwargs)
    finally:
        for hook in hooks:
            hook.remove()
    for module, value in amax.items():
        module.input_scale.copy_(scale_from_amax(value, module.activation_dtype))
    return len(amax)
