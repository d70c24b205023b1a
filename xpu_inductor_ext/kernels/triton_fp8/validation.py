"""Input rules of the Triton FP8 ops: the fused ops' rules (one place: ``ops.fp8_linear``) plus the
kernels' own, and the weight-scale layout code the weight-only kernel branches on.

Only shapes, dtypes and devices are read, so the checks also run on fake tensors.
"""

from ...ops.checks import fail
from ...ops.fp8_linear import validate_block_scaled_mm, validate_weight_only_mm

WEIGHT_ONLY_OP = "xpu_quant::triton_fp8_weight_only_mm"
BLOCK_SCALED_OP = "xpu_quant::triton_fp8_block_scaled_mm"

MIN_GROUP_K_MULTIPLE = 16
"""A K-group is walked in tiles of at least this many elements (the smallest ``tl.dot`` K)."""

# Weight-scale layouts of the weight-only op (also the kernel's SCALE_MODE values).
SCALE_PER_TENSOR = 0
SCALE_PER_CHANNEL = 1
SCALE_BLOCK = 2


def _check_k_group(op: str, name: str, size: int) -> None:
    if size % MIN_GROUP_K_MULTIPLE:
        fail(op, name, f"must be a multiple of {MIN_GROUP_K_MULTIPLE} (the smallest tl.dot K)", size)


def check_weight_only(x, w, w_scale, bias, block_n: int, block_k: int) -> int:
    """Validate ``triton_fp8_weight_only_mm`` inputs; return the scale layout (SCALE_* value)."""
    validate_weight_only_mm(x, w, w_scale, bias, block_n, block_k, op=WEIGHT_ONLY_OP)
    if block_n == 0 and block_k == 0:
        return SCALE_PER_TENSOR if w_scale.numel() == 1 else SCALE_PER_CHANNEL
    _check_k_group(WEIGHT_ONLY_OP, "block_k", block_k)
    return SCALE_BLOCK


def check_block_scaled(a, b, scale_a, scale_b, bias, out_dtype, group_n: int, group_k: int) -> None:
    """Validate ``triton_fp8_block_scaled_mm`` inputs (1 x group_k activation groups, group_n x group_k blocks)."""
    validate_block_scaled_mm(a, b, scale_a, scale_b, bias, out_dtype, group_n, group_k, op=BLOCK_SCALED_OP)
    _check_k_group(BLOCK_SCALED_OP, "group_k", group_k)
