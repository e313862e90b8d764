"""The greedy backend: instant answers, and the fallback of the exact backends.

Algorithm overview
1. Run the greedy policy of :mod:`placer.solvers.construct` twice: jobs first then offers
   on the whole blocks left, and offers first then jobs.
2. Keep the better by the kernel's objective (ties: jobs first).
3. Give every job left with 0 units a reason.
No bound is claimed (``bound`` is null).
"""

from __future__ import annotations

import time
from typing import Any

from placer.solvers.base import NO_SOLUTION, Result, Solver, finalize, no_placement
from placer.solvers.construct import greedy_policy


def best_greedy(inst, deadline: float | None = None):
    """The better of the two policies; a state that keeps every running, non-preemptible
    job placed beats one that does not. Past `deadline`, the second policy is skipped."""
    import time

    a = greedy_policy(inst, leases_first=False, deadline=deadline)
    if not inst.offers or (deadline is not None and time.perf_counter() > deadline):
        return a
    b = greedy_policy(inst, leases_first=True, deadline=deadline)

    def key(st):
        return (not st.unplaced_musts(), st.objective)

    return b if key(b) > key(a) else a


class GreedySolver(Solver):
    name = "greedy"
    exact = False
    description = "kernel-scored greedy, jobs-first and offers-first, better of the two"

    def solve(
        self, inst, time_limit: float | None = 60.0, seed: int = 0, threads: int = 1, **options: Any
    ) -> Result:
        started = time.perf_counter()
        deadline = None if time_limit is None else started + 0.9 * time_limit
        st = best_greedy(inst, deadline)
        if st.unplaced_musts():
            return no_placement(
                inst,
                self.name,
                NO_SOLUTION,
                "the greedy could not keep the running, non-preemptible jobs "
                f"{st.unplaced_musts()} placed (an exact backend can prove "
                "whether any placement can)",
                started,
            )
        reasons = {}
        for j, job in enumerate(inst.jobs):
            if len(st.job_gpus[j]) == 0:
                reasons[job.name] = st.reason(j)
        return finalize(inst, self.name, st.job_gpus, st.offer_blocks, reasons, None, started)
