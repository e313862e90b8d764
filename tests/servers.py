"""Real servers for the service tests: uvicorn in a thread, `placer serve` as a subprocess, and a
private PostgreSQL server started from the installed binaries (never a mock)."""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def uvicorn_thread(app):
    """Serve an ASGI app on 127.0.0.1 (a free port) in a thread; yields the base URL."""
    import uvicorn

    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    deadline = time.time() + 30
    while not srv.started:
        if time.time() > deadline or not th.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        th.join(timeout=10)


def spawn_serve(instance: str | Path, state: str, port: int, *args: str, env: dict | None = None):
    """`placer serve` as a subprocess (the CLI a scheduler runs); stdout/stderr to a log."""
    log = open(tempfile.mktemp(prefix="placer-serve-", suffix=".log"), "w+")  # noqa: SIM115
    p = subprocess.Popen(
        [sys.executable, "-m", "placer", "serve", str(instance), "--state", state]
        + ["--port", str(port), *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )
    p.log = log  # type: ignore[attr-defined]
    atexit.register(_unlink, log.name)
    return p


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def log_of(p) -> str:
    """The server's output so far; also after :func:`stop` (which closes the log file)."""
    if p.log.closed:
        with open(p.log.name) as f:
            return f.read()
    p.log.flush()
    p.log.seek(0)
    return p.log.read()


def wait_health(url: str, proc=None, timeout: float = 60.0, want: int = 200) -> float:
    """Seconds until GET /health answers `want` (raises with the server's log otherwise)."""
    import httpx

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited ({proc.returncode}):\n{log_of(proc)}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == want:
                return time.monotonic() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(
        f"no {want} from {url}/health in {timeout} s" + (f":\n{log_of(proc)}" if proc else "")
    )


def stop(p, sig_kill: bool = False) -> None:
    if p.poll() is None:
        p.kill() if sig_kill else p.terminate()
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=15)
    log = getattr(p, "log", None)
    if log is not None and not log.closed:
        log.close()  # (left open, each server's log warned ResourceWarning at exit)


# --------------------------------------------------------------------------- PostgreSQL
def pg_bindir() -> str | None:
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(d, "initdb")):
            return d
    return None


class PostgresServer:
    """A private PostgreSQL server in a temp dir on a free port, as the `postgres` user when
    we are root (initdb refuses root)."""

    def __init__(self) -> None:
        self.bindir = pg_bindir()
        if self.bindir is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.dir = tempfile.mkdtemp(prefix="placer-pg-")
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                raise RuntimeError("root without runuser: cannot start PostgreSQL")
            shutil.chown(self.dir, "postgres", "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        data = os.path.join(self.dir, "data")
        self._run(
            [f"{self.bindir}/initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"]
        )
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=200"
        self._run(
            [
                f"{self.bindir}/pg_ctl",
                "-D",
                data,
                "-o",
                opts,
                "-l",
                f"{self.dir}/log",
                "-w",
                "start",
            ]
        )
        self.data = data
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, cmd: list[str]) -> None:
        r = subprocess.run(self.as_user + cmd, capture_output=True, text=True, timeout=120)
        if r.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed: {r.stdout}{r.stderr}")

    def database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            c.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run([f"{self.bindir}/pg_ctl", "-D", self.data, "-m", "immediate", "stop"])
        shutil.rmtree(self.dir, ignore_errors=True)
