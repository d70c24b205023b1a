"""Inspection: the compile report, graph dumps, and the ``xpu-quant`` command."""

from .report import CompileReport  # noqa: F401
