"""Shape comparisons that work on concrete and symbolic sizes without adding guards."""

from __future__ import annotations

from torch.fx.experimental.symbolic_shapes import guard_or_false


def differs(a, b) -> bool:
    """True only when ``a != b`` is certain (symbolic sizes that may be equal count as equal)."""
    return bool(guard_or_false(a != b))


def is_one(size) -> bool:
    """True only when ``size == 1`` is certain."""
    return bool(guard_or_false(size == 1))


def numel_is_one(shape) -> bool:
    """True when every dimension is certainly 1 (so the tensor holds one value)."""
    return all(is_one(d) for d in shape)
