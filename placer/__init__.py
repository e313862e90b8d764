"""placer: place AI jobs on multi-campus GPU clusters and decide which blocks to lease.

Public API: :func:`load_instance`, :func:`load_placement`, :func:`score`, :func:`check`,
:func:`solve`, :func:`decide` (keep or lease), :class:`Cluster` (a live cluster for
schedulers), their results (:class:`Result`,
:class:`Status`, :class:`Score`, :class:`Violation`, :class:`DecideResult`), the model classes
and the errors.
"""

from placer.api import check, load_instance, load_placement, score, solve
from placer.check import Violation
from placer.cluster import Action, Change, Cluster, Decision
from placer.decision import DecideResult, Sweep, decide
from placer.errors import (
    ArgumentTypeError,
    InstanceError,
    PlacementError,
    PlacerError,
    SolverError,
    UsageError,
)
from placer.kernel.score import Score
from placer.model import Instance, Placement, Status
from placer.solvers.base import Result

# The one source of the version (pyproject.toml reads it; CHANGELOG.md says what each holds)
__version__ = "0.5.0"

__all__ = [
    "Action",
    "ArgumentTypeError",
    "Change",
    "Cluster",
    "DecideResult",
    "Decision",
    "Instance",
    "InstanceError",
    "Placement",
    "PlacementError",
    "PlacerError",
    "Result",
    "Score",
    "SolverError",
    "Status",
    "Sweep",
    "UsageError",
    "Violation",
    "__version__",
    "check",
    "decide",
    "load_instance",
    "load_placement",
    "score",
    "solve",
]
