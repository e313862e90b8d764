"""A hypothesis state machine against `placer serve` (in process, over HTTP, SQLite state) and a
model of what must run: submit, release, fail, restore, replan, a stale If-Match, and restart
rules. After every step the running jobs equal the model's, the revision equals the model's
count of committed mutations, and the checker passes; a restart keeps the canonical snapshot
and the revision."""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path

import pytest
from builders import one_site, training
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import placer

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from asgi_client import ASGIClient  # noqa: E402

from placer.service import Service, create_app, open_store  # noqa: E402

ITEMS = ["a/node0", "a/node1", "a/node2/gpu1", "a/node5"]
JOBS = [
    training("s", 1),
    training("m", 2, tp=2, min_dp=1),
    training("big", 4, value=3),
    training("must", 1, preemptible=False, value=2),
    {"name": "inf", "kind": "inference", "replicas": 2, "min_replicas": 1, "value": 2},
]


class ServiceMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="placer-sm-")
        self.path = str(Path(self.dir) / "state.db")
        self.inst = placer.load_instance(one_site(nodes=6, gpus_per_node=2))
        self.running: set[str] = set()
        self.failed: set[str] = set()
        self.revision = 1
        self.n = 0
        self._open()

    def _open(self) -> None:
        store = open_store(self.path)
        store.open()
        self.svc = Service(self.inst, store=store)
        self.svc.start(background=False)
        self.client = ASGIClient(create_app(self.svc))

    def _apply(self, r) -> None:
        assert r.status_code == 200, r.text
        d = r.json()
        for a in d["actions"]:
            if a["kind"] in ("start", "move"):
                self.running.add(a["job"])
            elif a["kind"] == "stop":
                self.running.discard(a["job"])
        assert d["revision"] == int(r.headers["etag"].strip('"'))

    @rule(job=st.sampled_from(JOBS), moves=st.integers(0, 2))
    def submit(self, job, moves):
        j = copy.deepcopy(job)
        j["name"] = f"{j['name']}{self.n}"
        self.n += 1
        r = self.client.post("/jobs", json={"job": j, "allow_moves": moves})
        self._apply(r)
        if r.json()["placed"]:
            self.revision += 1

    @precondition(lambda self: self.running)
    @rule(data=st.data())
    def release(self, data):
        name = data.draw(st.sampled_from(sorted(self.running)))
        self._apply(self.client.delete(f"/jobs/{name}"))
        self.revision += 1

    @rule()
    def release_unknown(self):
        r = self.client.delete("/jobs/never-submitted")
        assert r.status_code == 404

    @rule(item=st.sampled_from(ITEMS))
    def fail(self, item):
        r = self.client.post("/fail", json={"items": [item]})
        self._apply(r)
        if item in self.failed:  # failed already: nothing changed, no revision
            assert r.json()["actions"] == [] and "nothing changed" in r.json()["reason"]
            assert r.json()["applied"] is False
            return
        assert r.json()["applied"] is True
        self.failed.add(item)
        self.revision += 1

    @rule(item=st.sampled_from(ITEMS))
    def restore(self, item):
        r = self.client.post("/restore", json={"items": [item]})
        self._apply(r)
        if item not in self.failed:  # never failed, or restored already: nothing changed
            assert r.json()["actions"] == [] and "nothing changed" in r.json()["reason"]
            assert r.json()["applied"] is False
            return
        assert r.json()["applied"] is True
        self.failed.discard(item)
        self.revision += 1

    @rule(pending=st.lists(st.sampled_from(JOBS), max_size=2))
    def replan(self, pending):
        jobs = []
        for j in pending:
            j = copy.deepcopy(j)
            j["name"] = f"p{j['name']}{self.n}"
            self.n += 1
            jobs.append(j)
        r = self.client.post("/replan", json={"time_limit": 2, "solver": "greedy", "pending": jobs})
        self._apply(r)
        if r.json()["applied"]:
            self.revision += 1

    @rule()
    def stale_if_match(self):
        r = self.client.post(
            "/jobs",
            json={"job": training(f"late{self.n}", 1)},
            headers={"If-Match": f'"{self.revision - 1}"'},
        )
        assert r.status_code == 412

    @rule()
    def restart(self):
        before = json.dumps(self.svc.cluster.snapshot(), sort_keys=True)
        self.client.close()
        self.svc.close()
        self._open()
        assert json.dumps(self.svc.cluster.snapshot(), sort_keys=True) == before
        assert self.svc.revision == self.revision

    @invariant()
    def agrees_with_the_model(self):
        jobs = self.client.get("/jobs").json()
        assert set(jobs["jobs"]) == self.running
        assert jobs["revision"] == self.revision == self.svc.revision
        assert self.svc.cluster.check() == []

    def teardown(self) -> None:
        self.client.close()
        self.svc.close()


ServiceMachine.TestCase.settings = settings(
    max_examples=12,
    stateful_step_count=14,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
test_service_state_machine = ServiceMachine.TestCase
