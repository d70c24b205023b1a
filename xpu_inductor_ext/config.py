"""Backend options: defaults, ``XPU_QUANT_*`` environment variables, ``options={...}``.

Precedence: ``options`` given to ``torch.compile`` > environment > defaults. Every field is listed
in :data:`FIELDS` with its meaning; the README's option table is generated from the same text.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass

ENV_PREFIX = "XPU_QUANT_"


@dataclass(frozen=True)
class Config:
    """Everything that shapes a compile with ``backend="xpu_quant"``."""

    fuse_fp8_linear: bool = True
    """Rewrite FP8 linears (per-tensor / per-token / per-channel scales, W8A8 and weight-only)."""
    fuse_fp8_block_linear: bool = True
    """Rewrite block-scaled FP8 linears (1xG activation groups, block weight scales)."""
    force_kernels: tuple[str, ...] = ()
    """Kernel names tried first for every fused node they can implement (fallback logged)."""
    disable_kernels: tuple[str, ...] = ()
    """Kernel names never chosen (the decomposition cannot be disabled)."""
    graph_launch: bool = True
    """Let Inductor launch Triton decode kernels whose plan the graph fixes (less host time per step
    without CUDA graphs); off: every Triton kernel runs through its op at run time, which keeps
    tensor descriptors and PDL and reads the weight's codes (replays under one's own CUDA graphs on
    an H200: block W8A8 4-8% faster, per-channel bf16 weight-only at M = 4/16 5-15% faster)."""
    cpp_wrapper: bool = True
    """Compile the host code of CUDA inference graphs to C++ (Inductor's cpp_wrapper; not under
    mode="reduce-overhead", not for CPU graphs): a decode step without CUDA graphs spends much less
    time launching kernels (H200, hidden-4096 decoder at batch 1: 0.96 against 1.24 ms), and each graph takes
    about twice as long to compile (30-50 s). A C++ build that fails falls back to Python host code."""
    dump_dir: str | None = None
    """Folder for per-graph dumps and report.json; setting it disables Inductor's caches."""

    @classmethod
    def field_names(cls) -> list[str]:
        """Names of all options."""
        return [f.name for f in dataclasses.fields(cls)]

    def to_json(self) -> str:
        """Canonical JSON (used in the cache key and the report)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


FIELDS = {f.name: f for f in dataclasses.fields(Config)}


def _parse(name: str, value):
    kind = FIELDS[name].type
    if kind == "bool":
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered not in ("1", "0", "true", "false", "on", "off", "yes", "no"):
                raise ValueError(f"xpu_quant option '{name}': expected a boolean, got {value!r}")
            return lowered in ("1", "true", "on", "yes")
        return bool(value)
    if kind == "tuple[str, ...]":
        if isinstance(value, str):
            value = [v for v in value.replace(" ", "").split(",") if v]
        return tuple(value)
    return None if value in (None, "") else str(value)


def _check_kernel_names(config: Config) -> None:
    from .kernels import all_candidate_names
    from .kernels.registry import LAST_RESORT

    known = all_candidate_names()
    for name in config.force_kernels + config.disable_kernels:
        if name not in known:
            raise ValueError(f"xpu_quant: unknown kernel '{name}'; known kernels: {', '.join(known)}")
    if LAST_RESORT in config.disable_kernels:
        raise ValueError(f"xpu_quant: '{LAST_RESORT}' is the last resort and cannot be disabled")


def load_config(options: dict | None = None, environ: dict | None = None) -> Config:
    """Build the config from ``options`` over ``XPU_QUANT_*`` environment variables over defaults."""
    environ = os.environ if environ is None else environ
    values = {}
    for name in FIELDS:
        env_name = ENV_PREFIX + name.upper()
        if env_name in environ:
            values[name] = _parse(name, environ[env_name])
    for name, value in (options or {}).items():
        if name not in FIELDS:
            raise ValueError(f"xpu_quant: unknown option '{name}'; options: {', '.join(FIELDS)}")
        values[name] = _parse(name, value)
    config = Config(**values)
    _check_kernel_names(config)
    return config
