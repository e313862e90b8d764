"""Fixtures shared by the service tests: a real PostgreSQL server (started once per session from
the installed binaries, /usr/lib/postgresql/*/bin, newest first; PLACER_TEST_POSTGRES=URL uses
a running one instead). Nothing needs starting beforehand: a fresh clone with PostgreSQL
installed runs them; without it they are skipped with the reason (-rs in pyproject.toml)."""

from __future__ import annotations

import itertools
import os

import pytest

_counter = itertools.count()


@pytest.fixture(scope="session")
def postgres_server():
    pytest.importorskip("psycopg")
    url = os.environ.get("PLACER_TEST_POSTGRES")
    if url:
        yield None, url
        return
    from servers import PostgresServer, pg_bindir

    if pg_bindir() is None:
        pytest.skip(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): "
            "apt-get install postgresql, as .ci/run does"
        )
    srv = PostgresServer()  # installed: a server that does not start is an error, not a skip
    yield srv, srv.url
    srv.stop()


@pytest.fixture()
def postgres_url(postgres_server):
    """A fresh, empty database on the session's server."""
    srv, url = postgres_server
    if srv is None:
        import psycopg

        name = f"placer_t{os.getpid()}_{next(_counter)}"
        with psycopg.connect(url, autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return url.rsplit("/", 1)[0] + "/" + name
    return srv.database(f"placer_t{next(_counter)}")
