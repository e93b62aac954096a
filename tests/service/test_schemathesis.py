"""Schemathesis against the service's own OpenAPI schema, over real HTTP on loopback.

For every operation, up to MAX_EXAMPLES requests (valid and invalid) generated from the schema,
derandomized so that every run sends the same ones. No answer may be a 5xx, and every answer
must be one the schema documents: its status code, content type, headers and body.

The admin operations are called without the admin key (answered 401): with it, generated calls
would load versions, which is state, not input validation; tests/service/test_versions.py
covers them.
"""

from __future__ import annotations

import pytest

from helpers import import_extra

import_extra("fastapi")
schemathesis = import_extra("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

MAX_EXAMPLES = 100  # per operation; the whole run stays within a minute on 2 cores
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module", autouse=True)
def still_serving(shared_server):
    yield
    with shared_server.client() as c:
        r = c.get("/v1/users/1000/recommendations?k=3")
        assert r.status_code == 200 and len(r.json()["results"]) == 3


# One loop over the operations rather than schemathesis' pytest plugin: its lazy loader (the only
# way to get the schema from a server a fixture starts) breaks on pytest 9.
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_answer_is_documented_and_none_is_a_server_error(shared_server, mode):
    schema = schemathesis.openapi.from_url(f"{shared_server.url}/openapi.json")
    failures = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=MAX_EXAMPLES // 2,  # each mode: MAX_EXAMPLES per operation in all
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case) -> None:
            case.call_and_validate(base_url=shared_server.url, checks=CHECKS, timeout=30)

        try:
            run()
        except Unsatisfiable:
            # negative mode on an operation whose every input is valid (no parameters, or one
            # string path parameter): there is nothing invalid to send
            assert mode == GenerationMode.NEGATIVE, operation.label
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # every operation's failures, not only the first's
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
