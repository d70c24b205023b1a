"""The pattern library: one module per fusion family (installed as ``xpu_inductor_ext.patterns``).

Each family is an object with ``name``, ``option`` (the config flag that enables it) and
``apply(graph, report) -> int``. :data:`FAMILIES` is the order in which they run: a family whose
spellings contain another's runs first.
"""

from .fp8_block_linear import Fp8BlockLinearFusion
from .fp8_linear import Fp8LinearFusion

FAMILIES = (Fp8BlockLinearFusion(), Fp8LinearFusion())
