"""Solver backends behind one registry: look one up by name, list them with availability.

Each backend module is the only place its solver library is imported.
"""

from __future__ import annotations

import importlib

from placer.errors import SolverError
from placer.solvers.base import Result, Solver

_REGISTRY: dict[str, str] = {
    "greedy": "placer.solvers.greedy:GreedySolver",
    "cpsat": "placer.solvers.cpsat:CpSatSolver",
    "mip": "placer.solvers.mip:MipSolver",
    # peer baselines (issue 5), re-implemented from their documented algorithms
    "firstfit": "placer.solvers.baselines.firstfit:FirstFit",
    "kueue-bestfit": "placer.solvers.baselines.kueue:KueueBestFit",
    "kueue-leastfree": "placer.solvers.baselines.kueue:KueueLeastFreeCapacity",
    "kueue-balanced": "placer.solvers.baselines.kueue:KueueBalanced",
    "volcano": "placer.solvers.baselines.volcano:VolcanoNetworkTopology",
    "slurm-tree": "placer.solvers.baselines.slurm:SlurmTree",
    "slurm-block": "placer.solvers.baselines.slurm:SlurmBlock",
    "hived": "placer.solvers.baselines.hived:HiveD",
}


def register(name: str, target: str) -> None:
    """Register a backend class ``module:Class`` under `name` (refuses duplicates)."""
    if name in _REGISTRY and _REGISTRY[name] != target:
        raise SolverError(f"solver {name!r} is already registered")
    _REGISTRY[name] = target


def solver_class(name: str) -> type[Solver]:
    if name not in _REGISTRY:
        raise SolverError(f"unknown solver {name!r}; valid: {', '.join(sorted(_REGISTRY))}")
    mod, cls = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(mod), cls)


def get_solver(name: str = "auto") -> Solver:
    """An instance of the backend `name` ('auto' = cpsat)."""
    if name == "auto":
        name = "cpsat"
    cls = solver_class(name)
    if not cls.available():
        raise SolverError(f"solver {name!r} is not available here (its library is missing)")
    return cls()


def list_solvers() -> list[tuple[str, bool, str]]:
    """(name, available, description) of every registered backend."""
    out = []
    for name in sorted(_REGISTRY):
        try:
            cls = solver_class(name)
            out.append((name, cls.available(), cls.description))
        except (ImportError, AttributeError) as e:  # pragma: no cover
            out.append((name, False, f"not importable: {e}"))
    return out


def options(name: str) -> list[tuple[str, str, str]]:
    """(option, default, description) of backend `name`'s validated options
    (``placer.solve(inst, name, **options)``, ``--option KEY=VALUE``)."""
    out = []
    for key, field in solver_class(name).Options.model_fields.items():
        if key == "progress":  # a library callback (the CLI's live view), not a user option
            continue
        out.append((key, repr(field.default), field.description or ""))
    return out


def names(exact: bool | None = None, peer: bool | None = None) -> list[str]:
    """Registered backend names, optionally only the exact ones (proven bounds) or only the
    peer baselines; tests and benchmarks loop over these instead of hard-coded lists."""
    out = []
    for name in _REGISTRY:
        cls = solver_class(name)
        if exact is not None and cls.exact != exact:
            continue
        if peer is not None and cls.peer != peer:
            continue
        out.append(name)
    return out


__all__ = [
    "Result",
    "Solver",
    "get_solver",
    "list_solvers",
    "names",
    "options",
    "register",
    "solver_class",
]
