"""Seeded instance generators: named families of realistic instances for tests, benchmarks
and docs.

Every family returns a raw instance dict (SPEC 1) that
:func:`placer.validate.instance_from_dict` accepts with no error and no warning. The same
family, seed and parameters always give the identical dict (numpy's ``Generator``, no
global state, no clock); topologies are written compactly with ``count`` / ``shape``.

The package, by concern:

- :mod:`.catalogue`: GPU, fabric, WAN and model constants, each with its source;
- :mod:`.traces`: the tables derived from public cluster traces (``placer/data``);
- :mod:`.topology`: cluster shapes (sites, halls, WAN links, power caps);
- :mod:`.jobs`: job mixes drawn from the traces, running jobs, offers;
- :mod:`.families`: the named families, :func:`generate` and :func:`to_yaml`;
- :mod:`.events`: seeded event traces for ``placer replay`` (``generate_trace``).

How a GPU count becomes tp / pp / dp, a model shape, message sizes and a compute time is
written out in ``docs/generators.md``. Imports numpy, yaml and the standard library only:
never the model, the kernel or a solver (its output is plain data).

Examples
--------
>>> from placer.generators import generate, to_yaml
>>> d = generate("superpod", seed=1, n_jobs=6)
>>> d["topology"]["levels"]
['site', 'su', 'rack', 'node']
>>> d == generate("superpod", seed=1, n_jobs=6)
True
>>> text = to_yaml(d)
"""

from placer.generators.catalogue import (
    DCI_EQUIPMENT_US,
    FIBRE_US_PER_KM,
    GPU_TYPES,
    NODE_FAILURES_PER_DAY,
    TRAINING_MODELS,
    WAN_LADDER_GBPS,
)
from placer.generators.families import (
    FAMILIES,
    FRONTIER_MODELS,
    fragmented,
    frontier,
    generate,
    hetero,
    multicampus,
    nvl72,
    params,
    scale,
    superpod,
    to_yaml,
)
from placer.generators.traces import (
    cluster_summaries,
    duration_quantiles,
    size_class,
    trace_sizes,
    traces,
)

__all__ = [
    "DCI_EQUIPMENT_US",
    "FIBRE_US_PER_KM",
    "TRAINING_MODELS",
    "WAN_LADDER_GBPS",
    "FAMILIES",
    "FRONTIER_MODELS",
    "GPU_TYPES",
    "NODE_FAILURES_PER_DAY",
    "cluster_summaries",
    "duration_quantiles",
    "fragmented",
    "frontier",
    "generate",
    "hetero",
    "multicampus",
    "nvl72",
    "params",
    "scale",
    "size_class",
    "superpod",
    "to_yaml",
    "trace_sizes",
    "traces",
]
