"""Kernel-side ops that compiled graphs call at run time, registered straight with the dispatcher.

Our passes insert these ops after AOT, so Inductor calls each one as an opaque op on every step
of a compiled model (except the Triton decode launches that `triton_fp8.graph_launch` fixes in the
graph, which Inductor makes itself). `torch.library.custom_op` (and `triton_op`, built on it) wraps every call in
its autograd and checking layers. A call of a trivial op costs 10.9-20.4 µs that way against
7.1-7.9 µs here on the H200 host with torch 2.11, and 7.5-13.4 against 4.5-4.7 on the dev CPU
with torch 2.13 (`benchmarks/bench_op_dispatch.py`; benchmarks/RESULTS.md). `define_op`
registers one kernel for every backend (`CompositeExplicitAutograd`) plus a fake. The graphs
are inference graphs, so no autograd formula is needed.
"""

from __future__ import annotations

from typing import Callable

import torch

_LIBRARIES: list = []  # keeps the registrations alive


def define_op(qualname: str, impl: Callable, fake: Callable):
    """Define ``namespace::name`` with the schema of ``impl``'s annotations; returns its overload
    (``torch.ops.namespace.name.default``)."""
    namespace, name = qualname.split("::")
    lib = torch.library.Library(namespace, "FRAGMENT")
    lib.define(name + torch.library.infer_schema(impl, mutates_args=()))
    lib.impl(name, impl, "CompositeExplicitAutograd")
    torch.library.register_fake(qualname, fake, lib=lib)
    _LIBRARIES.append(lib)
    return getattr(getattr(torch.ops, namespace), name).default
