"""The built-in HTTP mock in a real sandbox: routes and their bodies, content types, `{param}` and `*`
paths, the default response, recording, and the agent reaching it by name on port 80 or `ports[0]`."""

from __future__ import annotations

import importlib.util
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from polarity_keystone.sandbox import (
    DockerBackend,
    DockerSandbox,
    ImageResolver,
    LogLine,
    SandboxError,
    SandboxPlan,
    ServiceContainer,
)
from polarity_keystone.services import HttpMock, http_mock, kind_of
from polarity_keystone.spec import Service

pytestmark = pytest.mark.docker

API = Service.model_validate(
    {
        "name": "api",
        "type": "http_mock",
        "record": True,
        "default_response": 418,
        "routes": [
            {"method": "POST", "path": "/v1/charges", "response": '{"id": "ch_1", "status": "succeeded"}'},
            {"method": "get", "path": "/v1/charges/{id}", "response": {"id": "ch_1"}, "status": 200},
            {"method": "GET", "path": "/v1/charges/{id}/refunds", "response": "[]", "status": 200},
            {"method": "*", "path": "/files/*", "status": 201, "response": "stored"},
            {
                "path": "/plain",
                "response": "<b>hi</b>",
                "status": 202,
                "headers": {"Content-Type": "text/html", "X-Mock": "yes"},
            },
            {"path": "/v1/first", "response": "first"},
            {"path": "/v1/first", "response": "second"},
        ],
    }
)
HOOKS = Service.model_validate(
    {"name": "hooks", "type": "http_mock", "ports": [12111], "default_response": 503, "routes": []}
)

REQUEST = """\
import json, sys, urllib.request, urllib.error
url, method, body, headers = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
data = body.encode() if body else None
req = urllib.request.Request(url, data=data, method=method, headers=headers)
try:
    response = urllib.request.urlopen(req, timeout=10)
except urllib.error.HTTPError as error:
    response = error
print(json.dumps({"status": response.status, "headers": dict(response.headers),
                  "body": response.read().decode()}))
"""


def plan_of(resolver: ImageResolver, service: Service) -> ServiceContainer:
    """What the engine plans for an http_mock: Keystone's own image and the config in its env."""
    return kind_of(service).container(service, resolver.local("http_mock").ref, local_image=True)


@pytest.fixture(scope="module")
def sandbox(backend: DockerBackend, resolver: ImageResolver) -> Iterator[DockerSandbox]:
    plan = SandboxPlan(
        spec_id="http-mock",
        run_id=f"test-{uuid.uuid4().hex[:10]}",
        image=resolver.local("base").ref,
        services=[plan_of(resolver, API), plan_of(resolver, HOOKS)],
    )
    sandbox = backend.create(plan)
    try:
        sandbox.write_file("/keystone/request.py", REQUEST.encode())
        yield sandbox
    finally:
        sandbox.destroy()


def call(
    sandbox: DockerSandbox,
    url: str,
    method: str = "GET",
    body: str = "",
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    result = sandbox.exec(
        ["python3", "/keystone/request.py", url, method, body, json.dumps(headers or {})], timeout=30
    )
    assert result.exit_code == 0, result.stderr
    response: dict[str, Any] = json.loads(result.stdout)
    return response


def recorded(sandbox: DockerSandbox, path: str) -> list[dict[str, Any]]:
    return [r for r in http_mock.recorded_requests(sandbox, API) if r["path"] == path]


# --- the kind ------------------------------------------------------------------------------------


def test_http_mock_is_its_own_kind_with_port_80_and_a_log_line() -> None:
    kind = kind_of(API)
    assert isinstance(kind, HttpMock)
    assert kind.port(API) == 80
    assert kind.port(HOOKS) == 12111
    assert kind.readiness(API, local=False) == LogLine(http_mock.READY_MARKER)
    assert kind.url(API) == "http://api"
    assert kind.url(HOOKS) == "http://hooks:12111"
    assert kind.agent_env(API) == {"API_HOST": "api", "API_PORT": "80", "API_URL": "http://api"}


def test_the_config_env_carries_routes_default_and_record() -> None:
    config = json.loads(kind_of(API).container_env(API)[http_mock.CONFIG_ENV])
    assert config["port"] == 80
    assert config["default_response"] == 418
    assert config["record"] is True
    assert config["routes"][0] == {
        "method": "POST",
        "path": "/v1/charges",
        "response": '{"id": "ch_1", "status": "succeeded"}',
        "status": 200,
        "headers": {},
    }
    # A YAML mapping as the response is sent as its JSON text; methods are upper-cased.
    assert config["routes"][1]["response"] == '{"id": "ch_1"}'
    assert config["routes"][1]["method"] == "GET"


def _server_module() -> Any:
    path = Path(http_mock.__file__).parents[1] / "sandbox" / "dockerfiles" / "http_mock" / "mock.py"
    spec = importlib.util.spec_from_file_location("keystone_mock_server", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("/v1/charges", "/v1/charges", True),
        ("/v1/charges", "/v1/charges/", False),
        ("/v1/charges/{id}", "/v1/charges/ch_1", True),
        ("/v1/charges/{id}", "/v1/charges/", False),
        ("/v1/charges/{id}", "/v1/charges/ch_1/refunds", False),
        ("/v1/*", "/v1/charges/ch_1/refunds", True),
        ("/v1/*/refunds", "/v1/charges/ch_1/refunds", True),
        ("*", "/anything", True),
        ("/a.b", "/aXb", False),
    ],
)
def test_path_patterns_are_the_same_in_the_server_and_the_check(
    pattern: str, path: str, matches: bool
) -> None:
    server = _server_module()
    assert (http_mock.compile_path(pattern).fullmatch(path) is not None) is matches
    assert (server.compile_path(pattern).fullmatch(path) is not None) is matches


