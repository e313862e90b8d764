"""`/docs` works on an air-gapped machine: its page and assets come from the installed package
(no external URL), and a real headless Chromium, with every host but 127.0.0.1 unreachable,
renders the operations (skipped with a reason only where no Chromium is installed)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile

import pytest
from builders import one_site
from servers import uvicorn_thread

import placer
from placer import Cluster

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from placer.service import create_app  # noqa: E402


def test_docs_page_has_no_external_url():
    with uvicorn_thread(create_app(Cluster(placer.load_instance(one_site())))) as url:
        html = httpx.get(url + "/docs").text
        refs = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
        assert refs and all(r.startswith("/") for r in refs), refs
        assert "validatorUrl" in html and "cdn" not in html
        for r in refs:
            assert httpx.get(url + r).status_code == 200, r


def test_docs_render_offline_in_headless_chromium():
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no Chromium here (apt-get install chromium); .ci/run installs it")
    with uvicorn_thread(create_app(Cluster(placer.load_instance(one_site())))) as url:
        profile = tempfile.mkdtemp(prefix="placer-chromium-")
        r = subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                # air-gapped: nothing but this machine resolves
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--virtual-time-budget=15000",
                "--dump-dom",
                url + "/docs",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        shutil.rmtree(profile, ignore_errors=True)
    dom = r.stdout
    assert "swagger-ui" in dom, r.stderr[-2000:]
    # the operations are listed (rendered by swagger-ui's script from /openapi.json)
    for path in ("/jobs/{name}", "/replan", "/snapshot", "/fail"):
        assert f'data-path="{path}"' in dom or f">{path}<" in dom.replace("\u200b", ""), path
