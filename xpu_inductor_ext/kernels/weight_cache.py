"""Values derived once per long-lived tensor (a weight or its scale) and reused on later calls.

A tensor is known by its storage address, shape, strides, dtype, device and version counter, so
views made anew on every call hit and an in-place update misses. `DerivedCache` keeps the source
tensor alive with its derived value: its address cannot then be reused by another tensor, so a
hit is never stale. Meant for small sources (weight scales); weights themselves are read by
`triton_fp8.ops`' finite-code check, which keeps no reference.
"""

from __future__ import annotations

import collections
from typing import Callable, Optional

import torch


def holds_values(t) -> bool:
    """A plain tensor or parameter outside a trace (fake and functional tensors hold no values)."""
    return type(t) in (torch.Tensor, torch.nn.Parameter) and not torch.compiler.is_compiling()


def version_or_none(t: torch.Tensor) -> Optional[int]:
    """The tensor's version counter; None for inference tensors, which keep none."""
    try:
        return t._version
    except RuntimeError:
        return None


def tensor_key(t: torch.Tensor) -> tuple:
    return (t.data_ptr(), tuple(t.shape), t.stride(), t.dtype, t.device, version_or_none(t))


class DerivedCache:
    """`derive(t)` computed once per tensor, for the `size` tensors used last. Tensors that hold no
    values (in a trace) or keep no version counter (inference tensors, whose in-place updates
    would go unseen) are derived on every call."""

    def __init__(self, derive: Callable[[torch.Tensor], torch.Tensor], size: int) -> None:
        self._derive = derive
        self._size = size
        self._seen: collections.OrderedDict = collections.OrderedDict()

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        if not holds_values(t) or version_or_none(t) is None:
            return self._derive(t)
        key = tensor_key(t)
        if key in self._seen:
            self._seen.move_to_end(key)
            return self._seen[key][1]
        value = self._derive(t)
        self._seen[key] = (t, value)
        if len(self._seen) > self._size:
            self._seen.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._seen)
