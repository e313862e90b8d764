"""Peer schedulers' placement algorithms re-implemented as solver backends (issue 5).

Each module re-implements one peer's domain selection from its documented algorithm
(``shared/research/peers.md``) inside one shared operator frame (``common.py``: job order,
elastic sizing, spread, power, the two lease policies, rank layout), so that a comparison
with placer measures the peers' placement rules only. See ``docs/baselines.md``.

- ``firstfit``: first fit in topology order (reference)
- ``kueue``: Kueue TAS BestFit, LeastFreeCapacity, Balanced
- ``volcano``: Volcano network-topology-aware gradients with partitions
- ``slurm``: Slurm topology/tree and topology/block
- ``hived``: HiveD buddy cells, nested pod groups and virtual clusters for leases
"""
