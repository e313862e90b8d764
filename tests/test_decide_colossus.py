"""The README's keep-or-lease question on instances/colossus-v2.yaml (issue 16 part 6):
the decision is proven, i.e. the worth interval of leasing excludes 0, with the bounds
valid for every plan of the frontier run (`pp-across` included). The decision takes two
full-size forced solves of about a minute each (slow); the coarse model's options for the
keep side take a few seconds."""

from __future__ import annotations

from pathlib import Path

import pytest

import placer

COLOSSUS_V2 = Path(__file__).resolve().parent.parent / "instances" / "colossus-v2.yaml"


@pytest.mark.slow
def test_colossus_v2_keep_or_lease_is_proven_with_the_readme_limits():
    inst = placer.load_instance(COLOSSUS_V2)
    res = placer.decide(inst, offer="frontier-lab-campus", jobs=1)
    (o,) = res.offers
    lo, hi = o.worth_interval
    assert lo <= o.worth <= hi
    assert hi < 0 or lo > 0, (o.decision, o.worth_interval)
    for side in (o.accept, o.decline):
        assert side.objective <= side.bound + 1e-6 * abs(side.bound)


def test_colossus_v2_keep_side_gives_pp_across_no_option():
    """Declined, colossus-v2's frontier run cannot run `pp-across`: no campus holds 128,000
    GPUs, and a pipeline split between campuses keeps a piece of every unit in each (its DP
    groups stay in a campus), of one type, while the only type two campuses share is H200
    (40,960 GPUs). The coarse model gives that plan no option at all (it gave it split
    options of any type mix, worth a bound of 402.5 M, and the plan chose it)."""
    from placer.decision import _forced
    from placer.solvers.decomposition import coarse
    from placer.solvers.plans import expand

    data = placer.load_instance(COLOSSUS_V2).model_dump(mode="json", exclude_none=True)
    inst, _ = expand(placer.load_instance(_forced(data, "frontier-lab-campus", "decline")))
    co = coarse.build(inst)
    plans = {inst.jobs[op.job].name for op in co.options if "frontier" in inst.jobs[op.job].name}
    assert plans == {"frontier-pretrain/sync-dp", "frontier-pretrain/diloco-100"}