# --- in a sandbox --------------------------------------------------------------------------------


def test_a_route_answers_with_its_status_and_json_body(sandbox: DockerSandbox) -> None:
    response = call(sandbox, "http://api/v1/charges", "POST", '{"amount": 100}')
    assert response["status"] == 200
    assert json.loads(response["body"]) == {"id": "ch_1", "status": "succeeded"}
    assert response["headers"]["Content-Type"] == "application/json"


def test_json_lists_are_json_and_plain_text_is_not(sandbox: DockerSandbox) -> None:
    listed = call(sandbox, "http://api/v1/charges/ch_1/refunds")
    assert (listed["status"], listed["body"], listed["headers"]["Content-Type"]) == (
        200,
        "[]",
        "application/json",
    )
    stored = call(sandbox, "http://api/files/a.txt", "PUT", "data")
    assert (stored["status"], stored["body"]) == (201, "stored")
    assert stored["headers"]["Content-Type"].startswith("text/plain")


def test_route_headers_override_the_content_type(sandbox: DockerSandbox) -> None:
    response = call(sandbox, "http://api/plain")
    assert (response["status"], response["body"]) == (202, "<b>hi</b>")
    assert response["headers"]["Content-Type"] == "text/html"
    assert response["headers"]["X-Mock"] == "yes"


def test_param_and_wildcard_paths(sandbox: DockerSandbox) -> None:
    assert call(sandbox, "http://api/v1/charges/ch_42")["status"] == 200
    assert call(sandbox, "http://api/v1/charges/ch_42?expand=customer")["status"] == 200
    assert call(sandbox, "http://api/v1/charges/ch_42/other")["status"] == 418
    assert call(sandbox, "http://api/files/deep/er/file.bin", "DELETE")["status"] == 201


def test_method_must_match(sandbox: DockerSandbox) -> None:
    # GET /v1/charges has no route (only POST does): the default response.
    assert call(sandbox, "http://api/v1/charges")["status"] == 418


def test_the_first_matching_route_wins(sandbox: DockerSandbox) -> None:
    assert call(sandbox, "http://api/v1/first")["body"] == "first"


def test_unmatched_requests_get_the_default_response(sandbox: DockerSandbox) -> None:
    response = call(sandbox, "http://api/nowhere", "POST", "x")
    assert response["status"] == 418
    assert json.loads(response["body"]) == {"error": "no mock route", "method": "POST", "path": "/nowhere"}
    assert response["headers"]["Content-Type"] == "application/json"


def test_a_second_mock_listens_on_its_own_port(sandbox: DockerSandbox) -> None:
    assert call(sandbox, "http://hooks:12111/anything")["status"] == 503
    curl = sandbox.exec("curl -s -o /dev/null -w '%{http_code}' -X POST http://hooks:12111/x -d a=1")
    assert curl.stdout == "503"


def test_every_request_is_recorded_with_what_was_sent(sandbox: DockerSandbox) -> None:
    marker = uuid.uuid4().hex
    call(sandbox, f"http://api/rec/{marker}?a=1&b=two", "POST", '{"k": "v"}', {"X-Trace": marker})
    call(sandbox, f"http://api/rec/{marker}", "GET")

    first, second = recorded(sandbox, f"/rec/{marker}")
    assert first["method"] == "POST"
    assert first["query"] == "a=1&b=two"
    assert first["body"] == '{"k": "v"}'
    assert first["headers"]["X-Trace"] == marker
    assert first["headers"]["Host"] == "api"
    assert first["route"] is None
    assert first["status"] == 418
    assert first["body_truncated"] is False
    assert second["method"] == "GET"
    assert second["body"] == ""
    assert first["ts"] <= second["ts"]


def test_the_matched_route_is_recorded(sandbox: DockerSandbox) -> None:
    call(sandbox, "http://api/v1/charges/ch_rec")
    (entry,) = recorded(sandbox, "/v1/charges/ch_rec")
    assert entry["route"] == "GET /v1/charges/{id}"
    assert entry["status"] == 200


def test_concurrent_requests_are_all_answered_and_recorded(sandbox: DockerSandbox) -> None:
    marker = uuid.uuid4().hex
    script = (
        "import concurrent.futures as f, urllib.request\n"
        "def get(i):\n"
        f"    return urllib.request.urlopen('http://api/files/{marker}/%d' % i, timeout=10).status\n"
        "with f.ThreadPoolExecutor(16) as pool:\n"
        "    print(sorted(set(pool.map(get, range(40)))))\n"
    )
    result = sandbox.exec(["python3", "-c", script], timeout=60)
    assert result.stdout.strip() == "[201]", result.stderr
    entries = [
        r for r in http_mock.recorded_requests(sandbox, API) if r["path"].startswith(f"/files/{marker}/")
    ]
    assert len(entries) == 40


def test_a_mock_without_record_has_nothing_to_read(sandbox: DockerSandbox) -> None:
    with pytest.raises(SandboxError, match="does not record"):
        http_mock.recorded_requests(sandbox, HOOKS)
