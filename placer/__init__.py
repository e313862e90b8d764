"""placer: place AI jobs on multi-campus GPU clusters and decide which blocks to lease.

Public API: :func:`load_instance`, :func:`load_placement`, :func:`score`, :func:`check`,
:func:`solve`, their results (:class:`Result`, :class:`Status`, :class:`Score`,
:class:`Violation`), the model classes and the errors.
"""

from placer.api import check, load_instance, load_placement, score, solve
from placer.check import Violation
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

__version__ = "0.1.0"

__all__ = [
    "ArgumentTypeError",
    "Instance",
    "InstanceError",
    "Placement",
    "PlacementError",
    "PlacerError",
    "Result",
    "Score",
    "SolverError",
    "Status",
    "UsageError",
    "Violation",
    "__version__",
    "check",
    "load_instance",
    "load_placement",
    "score",
    "solve",
]
