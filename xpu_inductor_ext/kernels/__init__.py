"""Kernel implementations per platform and the registry that orders them."""

from . import catalog  # noqa: F401  (registers every candidate)
from .problem import OP_FUNCTIONS, LinearProblem, linear_problem  # noqa: F401
from .registry import Candidate, Selection, all_candidate_names, candidates, select  # noqa: F401
