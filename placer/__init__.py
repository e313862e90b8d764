"""placer: place AI jobs on multi-campus GPU clusters and decide which blocks to lease.

Public API: :func:`load_instance`, :func:`load_placement`, :func:`score`, :func:`check`,
:func:`solve`, the model classes and the errors.
"""

from placer.api import check, load_placement, score, solve
from placer.errors import InstanceError, PlacementError, PlacerError, SolverError
from placer.model import Instance, Placement
from placer.validate import load_instance

__version__ = "0.1.0"

__all__ = [
    "Instance",
    "InstanceError",
    "Placement",
    "PlacementError",
    "PlacerError",
    "SolverError",
    "__version__",
    "check",
    "load_instance",
    "load_placement",
    "score",
    "solve",
]
