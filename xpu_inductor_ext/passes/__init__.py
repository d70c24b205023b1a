"""Post-grad passes: the manager, kernel selection."""

from .manager import RECENT_REPORTS, XpuQuantPassManager  # noqa: F401
