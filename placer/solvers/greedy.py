"""The greedy backend: instant answers, and the fallback of the exact backends.

Algorithm overview
1. Run the greedy policy of :mod:`placer.solvers.decomposition.construct` twice: offers
   first, then jobs (the shorter pass, so it runs first: a short limit returns it whole);
   and jobs first, then offers on the whole blocks left.
2. Keep the better by the kernel's objective (ties: jobs first).
3. Give every job left with 0 units a reason.
No bound is claimed (``bound`` is null).
"""

from __future__ import annotations

import time
from typing import Any

from placer.solvers.base import (
    NO_SOLUTION,
    Result,
    Solver,
    finalize,
    finish_reserve,
    no_placement,
)
from placer.solvers.decomposition.construct import best_greedy


class GreedySolver(Solver):
    name = "greedy"
    exact = False
    description = "kernel-scored greedy, jobs-first and offers-first, better of the two"

    def _solve(
        self, inst, time_limit: float | None = 60.0, seed: int = 0, threads: int = 1, **options: Any
    ) -> Result:
        started = time.perf_counter()
        deadline = None
        if time_limit is not None:
            deadline = started + time_limit - finish_reserve(inst, time_limit)
        st = best_greedy(inst, deadline)
        if st.unplaced_musts():
            return no_placement(
                inst,
                self.name,
                NO_SOLUTION,
                "the greedy could not place every must (running, non-preemptible jobs "
                "and offers with force: accept): "
                f"{', '.join(st.unplaced_musts())} (an exact backend can prove whether "
                "any placement can)",
                started,
            )
        r_deadline = None
        if deadline is not None:
            # a fifth of the reserve for the reasons' searches, the rest for the reasons'
            # counts, the check and the re-score
            r_deadline = deadline + 0.2 * (started + time_limit - deadline)
        reasons = st.reasons(deadline=r_deadline)
        return finalize(inst, self.name, st.job_gpus, st.offer_blocks, reasons, None, started)
