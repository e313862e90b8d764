"""Durable state of `placer serve`: SQLite (one host, the default) or PostgreSQL (a writer and
standbys), behind one thin layer over the standard library's ``sqlite3`` and ``psycopg`` 3.

What is stored is what :class:`~placer.cluster.Cluster`'s public API gives, nothing of its
internals:

- ``placer_meta``: the schema version and the instance document the state was made on;
- ``placer_head`` (one row): the ``revision`` (only grows), the writer's fencing ``epoch``,
  the next job sequence number and ``state``: :meth:`Cluster.state` without its jobs
  (failed and restored hardware, leases and the blocks that cover failures);
- ``placer_jobs``: one row per running job, its SPEC document with `current`
  (:meth:`Cluster.job_document`) and its start order ``seq``;
- ``placer_events``: append-only, one row per committed operation (revision, epoch, time,
  operation, idempotency key, request and answer).

Every mutation is written in one transaction, alone or with the mutations queued behind it
(a group commit, :meth:`Store.commit_many`, all or nothing, in revision order): ``placer_head``
advances its revision only where the epoch and the revision are the writer's (a fenced or
stale writer changes nothing), the changed job rows and the events are written, then it
commits (SQLite: WAL, ``synchronous=FULL``, ``BEGIN IMMEDIATE``). A restart reads the rows
back into :meth:`Cluster.resume`.

One writer: SQLite takes an exclusive ``flock`` on ``PATH.lock`` (a second service on the
same file is refused); PostgreSQL takes a session advisory lock (a second service waits as a
standby and takes over when the writer's connection drops) and bumps the epoch.

Imports only the standard library (psycopg when the URL is ``postgresql://``).
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from placer.errors import PlacerError, UsageError

SCHEMA_VERSION = 1
# pg_try_advisory_lock key: "placer" in ASCII, one lock per database
_LOCK_KEY = 0x706C61636572

_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS placer_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS placer_head (id INTEGER PRIMARY KEY CHECK (id = 1), "
    "revision BIGINT NOT NULL, epoch BIGINT NOT NULL, next_seq BIGINT NOT NULL, "
    "state TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS placer_jobs (name TEXT PRIMARY KEY, seq BIGINT NOT NULL, "
    "revision BIGINT NOT NULL, doc TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS placer_events (revision BIGINT PRIMARY KEY, "
    "epoch BIGINT NOT NULL, at DOUBLE PRECISION NOT NULL, op TEXT NOT NULL, "
    "idempotency_key TEXT UNIQUE, request TEXT NOT NULL, result TEXT NOT NULL)",
]


class StoreError(PlacerError):
    """The state store cannot be used (wrong schema, another writer, lost connection)."""


class FencedError(StoreError):
    """This service is no longer the writer (another took over): nothing was written."""


@dataclass
class Stored:
    """What a store holds: the instance document, the revision and the cluster state
    (:meth:`Cluster.state` with its jobs in start order)."""

    instance: dict[str, Any]
    revision: int
    epoch: int
    state: dict[str, Any]
    seqs: dict[str, int] = field(default_factory=dict)


@dataclass
class Commit:
    """One mutation: the job rows it changes (``upsert`` name -> document, ``delete``
    names), the state without jobs when it changed, and the event. A document or the
    result may be given encoded already (a JSON string: :func:`encode`), e.g. a replan's,
    encoded without the service's lock."""

    op: str
    request: dict[str, Any]
    result: dict[str, Any] | str
    upsert: dict[str, dict[str, Any] | str] = field(default_factory=dict)
    delete: list[str] = field(default_factory=list)
    state: dict[str, Any] | None = None
    idempotency_key: str | None = None


def _dumps(x: Any) -> str:
    return x if isinstance(x, str) else json.dumps(x, separators=(",", ":"))


def encode(x: Any) -> str:
    """The JSON text a store writes for a document (for :class:`Commit`)."""
    return json.dumps(x, separators=(",", ":"))


