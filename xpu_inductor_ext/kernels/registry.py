"""The kernel registry: per fused op, an ordered list of candidates, and the selection rule.

A candidate answers ``is_supported(device)`` (can this hardware run it at all, and fast) and
``can_implement(problem)`` (can it compute this exact problem), each as ``(ok, reason)``. The
first candidate that accepts wins; forced candidates are tried first, disabled ones are skipped.
Every refusal is kept with its reason for the report.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from .problem import LinearProblem

log = logging.getLogger(__name__)

Verdict = tuple[bool, str]

LAST_RESORT = "decomposition"
"""The candidate every op has and no config can disable."""


class Candidate:
    """One implementation of one or more fused ops on some platform."""

    name: str = ""
    ops: tuple[str, ...] = ()
    platforms: str = ""
    """Human-readable platform column for the support matrix (e.g. ``"CUDA sm89+"``)."""
    fixes_launches: bool = False
    """Whether ``lower_fixed`` can write this candidate's kernel launches into the graph."""

    def is_supported(self, device: torch.device) -> Verdict:
        """Whether this hardware runs the candidate (natively and fast)."""
        raise NotImplementedError

    def can_implement(self, problem: LinearProblem) -> Verdict:
        """Whether the candidate computes ``problem`` exactly as the op defines it."""
        raise NotImplementedError

    def lower(self, problem: LinearProblem) -> Callable:
        """A plain-PyTorch function of the op's arguments that computes it with this kernel."""
        raise NotImplementedError

    def lower_fixed(self, args: dict) -> tuple[Callable | None, str]:
        """For candidates that ``fixes_launches``: a function like ``lower``'s whose kernel launches
        are fixed at compile time, for Inductor to make from its own code, given the node's (fake)
        arguments by name; or None, and why."""
        raise NotImplementedError


_REGISTRY: dict[str, list[Candidate]] = {}


def register(candidate: Candidate) -> Candidate:
    """Append ``candidate`` to the list of each op it implements (registration order = priority)."""
    for op in candidate.ops:
        entries = _REGISTRY.setdefault(op, [])
        if all(c.name != candidate.name for c in entries):
            entries.append(candidate)
    return candidate


def candidates(op: str) -> list[Candidate]:
    """The ordered candidates of ``op``."""
    return list(_REGISTRY.get(op, ()))


def all_candidate_names() -> list[str]:
    """Every registered candidate name, for validating force/disable lists."""
    return sorted({c.name for entries in _REGISTRY.values() for c in entries})


@dataclass
class Selection:
    """The outcome of selection for one fused node."""

    chosen: Candidate
    refused: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _verdict(candidate: Candidate, device: torch.device, problem: LinearProblem) -> Verdict:
    ok, reason = candidate.is_supported(device)
    if not ok:
        return False, reason
    return candidate.can_implement(problem)


def select(problem: LinearProblem, device: torch.device, force: Sequence[str] = (),
           disable: Sequence[str] = ()) -> Selection:
    """Choose the implementation of ``problem`` on ``device``.

    Forced candidates (in the order given) are tried first; if none accepts, selection falls
    back to the normal order and says why. Disabled candidates are refused with that reason.
    A device no candidate knows gets the decomposition.
    """
    ordered = candidates(problem.op)
    forced = [c for name in force for c in ordered if c.name == name]
    refused: list[dict] = []
    notes: list[str] = []
    for candidate in forced:
        ok, reason = _verdict(candidate, device, problem)
        if ok:
            return Selection(candidate, refused, [f"forced: {candidate.name}"])
        refused.append({"kernel": candidate.name, "reason": f"forced, but {reason}"})
    if forced:
        notes.append("no forced kernel could implement this problem; fell back to the default order")
        log.warning("xpu_quant: forced kernels %s cannot implement %s: falling back",
                    [c.name for c in forced], problem.describe())
    for candidate in ordered:
        if candidate in forced:
            continue
        if candidate.name in disable and candidate.name != LAST_RESORT:
            refused.append({"kernel": candidate.name, "reason": "disabled by config"})
            continue
        ok, reason = _verdict(candidate, device, problem)
        if ok:
            return Selection(candidate, refused, notes)
        refused.append({"kernel": candidate.name, "reason": reason})
    raise RuntimeError(f"xpu_quant: no kernel for {problem.op} (registry has no '{LAST_RESORT}'): {refused}")
