"""Issue 16 part 6: no early stop with a gap while time remains, at small scale too.

The two-job instance of the issue (tests/data/early-stop.yaml) is solved to proven
optimality by both exact backends; over random small instances cpsat is never below a peer
baseline, and a result that comes back with a gap before its limit says why (`stopped`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import placer
from placer.solvers import names
from placer.solvers.decomposition.exact_small import build_columns
from placer.solvers.decomposition.pack import Packer
from placer.validate import instance_from_dict

try:
    from tests.strategies import instances
except ImportError:  # run from inside tests/
    from strategies import instances

EARLY_STOP = Path(__file__).parent / "data" / "early-stop.yaml"
LIMIT = 3.0


@pytest.mark.parametrize("backend", names(exact=True))
def test_the_issue_instance_is_solved_to_proven_optimality(backend):
    inst = placer.load_instance(EARLY_STOP)
    res = placer.solve(inst, solver=backend, time_limit=LIMIT)
    assert res.status == "optimal"
    assert res.objective == pytest.approx(625.26, abs=0.01)
    assert placer.check(inst, res.placement) == []
    # j1's TP groups of 4 span two 2-GPU nodes of a rack (`tp: site`, pp = 1)
    j1 = next(j for j in res.placement.jobs if j.name == "j1")
    assert j1.units == 2 and not j1.reason


def test_a_scope_binds_only_groups_of_two_or_more_members():
    """j1 has pp = 1 and `pp: node`: no PP chain has two members, so the scope must not
    hold its 4-GPU TP groups inside one 2-GPU node (the packer found no layout at all)."""
    inst = placer.load_instance(EARLY_STOP)
    ix = inst.index
    job = inst.jobs[0]
    g = Packer(inst, ix.available.copy()).place(job, int(ix.gpu_type[0]), 2)
    assert g is not None and len(g) == 8
    assert placer.solve(inst, solver="greedy", time_limit=LIMIT).objective > 600


def test_the_exhaustive_model_keeps_one_column_per_node_count_and_wan_links():
    """The orbit enumeration yields the columns the plain product of maps did: one per
    (node counts, WAN links), each the best map's kernel value."""
    inst = placer.load_instance(EARLY_STOP)
    cols = build_columns(inst, inst.index.available.copy())
    assert cols is not None
    keys = [(c.job, tuple(sorted(c.counts.items())), c.links) for c in cols]
    assert len(keys) == len(set(keys))
    by_job = {j: [c for c in cols if c.job == j] for j in (0, 1)}
    # j2 (4 units of 1 GPU, dp: rack) fits in each of the 3 two-node racks of s1 and the
    # 3 two-node racks of s0, in every split of its 4 GPUs over a rack's nodes
    assert {sum(c.counts.values()) for c in by_job[1]} == {4}
    best = max(by_job[0], key=lambda c: c.value)
    assert best.value == pytest.approx(538.38, abs=0.01)
    assert len(np.unique(inst.index.dom[0][best.gpus])) == 1


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(instances(plans=False))
def test_cpsat_is_never_below_a_peer_and_never_stops_early_with_an_unexplained_gap(data):
    try:
        inst = instance_from_dict(data)
    except placer.InstanceError:
        return
    res = placer.solve(inst, solver="cpsat", time_limit=LIMIT)
    if res.objective is None:
        return
    tol = 1e-6 * max(1.0, abs(res.objective))
    for peer in names(peer=True):
        other = placer.solve(inst, solver=peer, time_limit=LIMIT)
        if other.objective is not None:
            assert res.objective >= other.objective - tol, peer
    if res.status == "feasible" and (res.gap or 0) > 1e-6 and res.seconds < 0.8 * LIMIT:
        assert res.stopped, (res.gap, res.seconds)
        assert res.placement.stopped == res.stopped


LOCAL_SEARCH_MISS = Path(__file__).parent / "data" / "local-search-miss.yaml"