class Store:
    """The durable state (see the module docs). Subclasses give the connection, the
    placeholder style and the writer lock; the SQL is shared."""

    kind = "store"

    def __init__(self, url: str) -> None:
        self.url = url
        self.epoch = 0
        self.revision = 0
        self._next_seq = 0
        self._lock = threading.RLock()  # one connection, used by one thread at a time

    # --------------------------------------------------------------- per backend
    def _connect(self) -> Any:
        raise NotImplementedError

    def _q(self, sql: str) -> str:
        return sql

    def _begin(self, cur: Any) -> None:
        cur.execute("BEGIN")

    def acquire(self, stop: threading.Event | None = None) -> None:
        """Become the writer (blocks as a standby on PostgreSQL until `stop` is set)."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.url

    # --------------------------------------------------------------- shared
    def open(self) -> None:
        """Connect and create the schema if it is not there; refuse another version."""
        self._conn = self._connect()
        with self._lock:
            cur = self._conn.cursor()
            self._begin(cur)
            try:
                for sql in _SCHEMA:
                    cur.execute(sql)
                cur.execute(self._q("SELECT value FROM placer_meta WHERE key = ?"), ("schema",))
                row = cur.fetchone()
                if row is None:
                    cur.execute(
                        self._q("INSERT INTO placer_meta (key, value) VALUES (?, ?)"),
                        ("schema", str(SCHEMA_VERSION)),
                    )
                elif int(row[0]) != SCHEMA_VERSION:
                    raise StoreError(
                        f"state {self.describe()}: schema version {row[0]}, this placer reads "
                        f"version {SCHEMA_VERSION}"
                    )
                cur.execute("COMMIT")
            except BaseException:
                self._rollback(cur)
                raise

    def _rollback(self, cur: Any) -> None:
        try:
            cur.execute("ROLLBACK")
        except Exception:  # noqa: BLE001 - the connection may be gone; nothing to undo then
            pass

    def instance_document(self) -> dict[str, Any] | None:
        """The instance document the stored cluster was made on (None: an empty store)."""
        with self._lock:
            cur = self._conn.cursor()
            cur.execute(self._q("SELECT value FROM placer_meta WHERE key = ?"), ("instance",))
            row = cur.fetchone()
            self._end_read(cur)
            return None if row is None else json.loads(row[0])

    def _end_read(self, cur: Any) -> None:
        pass

    def initialise(
        self, instance: dict[str, Any], state: dict[str, Any], result: dict[str, Any]
    ) -> int:
        """First start: the instance, the cluster's state and its jobs, as revision 1."""
        with self._lock:
            cur = self._conn.cursor()
            self._begin(cur)
            try:
                cur.execute(self._q("SELECT value FROM placer_meta WHERE key = ?"), ("instance",))
                if cur.fetchone() is not None:
                    raise StoreError(f"state {self.describe()} already holds a cluster")
                cur.execute(
                    self._q("INSERT INTO placer_meta (key, value) VALUES (?, ?)"),
                    ("instance", _dumps(instance)),
                )
                jobs = state.get("jobs", [])
                rest = {k: v for k, v in state.items() if k != "jobs"}
                cur.execute(
                    self._q(
                        "INSERT INTO placer_head (id, revision, epoch, next_seq, state) "
                        "VALUES (1, 1, ?, ?, ?)"
                    ),
                    (self.epoch, len(jobs), _dumps(rest)),
                )
                for k, jd in enumerate(jobs):
                    cur.execute(
                        self._q(
                            "INSERT INTO placer_jobs (name, seq, revision, doc) VALUES (?, ?, 1, ?)"
                        ),
                        (jd["name"], k, _dumps(jd)),
                    )
                cur.execute(
                    self._q(
                        "INSERT INTO placer_events (revision, epoch, at, op, idempotency_key, "
                        "request, result) VALUES (1, ?, ?, 'init', NULL, ?, ?)"
                    ),
                    (
                        self.epoch,
                        time.time(),
                        _dumps({"instance": instance.get("name")}),
                        _dumps(result),
                    ),
                )
                cur.execute("COMMIT")
            except BaseException:
                self._rollback(cur)
                raise
            self.revision = 1
            self._next_seq = len(jobs)
            return 1

    def load(self) -> Stored | None:
        """The stored cluster (None: an empty store)."""
        with self._lock:
            inst = self.instance_document()
            if inst is None:
                return None
            cur = self._conn.cursor()
            cur.execute("SELECT revision, epoch, next_seq, state FROM placer_head WHERE id = 1")
            rev, epoch, next_seq, st = cur.fetchone()
            cur.execute("SELECT name, seq, doc FROM placer_jobs ORDER BY seq")
            rows = cur.fetchall()
            self._end_read(cur)
            state = json.loads(st)
            state["jobs"] = [json.loads(doc) for _, _, doc in rows]
            self.revision = int(rev)
            self._next_seq = int(next_seq)
            return Stored(inst, int(rev), int(epoch), state, {n: int(s) for n, s, _ in rows})

    def commit(self, c: Commit, seqs: dict[str, int], laps: Any = None) -> int:
        """Write one mutation in one transaction; returns the new revision. `seqs` (name ->
        start order, kept by the caller) gets the new jobs' numbers. Raises
        :class:`FencedError` when another writer took over (nothing written). `laps`: a
        :class:`placer.live.replan.Laps` timing the head, rows, event and COMMIT (a replan's
        commit profiled, ``PLACER_SERVE_PROFILE``)."""
        return self.commit_many([c], seqs, laps)

    def commit_many(self, commits: list[Commit], seqs: dict[str, int], laps: Any = None) -> int:
        """Write mutations in one transaction (a group commit: one fsync for all), as the
        consecutive revisions after the stored one, in order; returns the last revision.
        The same rows and events as :meth:`commit` of each in turn, all or nothing."""
        with self._lock:
            cur = self._conn.cursor()
            self._begin(cur)
            try:
                new = self.revision + len(commits)
                nxt = self._next_seq
                added: dict[str, int] = {}
                gone: set[str] = set()
                state = None
                for c in commits:
                    for name in c.delete:
                        gone.add(name)
                        added.pop(name, None)
                    for name in c.upsert:
                        if (name not in seqs or name in gone) and name not in added:
                            added[name] = nxt
                            nxt += 1
                    if c.state is not None:
                        state = c.state
                if state is None:
                    cur.execute(
                        self._q(
                            "UPDATE placer_head SET revision = ?, next_seq = ? "
                            "WHERE id = 1 AND epoch = ? AND revision = ?"
                        ),
                        (new, nxt, self.epoch, self.revision),
                    )
                else:
                    cur.execute(
                        self._q(
                            "UPDATE placer_head SET revision = ?, next_seq = ?, state = ? "
                            "WHERE id = 1 AND epoch = ? AND revision = ?"
                        ),
                        (new, nxt, _dumps(state), self.epoch, self.revision),
                    )
                if laps:
                    laps("store: head")
                if cur.rowcount != 1:
                    raise FencedError(
                        f"state {self.describe()}: another writer took over (epoch or revision "
                        f"moved past {self.epoch}/{self.revision}); nothing was written"
                    )
                rows = 0
                inserted: set[str] = set()
                for k, c in enumerate(commits, start=self.revision + 1):
                    for name in c.delete:
                        cur.execute(self._q("DELETE FROM placer_jobs WHERE name = ?"), (name,))
                        inserted.discard(name)
                    for name, doc in c.upsert.items():
                        rows += 1
                        if name in added and name not in inserted:
                            inserted.add(name)
                            cur.execute(
                                self._q(
                                    "INSERT INTO placer_jobs (name, seq, revision, doc) "
                                    "VALUES (?, ?, ?, ?)"
                                ),
                                (name, added[name], k, _dumps(doc)),
                            )
                        else:
                            cur.execute(
                                self._q(
                                    "UPDATE placer_jobs SET doc = ?, revision = ? WHERE name = ?"
                                ),
                                (_dumps(doc), k, name),
                            )
                    if laps:
                        laps(f"store: {rows} job rows")
                    cur.execute(
                        self._q(
                            "INSERT INTO placer_events (revision, epoch, at, op, "
                            "idempotency_key, request, result) VALUES (?, ?, ?, ?, ?, ?, ?)"
                        ),
                        (
                            k,
                            self.epoch,
                            time.time(),
                            c.op,
                            c.idempotency_key,
                            _dumps(c.request),
                            _dumps(c.result),
                        ),
                    )
                    if laps:
                        laps("store: event")
                cur.execute("COMMIT")
                if laps:
                    laps("store: COMMIT")
            except BaseException:
                self._rollback(cur)
                raise
            self.revision = new
            self._next_seq = nxt
            for name in gone:
                seqs.pop(name, None)
            seqs.update(added)
            return new

    def replayed(self, key: str) -> tuple[int, str, dict[str, Any]] | None:
        """The committed event with this idempotency key: (revision, op, answer)."""
        with self._lock:
            cur = self._conn.cursor()
            cur.execute(
                self._q("SELECT revision, op, result FROM placer_events WHERE idempotency_key = ?"),
                (key,),
            )
            row = cur.fetchone()
            self._end_read(cur)
            return None if row is None else (int(row[0]), row[1], json.loads(row[2]))

    def events(self, since: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        """Committed events after revision `since`, oldest first."""
        with self._lock:
            cur = self._conn.cursor()
            cur.execute(
                self._q(
                    "SELECT revision, epoch, at, op, idempotency_key, request, result "
                    "FROM placer_events WHERE revision > ? ORDER BY revision LIMIT ?"
                ),
                (since, limit),
            )
            rows = cur.fetchall()
            self._end_read(cur)
        return [
            {
                "revision": int(r[0]),
                "epoch": int(r[1]),
                "at": float(r[2]),
                "op": r[3],
                "idempotency_key": r[4],
                "request": json.loads(r[5]),
                "result": json.loads(r[6]),
            }
            for r in rows
        ]

    def close(self) -> None:
        with self._lock:
            conn = getattr(self, "_conn", None)
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001 - closing a dead connection
                    pass
                self._conn = None


class SQLiteStore(Store):
    """SQLite in WAL mode with ``synchronous=FULL`` (every commit is on disk before the
    answer); one writer per file, held by ``flock`` on ``PATH.lock``."""

    kind = "sqlite"

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path
        self._lockfile: Any = None

    def _connect(self) -> Any:
        import sqlite3

        d = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(d):
            raise StoreError(f"state {self.path}: directory {d} does not exist")
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=10.0
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=10000")
        except sqlite3.DatabaseError as e:
            raise StoreError(f"state {self.path}: not a placer state database ({e})") from None
        return conn

    def _begin(self, cur: Any) -> None:
        cur.execute("BEGIN IMMEDIATE")

    def acquire(self, stop: threading.Event | None = None) -> None:
        import fcntl

        fh = open(self.path + ".lock", "a+")  # noqa: SIM115 - held for the process's life
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            who = fh.read().strip() or "another process"
            fh.close()
            raise StoreError(
                f"state {self.path}: in use by another placer serve ({who}); one writer per "
                "state file (use PostgreSQL for a standby)"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}\n")
        fh.flush()
        self._lockfile = fh
        with self._lock:
            cur = self._conn.cursor()
            self._begin(cur)
            try:
                cur.execute("SELECT epoch FROM placer_head WHERE id = 1")
                row = cur.fetchone()
                self.epoch = (int(row[0]) if row else 0) + 1
                cur.execute("UPDATE placer_head SET epoch = ? WHERE id = 1", (self.epoch,))
                cur.execute("COMMIT")
            except BaseException:
                self._rollback(cur)
                raise

    def close(self) -> None:
        super().close()
        if self._lockfile is not None:
            self._lockfile.close()
            self._lockfile = None


class PostgresStore(Store):
    """PostgreSQL through psycopg 3: the writer holds a session advisory lock on its one
    connection (released when that connection drops) and a fencing epoch checked on every
    write; a second service waits for the lock as a standby."""

    kind = "postgresql"

    def __init__(self, url: str, poll_s: float = 0.5) -> None:
        super().__init__(url)
        self.poll_s = poll_s

    def describe(self) -> str:
        # never print a password
        import re

        return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", self.url)

    def _connect(self) -> Any:
        try:
            import psycopg
        except ImportError:
            raise UsageError(
                "--state postgresql://...: needs psycopg: pip install 'placer[serve]'"
            ) from None
        try:
            conn = psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=10,
                keepalives=1,
                keepalives_idle=5,
                keepalives_interval=2,
                keepalives_count=3,
            )
            # the server notices a dead writer within ~11 s (its lock is then released)
            conn.execute("SET tcp_keepalives_idle = 5")
            conn.execute("SET tcp_keepalives_interval = 2")
            conn.execute("SET tcp_keepalives_count = 3")
        except psycopg.Error as e:
            raise StoreError(f"state {self.describe()}: cannot connect ({e})") from None
        return conn

    def _q(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def acquire(self, stop: threading.Event | None = None) -> None:
        while True:
            with self._lock:
                got = self._conn.execute(
                    "SELECT pg_try_advisory_lock(%s)", (_LOCK_KEY,)
                ).fetchone()[0]
            if got:
                break
            if stop is not None and stop.wait(self.poll_s):
                raise StoreError("stopped while waiting to become the writer")
            if stop is None:
                time.sleep(self.poll_s)
        with self._lock, self._conn.transaction():
            row = self._conn.execute("SELECT epoch FROM placer_head WHERE id = 1").fetchone()
            self.epoch = (int(row[0]) if row else 0) + 1
            self._conn.execute("UPDATE placer_head SET epoch = %s WHERE id = 1", (self.epoch,))


def open_store(url: str) -> Store:
    """A store for ``--state``: a ``postgresql://`` (or ``postgres://``) URL, else a SQLite
    file path (``sqlite:///PATH`` also accepted)."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url)
    if url.startswith("sqlite:///"):
        url = url[len("sqlite:///") :]
    if "://" in url:
        raise UsageError(f"--state: expected a file path or a postgresql:// URL, got {url!r}")
    return SQLiteStore(url)
