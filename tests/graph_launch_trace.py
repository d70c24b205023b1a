"""Traces fixed launches (kernels/triton_fp8/graph_launch.py) on fake H200 tensors with the real JIT
kernels and prints what the graphs hold, as JSON; run by tests/test_graph_launch.py in a process
without TRITON_INTERPRET (under the interpreter `wrap_triton` runs kernels rather than tracing them)."""

import json
from unittest import mock

import torch
from torch._higher_order_ops.triton_kernel_wrap import triton_kernel_wrapper_mutation
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx.experimental.proxy_tensor import make_fx

from patterns.graph_edit import replace_with_function
from xpu_inductor_ext.kernels import platform
from xpu_inductor_ext.kernels.triton_fp8 import graph_launch, ops, register_triton_ops
from xpu_inductor_ext.passes.manager import _kept


def _args(m, n, k, dtype):
    return (torch.empty(m, k, dtype=dtype, device="cuda"), torch.empty(n, k, dtype=torch.float8_e4m3fn, device="cuda"),
            torch.empty(n, 1, dtype=torch.float32, device="cuda"))


def _launches(gm):
    return [n for n in gm.graph.nodes if n.target is triton_kernel_wrapper_mutation]


def _fixed(x, w, s, bias=None, block_n=0, block_k=0):
    launch, why = graph_launch.fixed_weight_only_launch(x, w, s, bias, block_n, block_k)
    assert launch is not None, why
    return graph_launch.weight_only_in_graph(launch, x, w, s, bias, block_n, block_k)


def _traced(m, n, k, dtype):
    gm = make_fx(lambda x, w, s: _fixed(x, w, s))(*_args(m, n, k, dtype))
    gm.graph.eliminate_dead_code(is_impure_node=_kept)
    launches = _launches(gm)
    return {"kernels": len(launches), "grid": [list(n.kwargs["grid"][0]) for n in launches],
            "last_fills_output": launches[-1].kwargs["kwargs"]["out_ptr"] is gm.graph.output_node().args[0]}


def _replaced(mutating):
    op = torch.ops.xpu_quant.triton_fp8_weight_only_mm.default
    gm = make_fx(lambda x, w, s: op(x, w, s, None, 0, 0))(*_args(1, 4096, 4096, torch.bfloat16))
    node = next(n for n in gm.graph.nodes if n.target is op)
    replace_with_function(node, _fixed, [*node.args], mutating=mutating)
    return len(_launches(gm))


def main():
    register_triton_ops()
    with mock.patch.object(platform, "cuda_capability", lambda device: (9, 0)), \
            mock.patch.object(ops, "_num_sms", lambda device: 132), FakeTensorMode(allow_non_fake_inputs=True):
        found = {"gemv": _traced(1, 8192, 4096, torch.bfloat16), "split": _traced(4, 8192, 8192, torch.float16),
                 "replaced": {"mutating": _replaced(True), "functional": _replaced(False)}}
    print(json.dumps(found))


if __name__ == "__main__":
    main()