def test_cpsat_is_not_below_firstfit_where_spreading_over_nodes_is_faster():
    """A random instance found by the property above (derandomized since, so that CI runs the
    same examples): its node latency (5 us) exceeds its site latency (1 us), so firstfit's
    spread of j0 over three nodes beats cpsat's one node by 0.012%. The packed candidates
    never spread a job; on a site whose inner levels are slower than its outer ones
    (`construct.inverted_fabric`) the first free GPUs are a candidate too."""
    inst = placer.load_instance(LOCAL_SEARCH_MISS)
    res = placer.solve(inst, solver="cpsat", time_limit=LIMIT)
    ff = placer.solve(inst, solver="firstfit", time_limit=LIMIT)
    assert res.objective >= ff.objective - 1e-9


TP_ACROSS = Path(__file__).parent / "data" / "tp-across-sites.yaml"


def test_the_coarse_bound_counts_jobs_that_span_sites_through_tp_groups():
    """j1's TP groups may cross the WAN (scope cluster) while its DP groups stay in a site:
    the coarse model once offered it no multi-site option, and its bound (616.3) was below
    the optimum that the exhaustive model proves (1039.7)."""
    inst = placer.load_instance(TP_ACROSS)
    # the exhaustive proof takes about 2 s on a quiet core: the limit is not what is tested
    # here, so it is wide enough that a loaded machine still proves it (a solve that ends
    # proven returns at once)
    res = placer.solve(inst, solver="cpsat", time_limit=30.0)
    assert res.status == "optimal"
    assert res.objective == pytest.approx(1039.74, abs=0.01)
    coarse = placer.solve(inst, solver="cpsat", time_limit=LIMIT, exact_small=False)
    assert coarse.bound >= res.objective - 1e-6
    assert coarse.stopped  # its gap is explained


def test_undoing_a_replacement_restores_the_plan_variant_that_was_placed():
    """place_best on a job with plans may move the group to another plan; grow and the
    local search undo it when the objective fell, which must put back the variant that was
    placed (undoing only the job's own GPUs once dropped the frontier run's better layout
    on colossus-v2: 350.9 M -> 344.6 M)."""
    from placer.solvers.decomposition.construct import State
    from placer.solvers.plans import expand

    inst = placer.load_instance(Path(__file__).parent / "data/examples/case-v3-plans.instance.yaml")
    vinst, groups = expand(inst)
    st = State(vinst)
    members = groups.members[0]
    assert len(members) > 1
    first, other = members[0], members[1]
    st.place_best(first)
    placed = st.placed_variant(first)
    assert placed is not None
    gpus = st.job_gpus[placed].copy()
    before = st.objective
    snap = st.group_placement(other)
    # another plan's best candidate, whatever it scores
    st.set_job(placed, np.zeros(0, np.int64))
    cands = st.candidates(other)
    if cands:
        st.set_job(other, cands[-1])
    st.restore_group(other, snap)
    assert st.placed_variant(first) == placed
    assert np.array_equal(st.job_gpus[placed], gpus)
    assert all(len(st.job_gpus[s]) == 0 for s in members if s != placed)
    assert st.objective == pytest.approx(before)


def test_an_unproven_coarse_solve_also_packs_its_rounded_lp_plan_and_says_why_it_stopped():
    """CP-SAT's coarse solve cut by its share of the limit (here a deterministic work limit)
    returns an unproven plan. The pipeline then solves the model's LP relaxation, packs its
    rounded plan too and keeps the better placement and the lower of the two proven bounds;
    the reason no longer calls the coarse bound a proven optimum (100k GPUs at 30 s returned
    3.44 M at a 3.6% gap with 13 s left; with the LP plan, 3.56 M at 0.13%)."""
    from placer.generators import generate
    from placer.validate import instance_from_dict

    inst = instance_from_dict(generate("scale", 1, gpus=10240, n_jobs=80))
    res = placer.solve(inst, solver="cpsat", time_limit=60, exact_small=False, work_limit=0.003)
    st = res.stats
    assert st["coarse_status"] == "feasible"
    assert "lp_bound" in st and "rounded_lp_objective" in st
    assert res.objective == pytest.approx(max(st["candidates"]), abs=0.1)
    assert res.objective - 1e-6 <= res.bound <= min(st["coarse_bound"], st["lp_bound"]) + 1e-6
    assert "without proving its plan" in res.stopped
    assert "proven optimum" not in res.stopped


