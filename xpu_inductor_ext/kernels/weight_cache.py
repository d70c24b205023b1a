"""Values derived once per long-lived tensor (a weight or its scale) and reused on later calls.

A tensor is known by its storage address, shape, strides, dtype, device and version counter
(`tensor_key`), so views made anew on every call hit and an in-place update misses. `TensorLru`
holds such values for the tensors used last; with `keep_source` it also keeps each source tensor
alive, so its address cannot be reused by another tensor and a hit is never stale (meant for small
sources, weight scales). Without it (weights, too large to pin) a freed weight's address can come
back with another tensor of the same shape and version: acceptable only for advisory values.
"""

from __future__ import annotations

import collections
from typing import Any, Callable, Optional

import torch

MISSING = object()
"""What `TensorLru.get` returns for a tensor it holds no value for."""


def holds_values(t) -> bool:
    """A plain tensor or parameter outside a trace (fake and functional tensors hold no values)."""
    return type(t) in (torch.Tensor, torch.nn.Parameter) and not torch.compiler.is_compiling()


def version_or_none(t: torch.Tensor) -> Optional[int]:
    """The tensor's version counter; None for inference tensors, which keep none (asked first:
    reading theirs raises, which costs about 20 us)."""
    return None if t.is_inference() else t._version


def tensor_key(t: torch.Tensor) -> tuple:
    return (t.data_ptr(), tuple(t.shape), t.stride(), t.dtype, t.device, version_or_none(t))


class TensorLru:
    """Values per `tensor_key`, for the `size` tensors used last."""

    def __init__(self, size: int, keep_source: bool) -> None:
        self._size = size
        self._keep_source = keep_source
        self._seen: collections.OrderedDict = collections.OrderedDict()

    def get(self, t: torch.Tensor) -> Any:
        key = tensor_key(t)
        if key not in self._seen:
            return MISSING
        self._seen.move_to_end(key)
        return self._seen[key][1]

    def put(self, t: torch.Tensor, value: Any) -> None:
        self._seen[tensor_key(t)] = (t if self._keep_source else None, value)
        if len(self._seen) > self._size:
            self._seen.popitem(last=False)


class DerivedCache:
    """`derive(t)` computed once per tensor (sources kept alive: see `TensorLru`). Tensors that hold
    no values (in a trace) or keep no version counter (inference tensors, whose in-place updates
    would go unseen) are derived on every call."""

    def __init__(self, derive: Callable[[torch.Tensor], torch.Tensor], size: int) -> None:
        self._derive = derive
        self._values = TensorLru(size, keep_source=True)

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        if not holds_values(t) or version_or_none(t) is None:
            return self._derive(t)
        value = self._values.get(t)
        if value is MISSING:
            value = self._derive(t)
            self._values.put(t, value)
        return value
