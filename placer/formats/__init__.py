"""Operators' formats: import Slurm and Kubernetes/Kueue clusters, export runnable placements.

Library functions return data (an instance dict or an export dict) and warnings as
:class:`FormatWarning` (file, line, what); the CLI (`placer import`, `placer export`) renders.
"""

from placer.formats.common import FormatWarning
from placer.formats.export import export_kubernetes, export_slurm
from placer.formats.kubernetes import import_kubernetes
from placer.formats.slurm import import_slurm

__all__ = [
    "FormatWarning",
    "export_kubernetes",
    "export_slurm",
    "import_kubernetes",
    "import_slurm",
]
