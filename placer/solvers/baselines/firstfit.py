"""First fit in topology order: the naive reference every peer should beat.

Source: no peer; it is the "classic" list-scheduling baseline the peers' documents compare
against (peers.md section 8 asks for one cheap baseline). It reuses Kueue's descent
machinery (``kueue.py``) with every sort replaced by topology order and no best-fit step,
so the only difference to the Kueue baselines is the order in which domains are tried.

Algorithm overview (one gang)
1. Capacities as Kueue's step 1 (pods per node, rounded at each slice layer's level).
2. Top domain: the first domain of the top level, in topology order, that holds the gang.
3. Every level below: the chosen domains' children in topology order, each giving all it
   can (slices above and at the outer slice level, pods in chunks of the inner slice size
   below it), until the gang is placed.

Imports numpy only (and the shared baseline frame).
"""

from __future__ import annotations

import numpy as np

from placer.solvers.baselines.common import Baseline, Gang, Topo
from placer.solvers.baselines.kueue import FIRSTFIT, kueue_place


class FirstFit(Baseline):
    name = "firstfit"
    description = "first fit in topology order at every level (naive reference)"

    def place(self, topo: Topo, gang: Gang) -> np.ndarray | None:
        return kueue_place(topo, gang, FIRSTFIT)
