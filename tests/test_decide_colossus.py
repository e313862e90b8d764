"""The README's keep-or-lease question on instances/colossus-v2.yaml (issue 16 part 6):
the decision is proven, i.e. the worth interval of leasing excludes 0, with the bounds
valid for every plan of the frontier run (`pp-across` included). Two full-size forced
solves of about a minute each: slow."""

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
