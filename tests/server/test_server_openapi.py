"""The server's own OpenAPI 3.1 document, and schemathesis over the API-only endpoints: generated
requests (valid and invalid) never get a 5xx, and every response matches the document."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from tests.server.server_api import Api, MakeApi, spec_yaml, unreachable_engine

SEED_PATHS = [  # the seed document's paths, under /v1
    "/health",
    "/v1/sandboxes",
    "/v1/sandboxes/{sandbox_id}",
    "/v1/runs",
    "/v1/runs/{run_id}",
    "/v1/runs/{run_id}/replay",
    "/v1/runs/{run_id}/stream",
    "/v1/replicas",
    "/v1/replicas/{suite_id}",
    "/v1/replicas/{suite_id}/stream",
    "/v1/specs",
    "/v1/specs/{spec_id}",
]


@pytest.fixture
def served(make_api: MakeApi) -> Api:
    """An API-only server (no sandbox engine) with one spec and one experiment to find."""
    api = make_api(backend_factory=unreachable_engine, read_rate=1e6, write_rate=1e6)
    api.upload(spec_yaml())
    api.client.post("/v1/experiments", json={"name": "known", "spec_id": "hello"})
    return api


@pytest.fixture
def api_schema(served: Api) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_asgi("/openapi.json", served.app)


def test_the_document_is_openapi_3_1_with_the_seed_paths_and_error_contract(served: Api) -> None:
    document = served.client.get("/openapi.json").json()

    assert document["openapi"].startswith("3.1")
    assert set(SEED_PATHS) <= set(document["paths"])
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    create = document["paths"]["/v1/experiments"]["post"]
    assert "422" not in create["responses"]
    assert create["responses"]["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert (
        "Retry-After"
        in document["paths"]["/v1/experiments/{experiment_id}/run"]["post"]["responses"]["503"]["headers"]
    )
    assert {"Idempotency-Key", "X-Request-ID"} <= {p["name"] for p in create["parameters"]}
    assert {"run.completed", "replica.completed"} <= set(document["webhooks"])


# Streams never end for an experiment that does not run; POST /v1/sandboxes boots Docker sandboxes.
schema = (
    schemathesis.pytest.from_fixture("api_schema")
    .exclude(path_regex=r"/(stream|events)$")
    .exclude(method="POST", path_regex=r"^/v1/sandboxes$")
)


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_generated_requests_get_no_server_error_and_conforming_responses(
    case: schemathesis.Case, served: Api
) -> None:
    # Left out: "schema-valid must be accepted" (a YAML body must also be a valid spec, a duration must
    # parse: those 400s are by design) and "schema-invalid must be rejected" (a repeated query parameter
    # takes its last value; the key is sent with every case). No 5xx, documented statuses, content types,
    # headers and response schemas are all checked.
    case.call_and_validate(
        headers={"Authorization": f"Bearer {served.key}"},
        excluded_checks=[positive_data_acceptance, negative_data_rejection],
    )