COLUMNS_DEADLINE = Path(__file__).parent / "data" / "columns-deadline.yaml"


def test_the_column_build_looks_at_its_deadline_inside_one_unit_count():
    """j1's 2 units have about 150,000 maps to score: the build must give up at its deadline
    (between chunks of maps), and the chunked scoring must give the columns of one call."""
    from placer.solvers.decomposition import exact_small

    inst = placer.load_instance(COLUMNS_DEADLINE)
    info: dict = {}
    assert build_columns(inst, inst.index.available.copy(), 0.0, info) is None
    assert info["why"] == "time"
    whole = build_columns(inst, inst.index.available.copy())
    assert whole is not None and len(whole) > 10_000
    old = exact_small.SCORE_CHUNK
    try:
        exact_small.SCORE_CHUNK = 10**9  # one call per scoring
        single = build_columns(inst, inst.index.available.copy())
    finally:
        exact_small.SCORE_CHUNK = old
    assert [(c.job, c.counts, c.value, c.links) for c in whole] == [
        (c.job, c.counts, c.value, c.links) for c in single
    ]
    assert all(np.array_equal(a.gpus, b.gpus) for a, b in zip(whole, single))


def test_cpsat_places_what_firstfit_places_when_the_columns_do_not_fit_the_limit():
    """cpsat and mip once spent 5.8 s of a 3 s limit on the columns and placed nothing."""
    inst = placer.load_instance(COLUMNS_DEADLINE)
    ff = placer.solve(inst, solver="firstfit", time_limit=LIMIT)
    for backend in ("cpsat", "mip"):
        res = placer.solve(inst, solver=backend, time_limit=LIMIT)
        assert res.objective >= ff.objective - 1e-6 * ff.objective, backend
        # not a timing test (the machine may be loaded): only the gross overrun it was
        assert res.seconds < 1.5 * LIMIT, backend
        # a gap returned before the limit says why (a solve that used its time, as under
        # load, has no early stop to explain: pipeline._solve, 0.1 s + 5% of the limit)
        if res.status == "feasible" and res.seconds < 0.8 * LIMIT:
            assert res.stopped, backend


def test_inference_replicas_are_packed_site_by_site_within_power():
    """The packer put all 4 replicas in the first site, past its power cap, and 4 is the
    minimum: no candidate, nothing placed (0 vu against firstfit's 2,880)."""
    inst = placer.load_instance(Path(__file__).parent / "data" / "inference-power.yaml")
    for backend in ("greedy", "cpsat"):
        res = placer.solve(inst, solver=backend, time_limit=LIMIT)
        assert res.objective == pytest.approx(2880.0), backend
        assert next(r for r in res.placement.jobs if r.name == "j2").units == 4


def test_an_exact_backend_is_floored_by_the_peers_on_a_small_instance():
    """Without the exhaustive model, the decomposition's placement is below firstfit's; the
    result is the best peer's placement under the backend's own proven bound."""
    inst = placer.load_instance(Path(__file__).parent / "data" / "peer-floor.yaml")
    ff = placer.solve(inst, solver="firstfit", time_limit=LIMIT)
    for backend in ("cpsat", "mip"):
        res = placer.solve(inst, solver=backend, time_limit=LIMIT, exact_small=False)
        assert res.stats["decomposition"] < ff.objective  # the miss is still there beneath
        assert res.stats["primal_from"].startswith("peer ")
        assert res.objective >= ff.objective - 1e-9
        assert res.bound >= res.objective and res.solver == backend
