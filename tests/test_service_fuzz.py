"""A bounded schemathesis run against a real `placer serve` (uvicorn on 127.0.0.1, tokens on):
every operation of /openapi.json gets generated valid and invalid requests; 0 server errors,
every status and body as documented, invalid requests refused (negative_data_rejection)."""

from __future__ import annotations

import pytest
from builders import one_site, training
from hypothesis import HealthCheck, settings
from servers import uvicorn_thread

import placer

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("fastapi")

from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from placer.service import Limits, Service, create_app, parse_tokens  # noqa: E402

TOKEN = "fuzz-token-0123456789"


@pytest.fixture(scope="module")
def fuzzed():
    import copy

    d = one_site(nodes=4, gpus_per_node=2)
    svc = Service(
        placer.load_instance(d),
        limits=Limits(max_solve_seconds=1.0, solve_grace_seconds=20, max_gpus=64, max_jobs=8),
    )
    svc.start(background=False)
    svc.mutate("submit", {}, lambda c: c.submit(copy.deepcopy(training("a", 1))))
    with uvicorn_thread(create_app(svc, tokens=parse_tokens(TOKEN))) as url:
        yield url
    svc.close()


def test_the_server_matches_its_openapi_document(fuzzed):
    import copy

    from hypothesis import given
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.generation.case import Case

    api = schemathesis.openapi.from_url(fuzzed + "/openapi.json")
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
        negative_data_rejection,
    ]
    ops = {(r.ok().method.upper(), r.ok().path): r.ok() for r in api.get_all_operations()}
    # POST /check takes the very body of POST /score ({instance, placement}): each case
    # generated for /score is also sent to /check, validated against /check's responses.
    # Generating SPEC instances is most of this test's time; each route still gets every
    # case, valid and invalid.
    spec = api.raw_schema["paths"]
    body = {p: spec[p]["post"]["requestBody"] for p in ("/score", "/check")}
    assert body["/score"] == body["/check"]
    twins = {("POST", "/score"): ops.pop(("POST", "/check"))}
    calls = 0
    seen: set[tuple[str, str]] = set()
    for key, op in ops.items():
        twin = twins.get(key)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=op.as_strategy(generation_mode=mode))
            @settings(
                max_examples=15,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                derandomize=True,
                database=None,
            )
            def run(case):
                nonlocal calls
                cases, pair = [case], twin  # noqa: B023 - run() is called in this iteration
                if pair is not None:
                    cases.append(
                        Case(
                            pair,
                            pair.method.upper(),
                            pair.path,
                            headers=copy.deepcopy(case.headers),
                            query=copy.deepcopy(case.query),
                            body=copy.deepcopy(case.body),
                            media_type=case.media_type,
                            meta=case.meta,
                        )
                    )
                for c in cases:
                    calls += 1
                    c.call_and_validate(
                        base_url=fuzzed,
                        headers={"Authorization": f"Bearer {TOKEN}"},
                        checks=checks,
                    )
                    seen.add((c.method.upper(), c.path))

            try:
                run()
            except Unsatisfiable:  # no invalid request exists (e.g. GET /health)
                assert mode is GenerationMode.NEGATIVE
    assert calls >= 200
    assert seen == set(ops) | {("POST", "/check")}  # every operation was fuzzed
