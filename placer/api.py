"""The library entry points: load, score, check and solve.

Imports the model, io, kernel, checker and the solver registry; never the CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from placer.check import Violation, check_compiled
from placer.errors import PlacementError
from placer.io import parse_text, placement_from_data, read_text
from placer.kernel.compiled import compile_placement
from placer.kernel.score import Score, score_compiled
from placer.model import Instance, Placement


def load_placement(path: str | Path, instance: Instance | None = None) -> Placement:
    """Read a placement file (SPEC 2). With `instance`, unknown job names, unknown GPU ids,
    wrong lengths and unknown offers or blocks are refused with their location.

    Raises :class:`~placer.errors.PlacementError`.
    """
    placement = placement_from_data(parse_text(read_text(path, PlacementError), PlacementError))
    if instance is not None:
        cp = compile_placement(instance, placement)
        if cp.problems:
            raise PlacementError([(p.loc, p.what) for p in cp.problems])
    return placement


def score(instance: Instance, placement: Placement) -> Score:
    """Score a placement with the kernel (SPEC 4); ``.objective`` and ``.to_dict()``.

    Infeasible placements are scored too; a placement that cannot be scored (unknown GPU
    ids, wrong lengths, unknown jobs or blocks) raises :class:`PlacementError`.

    Examples
    --------
    >>> s = score(inst, placement)  # doctest: +SKIP
    >>> round(s.objective, 3)  # doctest: +SKIP
    299.299
    """
    cp = compile_placement(instance, placement)
    if cp.problems:
        raise PlacementError([(p.loc, p.what) for p in cp.problems])
    return score_compiled(instance, cp.job_gpus, cp.offer_blocks)


def check(instance: Instance, placement: Placement) -> list[Violation]:
    """Every violation of SPEC 3 as data (empty list = feasible)."""
    return check_compiled(instance, compile_placement(instance, placement))


def solve(
    instance: Instance,
    solver: str = "auto",
    time_limit: float | None = 60.0,
    seed: int = 0,
    threads: int = 1,
    **options: Any,
):
    """Place jobs and leases to maximise the kernel's score (SPEC 2.2 contract).

    Returns a :class:`placer.solvers.base.Result` with ``status``, ``placement``,
    ``objective``, ``bound``, ``gap``, ``seconds`` and ``score``.
    """
    from placer.solvers import get_solver

    return get_solver(solver).solve(
        instance, time_limit=time_limit, seed=seed, threads=threads, **options
    )
