"""A cluster built from an INSTANCE whose jobs carry `current` (the first start of `placer
serve`): every job is first tried on its `current` all at once and checked whole; the result
must be the one of taking the jobs in one by one (priority order, each kept on `current` when
it still meets every rule, else placed afresh), whatever the instance: conflicting,
unavailable or rule-breaking `current` included (then the one-by-one path decides)."""

from __future__ import annotations

import copy
import json

import pytest
from builders import one_site, training
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import placer
from placer import Cluster
from placer.errors import InstanceError
from placer.live import admission

if __package__:
    from .strategies import feasible_case
else:
    from strategies import feasible_case

HYP = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def built(inst_d: dict, whole_first: bool) -> tuple:
    """The cluster's state document and objective (or the refusal), one way or the other."""
    real = admission.admit_running
    seen = []

    def admit(live):
        seen.append(real(live, whole_first=whole_first))
        return seen[-1]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(admission, "admit_running", admit)
        try:
            c = Cluster(placer.load_instance(copy.deepcopy(inst_d)), verify="full")
        except InstanceError as e:
            return ("refused", str(e)), seen
    assert c.check() == []
    return (json.dumps(c.state(), sort_keys=True), round(c.objective, 6)), seen


@settings(max_examples=60, **HYP)
@given(case=feasible_case(), data=st.data())
def test_running_jobs_checked_whole_first_end_where_one_by_one_puts_them(case, data):
    inst_d, pl_d = case
    inst_d = copy.deepcopy(inst_d)
    where = {pj["name"]: pj for pj in pl_d["jobs"]}
    for job in inst_d["jobs"]:
        pj = where.get(job["name"])
        if pj and pj["gpus"] and data.draw(st.booleans()):
            job["current"] = list(pj["gpus"])
            if pj.get("plan"):
                job["current_plan"] = pj["plan"]
    running = [j for j in inst_d["jobs"] if j.get("current")]
    if len(running) >= 2 and data.draw(st.booleans()):  # two jobs claim the same GPUs
        a, b = data.draw(st.permutations(running))[:2]
        if len(a["current"]) == len(b["current"]):
            a["current"] = list(b["current"])
    for offer in (inst_d.get("leases") or {}).get("offers", []):
        offer.pop("committed_blocks", None)  # leases as the placement's, or none
    fast, used = built(inst_d, True)
    slow, _ = built(inst_d, False)
    assert fast == slow
    if used and used[0]:
        assert fast[0] != "refused"


def test_jobs_that_all_fit_on_their_current_take_the_whole_check_and_others_one_by_one():
    jobs = []
    for n in range(8):
        jobs.append(training(f"r{n}", 1, current=[f"a/node{n}/gpu0"]))
    inst_d = one_site(nodes=8, gpus_per_node=2, jobs=jobs)
    fast, used = built(inst_d, True)
    assert used == [True] and fast == built(inst_d, False)[0]
    # a power cap that holds 6 of them: one by one decides (6 stay, 2 preemptible ones out)
    inst_d = one_site(nodes=8, gpus_per_node=2, jobs=jobs, power_cap_kW=6)
    fast, used = built(inst_d, True)
    assert used == [False] and fast == built(inst_d, False)[0]
    assert len(json.loads(fast[0])["jobs"]) == 6
