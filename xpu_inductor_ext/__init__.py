"""xpu_inductor_ext: a torch.compile backend (``backend="xpu_quant"``) for quantized LLM inference.

Importing the package registers the fused ops (``torch.ops.xpu_quant.*``) and the kernel registry.
"""

from pathlib import Path as _Path

_ROOT = _Path(__file__).resolve().parent.parent
if (_ROOT / "patterns" / "__init__.py").is_file() and (_ROOT / "pyproject.toml").is_file():
    # A source checkout used without installing (PYTHONPATH=.): the pattern library lives in the
    # top-level patterns/ folder that installs map to xpu_inductor_ext.patterns; let it resolve.
    __path__.append(str(_ROOT))

from . import kernels, ops  # noqa: E402, F401  (registration)
from .backend import make_backend, xpu_quant  # noqa: E402, F401
from .config import Config, load_config  # noqa: E402, F401
from .ops import OpInputError  # noqa: E402, F401


def reports() -> list[dict]:
    """Reports of the graphs compiled in this process (newest last)."""
    from .passes import RECENT_REPORTS

    return list(RECENT_REPORTS)


__version__ = "0.1.0"


def _register_without_entry_point() -> None:
    """Source checkouts used without installing have no entry point: register the backend by hand."""
    import torch

    if "xpu_quant" not in torch._dynamo.list_backends(exclude_tags=()):
        torch._dynamo.register_backend(xpu_quant, name="xpu_quant")


_register_without_entry_point()
