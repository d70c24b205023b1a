"""Input validation shared by every fused op: one error type, one message shape.

Messages always read ``<op>: argument '<arg>' <rule>; got <what was passed>`` so that a user can
find the op, the argument and the rule without reading kernel code.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class OpInputError(ValueError):
    """A fused op was called with inputs outside what it accepts."""


def fail(op: str, arg: str, rule: str, got: object) -> None:
    """Raise :class:`OpInputError` naming ``op``, ``arg`` and ``rule``."""
    raise OpInputError(f"{op}: argument '{arg}' {rule}; got {got}")


def describe(t: torch.Tensor | None) -> str:
    """Short description of a tensor argument for error messages."""
    if t is None:
        return "None"
    return f"{t.dtype} tensor of shape {list(t.shape)}"


def check_dtype(op: str, arg: str, t: torch.Tensor, allowed: Sequence[torch.dtype]) -> None:
    """``t.dtype`` must be one of ``allowed``."""
    if t.dtype not in allowed:
        names = ", ".join(str(d).replace("torch.", "") for d in allowed)
        fail(op, arg, f"must have dtype in ({names})", describe(t))


def check_rank(op: str, arg: str, t: torch.Tensor, rank: int) -> None:
    """``t`` must have exactly ``rank`` dimensions."""
    if t.dim() != rank:
        fail(op, arg, f"must be {rank}-D", describe(t))


def check_same_device(op: str, named: dict[str, torch.Tensor | None]) -> None:
    """All given tensors must live on one device."""
    devices = {name: t.device for name, t in named.items() if t is not None}
    if len(set(devices.values())) > 1:
        fail(op, "*", "tensors must all be on one device", devices)


def check_bias(op: str, bias: torch.Tensor | None, n, allowed: Sequence[torch.dtype]) -> None:
    """Bias is None or a 1-D tensor of ``n`` elements in one of ``allowed`` dtypes."""
    if bias is None:
        return
    check_dtype(op, "bias", bias, allowed)
    if bias.dim() != 1 or bias.shape[0] != n:
        fail(op, "bias", f"must be None or of shape [N] = [{n}]", describe(bias))
