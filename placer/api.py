"""The library entry points: load, score, check and solve.

Every entry point checks its arguments first and names the wrong one
(:class:`~placer.errors.ArgumentTypeError`, :class:`~placer.errors.UsageError`), so misuse
never surfaces as an AttributeError from deep inside.

Imports the model, io, kernel, checker and the solver registry; never the CLI.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from placer.check import Violation, check_compiled
from placer.errors import ArgumentTypeError, PlacementError, PlacementWarning
from placer.io import parse_text, placement_from_data, read_text, unknown_keys
from placer.kernel.compiled import compile_placement
from placer.kernel.score import Score, score_compiled
from placer.model import Instance, Placement
from placer.solvers import get_solver, solver_class
from placer.solvers.base import Result, validate_call
from placer.validate import instance_from_dict
from placer.validate import load_instance as _load_instance

__all__ = ["check", "load_instance", "load_placement", "score", "solve"]


def load_instance(path: str | Path | dict) -> Instance:
    """Read, validate and expand an instance file (YAML or JSON), or an already-parsed dict.

    Returns the :class:`Instance` (warnings in ``instance.warnings``). Raises
    :class:`~placer.errors.InstanceError` naming every problem's place.

    Examples
    --------
    >>> inst = load_instance("instances/tiny.yaml")  # doctest: +SKIP
    >>> inst.index.n_gpus  # doctest: +SKIP
    48
    """
    if isinstance(path, dict):
        return instance_from_dict(path)
    if not isinstance(path, str | Path) or isinstance(path, bool):
        raise ArgumentTypeError(f"path: expected a file path or a dict, got {type(path).__name__}")
    return _load_instance(path)


def _instance_arg(instance: Any) -> Instance:
    if isinstance(instance, Instance):
        return instance
    hint = (
        "; load it first with placer.load_instance(path)"
        if isinstance(instance, str | Path)
        else ""
    )
    raise ArgumentTypeError(
        f"instance: expected a placer.Instance, got {type(instance).__name__}{hint}"
    )


def _placement_arg(placement: Any) -> Placement:
    """A Placement, or a SPEC 2 dict (validated: located PlacementError)."""
    if isinstance(placement, Placement):
        return placement
    if isinstance(placement, dict):
        return placement_from_data(placement)
    hint = (
        "; load it first with placer.load_placement(path, instance)"
        if isinstance(placement, str | Path)
        else ""
    )
    raise ArgumentTypeError(
        f"placement: expected a placer.Placement or a SPEC 2 dict, "
        f"got {type(placement).__name__}{hint}"
    )


def load_placement(path: str | Path, instance: Instance | None = None) -> Placement:
    """Read a placement file (SPEC 2). With `instance`, unknown job names, unknown GPU ids,
    wrong lengths and unknown offers or blocks are refused with their location.

    Raises :class:`~placer.errors.PlacementError`; arguments of the wrong type (the two
    swapped, an instance given as a path) raise :class:`~placer.errors.ArgumentTypeError`.
    """
    if isinstance(path, Instance):
        raise ArgumentTypeError(
            "path: expected a file path, got an Instance; the order is "
            "placer.load_placement(path, instance)"
        )
    if not isinstance(path, str | Path) or isinstance(path, bool):
        raise ArgumentTypeError(f"path: expected a file path, got {type(path).__name__}")
    if instance is not None:
        instance = _instance_arg(instance)
    placement = placement_from_data(parse_text(read_text(path, PlacementError), PlacementError))
    if instance is not None:
        cp = compile_placement(instance, placement)
        if cp.problems:
            raise PlacementError([(p.loc, p.what) for p in cp.problems])
    return placement


def instance_name_warning(instance: Instance, placement: Placement) -> str | None:
    """The warning for a placement whose ``instance`` (SPEC 2) names another instance than
    `instance`'s ``name``, naming both; None when they agree or either has none."""
    theirs, ours = placement.instance, instance.name
    if not theirs or not ours or theirs == ours:
        return None
    return (
        f"instance: the placement names instance {theirs!r}, not this instance {ours!r} "
        "(a placement of another instance?)"
    )


def placement_warnings(instance: Instance, placement: Placement) -> list[str]:
    """What :func:`check` and :func:`score` warn about `placement` over `instance`
    (:class:`~placer.errors.PlacementWarning`), as text and without warning: for a caller
    that reports them itself (the service's ``warnings``). Empty when there is nothing.

    Two kinds: a placement of another instance (:func:`instance_name_warning`), and keys that
    SPEC 2 does not define, each named with its place (``jobs[0].colour: unknown key
    ignored``; SPEC 6 accepts unknown keys with a warning that names them). The score
    breakdown under ``score`` is informative and not looked into."""
    msg = instance_name_warning(instance, placement)
    extra = [w for w in unknown_keys(placement) if w.split(":", 1)[0] not in _OWN_KEYS]
    return ([msg] if msg else []) + extra


