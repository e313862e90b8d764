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
    from hypothesis import given
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    api = schemathesis.openapi.from_url(fuzzed + "/openapi.json")
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
        negative_data_rejection,
    ]
    calls = 0
    for res in api.get_all_operations():
        op = res.ok()
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
                calls += 1
                case.call_and_validate(
                    base_url=fuzzed,
                    headers={"Authorization": f"Bearer {TOKEN}"},
                    checks=checks,
                )

            try:
                run()
            except Unsatisfiable:  # no invalid request exists (e.g. GET /health)
                assert mode is GenerationMode.NEGATIVE
    assert calls >= 200
