"""The ``xpu_quant`` torch.compile backend.

``torch.compile(model, backend="xpu_quant", options={...})`` reaches :func:`xpu_quant` through the
``torch_dynamo_backends`` entry point; :func:`make_backend` gives the same backend for a
:class:`~xpu_inductor_ext.config.Config` built in code.
"""

from __future__ import annotations

import logging

import torch
from torch._inductor.compile_fx import compile_fx

from .config import Config, load_config
from .passes import XpuQuantPassManager
from .passes.selection import inductor_cudagraphs

log = logging.getLogger("xpu_inductor_ext")


def _needs_grad(example_inputs) -> bool:
    return torch.is_grad_enabled() and any(
        isinstance(t, torch.Tensor) and t.requires_grad for t in example_inputs)


def _host_code(config: Config, example_inputs, patches: dict) -> dict:
    """Whether Inductor writes this graph's host code in C++ (option cpp_wrapper), and why; the
    report's ``host_code`` entry."""
    if not config.cpp_wrapper:
        return {"cpp": False, "reason": "option cpp_wrapper is off"}
    if not any(isinstance(t, torch.Tensor) and t.device.type == "cuda" for t in example_inputs):
        return {"cpp": False, "reason": "not a CUDA graph (the C++ host code pays off at CUDA decode)"}
    if inductor_cudagraphs(patches):
        return {"cpp": False, "reason": "Inductor's CUDA graphs (mode=\"reduce-overhead\") replay the launches"}
    return {"cpp": True, "reason": "a CUDA inference graph (option cpp_wrapper)"}


def compile_graph(gm: torch.fx.GraphModule, example_inputs, config: Config, mode: str | None = None):
    """Compile one Dynamo graph with Inductor plus the xpu_quant passes (inference graphs only;
    C++ host code for CUDA graphs outside Inductor's CUDA graphs, as option cpp_wrapper says)."""
    patches = dict(torch._inductor.list_mode_options(mode)) if mode else {}
    if _needs_grad(example_inputs):
        log.info("xpu_quant: graph needs gradients (training): passed to Inductor unchanged; "
                 "run inference under torch.no_grad() or torch.inference_mode() to fuse")
        return compile_fx(gm, example_inputs, config_patches=patches)
    if config.dump_dir:
        patches["force_disable_caches"] = True
    host_code = _host_code(config, example_inputs, patches)
    patches["post_grad_custom_pre_pass"] = XpuQuantPassManager(config, host_code)
    if not host_code["cpp"]:  # Inductor's own cpp_wrapper setting stands
        return compile_fx(gm, example_inputs, config_patches=patches)
    patches["cpp_wrapper"] = True
    try:
        return compile_fx(gm, example_inputs, config_patches=patches)
    except Exception as exc:  # noqa: BLE001 - only a failed C++ build is retried, the rest re-raised
        if not _cpp_build_failed(exc):
            raise
        patches["post_grad_custom_pre_pass"].withdraw()  # the retry reports and dumps the graph again
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        log.warning("xpu_quant: the C++ host code did not build (%s); compiling with Python host code "
                    "(option cpp_wrapper=False skips the attempt)", first_line)
        host_code = {"cpp": False, "reason": f"the C++ host code did not build ({first_line}): Python host code"}
        patches.update(cpp_wrapper=False, post_grad_custom_pre_pass=XpuQuantPassManager(config, host_code))
        return compile_fx(gm, example_inputs, config_patches=patches)


def _cpp_build_failed(exc: Exception) -> bool:
    """Whether Inductor failed building a graph's C++ host code (a missing compiler or header);
    Inductor wraps its errors in an InductorError holding the `inner_exception`."""
    from torch._inductor import exc as inductor_errors

    kinds = tuple(getattr(inductor_errors, name) for name in ("CppCompileError", "CppWrapperCodegenError")
                  if hasattr(inductor_errors, name))
    return isinstance(getattr(exc, "inner_exception", exc), kinds)


def xpu_quant(gm: torch.fx.GraphModule, example_inputs, options: dict | None = None, mode: str | None = None):
    """The backend registered as ``"xpu_quant"``: options and ``XPU_QUANT_*`` variables configure it."""
    return compile_graph(gm, example_inputs, load_config(options), mode)


def make_backend(config: Config | None = None, **options):
    """A backend callable for ``torch.compile(model, backend=make_backend(cfg))``."""
    config = config if config is not None else load_config(options)

    def backend(gm, example_inputs):
        return compile_graph(gm, example_inputs, config)

    return backend
