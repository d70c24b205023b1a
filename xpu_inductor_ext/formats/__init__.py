"""Number formats: what the quantized numbers mean, with reference (de)quantization."""

from .fp8 import (  # noqa: F401
    DEFAULT_BLOCK,
    dequantize_blocks,
    dequantize_groups,
    pow2_ceil,
    quantize_per_block,
    quantize_per_group,
    ACTIVATION_DTYPES,
    AMAX_EPS,
    FP8_DTYPES,
    FP8_MAX,
    block_count,
    dequantize,
    expand_block_scale,
    fp8_max,
    quantize,
    quantize_per_row,
    quantize_per_tensor,
    scale_from_amax,
    scale_axis,
)
