"""kill -9 of `placer serve` at random moments under concurrent mutations, then a restart with
the same command: nothing acknowledged is lost, nothing unacknowledged is half-applied, the
checker passes and the revision never goes back (tests/crash.py has the checks). 20 trials
here on SQLite and 3 on PostgreSQL; more with -m slow; 200 in ``python -m bench.service``."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from crash import Trials  # noqa: E402


def run(trials: Trials, n: int) -> None:
    try:
        for _ in range(n):
            trials.trial()
    finally:
        trials.close()
    s = trials.stats
    assert s["trials"] == n and s["acked"] > n  # real work was acknowledged and checked


def test_kill_9_loses_nothing_sqlite(tmp_path):
    run(Trials(tmp_path, seed=1), 20)


def test_kill_9_loses_nothing_postgresql(tmp_path, postgres_url):
    run(Trials(tmp_path, state=postgres_url, seed=2), 3)


@pytest.mark.slow
def test_kill_9_loses_nothing_many_trials(tmp_path, postgres_url):
    (tmp_path / "s").mkdir()
    (tmp_path / "p").mkdir()
    run(Trials(tmp_path / "s", seed=3), 60)
    run(Trials(tmp_path / "p", state=postgres_url, seed=4), 20)
