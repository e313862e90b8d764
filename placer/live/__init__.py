"""The live cluster's parts behind :class:`placer.Cluster` (placer/cluster.py, a thin front).

State apart from policy, as Kueue's TAS keeps its snapshot apart from scheduling:

- :mod:`~placer.live.state`: the live state (running jobs' slots, GPUs, leases, failed
  hardware), a checkpoint and a rollback, and no policy;
- :mod:`~placer.live.results`: what operations return (Action, ActionCause, Change, Decision)
  and the one start/move/stop diff;
- :mod:`~placer.live.documents`: documents in (jobs, hardware items, placements, state
  documents) and out (job documents, the snapshot, the state document);
- :mod:`~placer.live.verify`: the check before an operation commits;
- :mod:`~placer.live.search`: candidate search over the live state, on the greedy's
  :class:`~placer.solvers.decomposition.construct.State` (shared, not inherited);
- policy: :mod:`~placer.live.admission` (submit, displacement, running jobs at
  construction), :mod:`~placer.live.repair` (failures, each tier a function),
  :mod:`~placer.live.leases` (lease repair, restore), :mod:`~placer.live.replan`
  (the replan instance, adopting a plan).

docs/scheduler.md ("Structure") describes how they fit.
"""
