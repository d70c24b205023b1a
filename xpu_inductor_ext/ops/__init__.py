"""The fused ops (namespace ``xpu_quant``): schemas, validation, fake and reference implementations.

Importing this package registers the ops with ``torch.library``.
"""

from .checks import OpInputError  # noqa: F401
from .fp8_linear import (  # noqa: F401
    BLOCK_SCALED_MM,
    SCALED_MM,
    WEIGHT_ONLY_MM,
    reference_block_scaled_mm,
    reference_scaled_mm,
    reference_weight_only_mm,
)
