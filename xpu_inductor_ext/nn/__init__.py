"""User-facing modules whose graphs the patterns are guaranteed to match."""

from .fp8_linear import Fp8Linear, calibrate_static_scales, convert_linears_to_fp8  # noqa: F401
