"""The decomposition behind the exact backends (`cpsat`, `mip`): how a whole cluster is
placed with a proven bound.

Algorithm overview (one module per step)

0. Small instances (at most 64 free GPUs): :mod:`.exact_small` enumerates every placement of
   every job as a column and solves the column model exactly, with WAN sharing made exact by
   penalty cuts. When the columns would be too many, the steps below run instead.
1. Coarse model, :mod:`.coarse`: which GPU type and sites each job's units go to, how many
   identical whole blocks each offer leases, with optimistic kernel coefficients so that its
   optimum is a proven upper bound on the kernel's objective. Built in named steps
   (``_add_jobs``, ``_add_leases``, ``_add_capacity``, ...) on a solver-neutral
   :class:`~.linmodel.LinModel`, which each backend translates (``cpsat.py``, ``mip.py``).
   Jobs equal in every field but their name share one set of options, their variables the
   members' sums (``coarse.AGGREGATE``; ``coarse.expand`` shares the plan out by name).
2. Solve the coarse model with the backend (about half the time limit); past 20,000 coarse
   variables its LP relaxation gives the bound and :func:`.pipeline.round_plan` rounds it.
3. Realise the plan, :func:`.pipeline.primal_from_coarse`: lease the chosen blocks, then pack
   each job's units per site with :class:`.pack.Packer` (TP groups, PP chains, EP blocks in
   tree order); a job that does not fit as planned takes its best kernel-scored candidate
   from :class:`.construct.State`; elastic jobs grow into what is left.
4. The greedy placement (:func:`.construct.greedy_policy`) is a second opinion; the better
   one is kept.
5. Local search until the deadline, :func:`.pipeline.local_search`: each job is removed and
   put back at its best candidate when that raises the objective (``Scorer.delta``).
6. :func:`placer.solvers.base.finalize` checks the placement against every rule of SPEC 3 and
   re-scores it with the kernel before it is returned.

:class:`.pipeline.DecompositionSolver` runs the steps; the backends only say how a
:class:`~.linmodel.LinModel` is solved. Imports numpy, the kernel and the checker; never a
solver library.
"""

from placer.solvers.decomposition.pipeline import (
    CoarseSolution,
    DecompositionSolver,
    local_search,
    primal_from_coarse,
    round_plan,
)

__all__ = [
    "CoarseSolution",
    "DecompositionSolver",
    "local_search",
    "primal_from_coarse",
    "round_plan",
]