# top-level keys that placer writes beside SPEC 2's in its own answers (the service's POST
# /solve adds `warnings`): a placement posted back as it came is not warned about
_OWN_KEYS = frozenset({"warnings"})


def warn_placement(instance: Instance, placement: Placement, stacklevel: int = 2) -> None:
    """Raise :class:`~placer.errors.PlacementWarning` for what :func:`placement_warnings`
    finds (a placement of another instance, unknown keys), pointing `stacklevel` frames up
    from the caller of this function (2: its caller's caller, as :func:`score` and
    :func:`check` use it)."""
    for msg in placement_warnings(instance, placement):
        warnings.warn(msg, PlacementWarning, stacklevel=stacklevel + 1)


def score(instance: Instance, placement: Placement) -> Score:
    """Score a placement with the kernel (SPEC 4); ``.objective`` and ``.to_dict()``.

    Infeasible placements are scored too; a placement that cannot be scored (unknown GPU
    ids, wrong lengths, unknown jobs or blocks) raises :class:`PlacementError`. A placement
    whose ``instance`` names another instance is scored, with a
    :class:`~placer.errors.PlacementWarning` naming both.

    Examples
    --------
    >>> s = score(inst, placement)  # doctest: +SKIP
    >>> round(s.objective, 3)  # doctest: +SKIP
    299.299
    """
    instance, placement = _instance_arg(instance), _placement_arg(placement)
    s = score_quietly(instance, placement)
    warn_placement(instance, placement)
    return s


def check(instance: Instance, placement: Placement) -> list[Violation]:
    """Every violation of SPEC 3 as data (empty list = feasible). A placement whose
    ``instance`` names another instance is checked, with a
    :class:`~placer.errors.PlacementWarning` naming both (not a violation)."""
    instance, placement = _instance_arg(instance), _placement_arg(placement)
    warn_placement(instance, placement)
    return check_quietly(instance, placement)


def score_quietly(instance: Instance, placement: Placement) -> Score:
    """:func:`score` of a loaded instance and a :class:`Placement`, without its
    :class:`~placer.errors.PlacementWarning` (see :func:`placement_warnings`)."""
    cp = compile_placement(instance, placement)
    if cp.problems:
        raise PlacementError([(p.loc, p.what) for p in cp.problems])
    return score_compiled(instance, cp.job_gpus, cp.offer_blocks, cp.job_plans)


def check_quietly(instance: Instance, placement: Placement) -> list[Violation]:
    """:func:`check` of a loaded instance and a :class:`Placement`, without its
    :class:`~placer.errors.PlacementWarning` (see :func:`placement_warnings`)."""
    return check_compiled(instance, compile_placement(instance, placement))


def solve(
    instance: Instance,
    solver: str = "auto",
    time_limit: float | None = 60.0,
    seed: int = 0,
    threads: int = 1,
    **options: Any,
) -> Result:
    """Place jobs and leases to maximise the kernel's score (SPEC 2.2 contract).

    Parameters
    ----------
    instance : a loaded :class:`Instance` (``placer.load_instance``).
    solver : a backend name (``placer solvers``); ``auto`` = ``cpsat``.
    time_limit : seconds, finite and > 0, or None for no limit.
    seed, threads : same seed + one thread (+ no wall-clock limit) = the same output.
    **options : the backend's options (``placer.solvers.solver_class(name).Options``),
        e.g. ``exact_small=False``, ``work_limit=5`` (cpsat), ``mip_solver="cbc"`` (mip);
        an unknown or invalid option raises :class:`~placer.errors.UsageError`.

    Returns a :class:`Result` with ``status`` (:class:`Status`), ``placement``, ``objective``,
    ``bound``, ``gap``, ``seconds``, ``score`` and, without a placement, ``reason``.
    """
    instance = _instance_arg(instance)
    if not isinstance(solver, str):
        raise ArgumentTypeError(f"solver: expected a backend name, got {type(solver).__name__}")
    cls = solver_class("cpsat" if solver == "auto" else solver)
    time_limit, seed, threads, options = validate_call(
        cls, instance, time_limit, seed, threads, options
    )
    return get_solver(solver).solve(
        instance, time_limit=time_limit, seed=seed, threads=threads, **options
    )
