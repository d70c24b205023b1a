"""xpu_inductor_ext: a torch.compile backend (``backend="xpu_quant"``) for quantized LLM inference.

Importing the package registers the fused ops (``torch.ops.xpu_quant.*``) and the kernel registry.
"""

from . import kernels, ops  # noqa: F401  (registration)
from .backend import make_backend, xpu_quant  # noqa: F401
from .config import Config, load_config  # noqa: F401
from .ops import OpInputError  # noqa: F401


def reports() -> list[dict]:
    """Reports of the graphs compiled in this process (newest last)."""
    from .passes import RECENT_REPORTS

    return list(RECENT_REPORTS)


__version__ = "0.1.0"
