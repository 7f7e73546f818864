"""The API cannot be blown up: a caller is authenticated before its body is read, bodies are bounded in
size (declared or streamed) and JSON in nesting, ids in length; a real `ks serve` refuses a 300 MB body
at once, stays small and keeps answering /health meanwhile."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from polarity_keystone.server import create_api_key
from polarity_keystone.store import SandboxRecord, open_store
from tests.ks_serve import start_ks_serve
from tests.server.server_api import Api, MakeApi, spec_yaml

MiB = 1024**2


# --- the ASGI app called directly, to see how much of the body it read --------------------------------


@dataclass
class Exchange:
    status: int = 0
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    chunks_read: int = 0

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    api: Api, path: str, chunks: Iterator[bytes], headers: dict[str, str], method: str = "POST"
) -> Exchange:
    """Send a body in chunks to the app in-process and count how many chunks it pulled."""
    exchange = Exchange()

    async def receive() -> dict[str, Any]:
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        exchange.chunks_read += 1
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            exchange.status = message["status"]
            exchange.headers = {k.decode(): v.decode() for k, v in message["headers"]}
        else:
            exchange.body += message.get("body", b"")

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 1),
        "server": ("keystone.test", 80),
    }
    anyio.run(api.app, scope, receive, send)
    return exchange


def endless(size: int = MiB) -> Iterator[bytes]:
    """A body far over the limit, in chunks of `size` bytes (64 MiB in all: a server that reads it all
    answers late instead of never)."""
    chunk = b"x" * size
    for _ in range(64 * MiB // size):
        yield chunk


def bearer(api: Api) -> dict[str, str]:
    return {"authorization": f"Bearer {api.key}", "content-type": "application/json"}


def assert_error(status: int, body: dict[str, Any], expected: int, code: str) -> str:
    assert status == expected, body
    assert body["error"] == code
    assert body["request_id"]
    message: str = body["message"]
    return message


# --- size ---------------------------------------------------------------------------------------------


def test_a_declared_length_over_the_limit_is_413_before_any_of_the_body_is_read(api: Api) -> None:
    headers = {**bearer(api), "content-length": str(300 * MiB)}

    exchange = call(api, "/v1/experiments", endless(), headers)

    message = assert_error(exchange.status, exchange.json(), 413, "payload_too_large")
    assert "8.0 MiB" in message
    assert exchange.chunks_read == 0
    assert exchange.headers["connection"] == "close"


def test_a_streamed_body_is_cut_off_as_soon_as_it_passes_the_limit(api: Api) -> None:
    exchange = call(api, "/v1/experiments", endless(), bearer(api))

    assert_error(exchange.status, exchange.json(), 413, "payload_too_large")
    assert exchange.chunks_read == 9  # 8 MiB is the limit: the ninth MiB is the one that passes it


def test_the_limit_is_a_setting_and_bodies_within_it_reach_the_route(make_api: MakeApi) -> None:
    api = make_api(max_body_bytes=4096)
    small = {"name": "n", "spec_id": "nothing", "metadata": {"pad": "x" * 3000}}
    large = {**small, "metadata": {"pad": "x" * 5000}}

    assert api.client.post("/v1/experiments", json=small).json()["error"] == "not_found"
    refused = api.client.post("/v1/experiments", json=large)
    assert_error(refused.status_code, refused.json(), 413, "payload_too_large")
    assert "4.0 KiB" in refused.json()["message"]


def test_a_spec_upload_is_capped_at_the_spec_limit(api: Api) -> None:
    response = api.upload(spec_yaml() + "# " + "x" * (2 * MiB) + "\n")

    assert response.status_code == 413, response.text


# --- authentication before the body ----------------------------------------------------------------


@pytest.mark.parametrize("key", [None, "ks_live_not-a-key"], ids=["no-key", "wrong-key"])
def test_without_a_valid_key_the_body_is_never_read(api: Api, key: str | None) -> None:
    headers = {"content-type": "application/json", **({"authorization": f"Bearer {key}"} if key else {})}

    exchange = call(api, "/v1/experiments", endless(), headers)

    assert_error(exchange.status, exchange.json(), 401, "unauthorized")
    assert exchange.chunks_read == 0


@pytest.mark.parametrize(
    "path", ["/v1/experiments", "/v1/specs", "/v1/runs", "/v1/sandboxes/sbx_x/commands", "/v1/nowhere"]
)
def test_invalid_json_without_a_key_is_401_and_says_nothing_about_the_body(api: Api, path: str) -> None:
    response = api.as_key(None).post(
        path, content=b'{"name": [1, 2', headers={"Content-Type": "application/json"}
    )

    assert_error(response.status_code, response.json(), 401, "unauthorized")
    assert "JSON" not in response.text
    assert "details" not in response.json()


def test_public_routes_need_no_key(api: Api) -> None:
    anonymous = api.as_key(None)

    for path in ("/health", "/openapi.json", "/docs"):
        assert anonymous.get(path).status_code == 200, path
    assert anonymous.get("/v1/specs").status_code == 401


def test_the_rate_limit_refuses_before_the_body_is_parsed(make_api: MakeApi) -> None:
    api = make_api(write_rate=1)

    def post_invalid_json() -> httpx.Response:
        return api.client.post(
            "/v1/experiments", content=b"{not json", headers={"Content-Type": "application/json"}
        )

    assert post_invalid_json().status_code == 400
    limited = post_invalid_json()

    assert_error(limited.status_code, limited.json(), 429, "rate_limited")
    assert limited.headers["Retry-After"]


# --- JSON nesting -------------------------------------------------------------------------------------


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [65, 500, 990, 100_000])
@pytest.mark.parametrize("path", ["/v1/experiments", "/v1/runs", "/v1/replicas", "/v1/sandboxes"])
def test_json_nested_deeper_than_64_is_a_clear_400(api: Api, path: str, depth: int) -> None:
    deep = nested(depth - 2)
    body = f'{{"name": "n", "spec_id": "s", "n_replicas": 2, "metadata": {{"deep": {deep}}}}}'

    response = api.client.post(path, content=body, headers={"Content-Type": "application/json"})

    message = assert_error(response.status_code, response.json(), 400, "json_too_deep")
    assert "more than 64 levels" in message


def test_json_at_depth_64_and_brackets_in_strings_pass(api: Api) -> None:
    at_limit = f'{{"name": "n", "spec_id": "s", "metadata": {{"deep": {nested(62)}}}}}'
    in_strings = json.dumps({"name": "n", "spec_id": "s", "metadata": {"text": "[{" * 5000}})

    for body in (at_limit, in_strings):
        response = api.client.post(
            "/v1/experiments", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.json()["error"] == "not_found", response.text  # got past the body: no spec "s"


# --- ids ----------------------------------------------------------------------------------------------

LONG_ID = "a" * 12_000


@pytest.mark.parametrize(
    "path",
    [
        "/v1/specs/{id}",
        "/v1/experiments/{id}",
        "/v1/experiments/{id}/stream",
        "/v1/metrics/experiments/{id}",
        "/v1/runs/{id}",
        "/v1/replicas/{id}",
        "/v1/sandboxes/{id}",
        "/v1/sandboxes/{id}/trace",
    ],
)
def test_a_12000_character_id_in_a_path_is_404_and_not_echoed(api: Api, path: str) -> None:
    response = api.client.get(path.format(id=LONG_ID))

    message = assert_error(response.status_code, response.json(), 404, "not_found")
    assert "at most 128" in message
    assert len(response.content) < 500


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/experiments", {"name": "n", "spec_id": LONG_ID}),
        ("/v1/runs", {"spec_id": LONG_ID}),
        ("/v1/replicas", {"spec_id": LONG_ID, "n_replicas": 2}),
        ("/v1/sandboxes", {"spec_id": LONG_ID}),
        ("/v1/experiments/compare", {"baseline_id": LONG_ID, "candidate_id": "exp_x"}),
        ("/v1/experiments/compare", {"baseline_id": "exp_x", "candidate_id": LONG_ID}),
        ("/v1/runs", {"spec_id": "s", "sandbox_id": LONG_ID}),
    ],
)
def test_a_12000_character_id_in_a_body_is_400(api: Api, path: str, body: dict[str, Any]) -> None:
    response = api.client.post(path, json=body)

    assert_error(response.status_code, response.json(), 400, "invalid_request")
    assert LONG_ID not in response.text


def test_a_spec_with_a_12000_character_id_is_a_spec_error(api: Api) -> None:
    response = api.upload(spec_yaml(LONG_ID))

    assert_error(response.status_code, response.json(), 400, "invalid_spec")


# --- a real server: 300 MB bodies and an alias bomb, while /health answers ----------------------------

BIG = 300 * MiB
ALIAS_BOMB = textwrap.dedent(
    """\
    version: 1
    id: bomb
    base: "debian:bookworm-slim"
    task: {prompt: "x"}
    agent: {type: cli, command: "true"}
    services:
      - {name: db, image: "postgres:16"}
    invariants:
      ok:
        check:
          type: sql
          service: db
          query: SELECT 1
          equals:
            a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]
    """
) + "".join(
    f"        {level}: &{level} [{', '.join(['*' + below] * 9)}]\n"
    for below, level in zip("abcdefgh", "bcdefghi", strict=True)
)
"""A billion laughs (9**9 strings from 700 bytes) in a field typed as any JSON value."""


@dataclass
class Server:
    url: str
    key: str
    process: subprocess.Popen[bytes]

    def rss_mib(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(kib) / 1024


@contextlib.contextmanager
def ks_serve(directory: Path, *options: str) -> Iterator[Server]:
    """`ks serve` as its own process, on a free port, with a SQLite store and one API key."""
    store_url = f"sqlite://{directory / 'keystone.db'}"
    store = open_store(store_url)
    key, _ = create_api_key(store, "limits")
    store.close()
    served = start_ks_serve(store_url, directory, *options)
    try:
        yield Server(served.url, key, served.process)
    finally:
        served.stop()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with ks_serve(tmp_path) as running:
        yield running


def post_big(server: Server, key: str | None, chunked: bool) -> tuple[int, float]:
    """POST a 300 MB JSON body over a raw socket, as fast as the server takes it; returns the status the
    server answered with and how long the answer took. The server may close the connection on the rest
    of the body: that is what it should do."""
    host, port = server.url.removeprefix("http://").split(":")
    head = ["POST /v1/experiments HTTP/1.1", f"Host: {host}", "Content-Type: application/json"]
    head += [f"Authorization: Bearer {key}"] if key else []
    head += ["Transfer-Encoding: chunked"] if chunked else [f"Content-Length: {BIG}"]
    chunk = b"[" + b" " * (MiB - 1)
    piece = (b"%x\r\n" % len(chunk) + chunk + b"\r\n") if chunked else chunk
    answer = b""
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        started = time.monotonic()
        connection.sendall(("\r\n".join(head) + "\r\n\r\n").encode())

        def send_body() -> None:
            try:
                for _ in range(BIG // MiB):
                    connection.sendall(piece)
            except OSError:
                pass  # the server answered and closed the connection

        sender = threading.Thread(target=send_body, daemon=True)
        sender.start()
        with contextlib.suppress(OSError):  # a reset after the answer
            while b"\r\n" not in answer and (received := connection.recv(4096)):
                answer += received
        elapsed = time.monotonic() - started
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_RDWR)
        sender.join(30)
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1") else 0
    return status, elapsed


def test_a_300_mb_body_is_refused_at_once_while_the_server_stays_small_and_answers_health(
    server: Server,
) -> None:
    health_times: list[float] = []
    done = threading.Event()

    def probe_health() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            while not health_times or not done.is_set():
                started = time.monotonic()
                assert client.get("/health").status_code == 200
                health_times.append(time.monotonic() - started)
                time.sleep(0.02)

    prober = threading.Thread(target=probe_health, daemon=True)
    before = server.rss_mib()
    prober.start()
    try:
        results = {
            (key is not None, chunked): post_big(server, key, chunked)
            for key in (None, server.key)
            for chunked in (False, True)
        }
        bomb_started = time.monotonic()
        bomb = httpx.post(
            f"{server.url}/v1/specs",
            content=ALIAS_BOMB,
            headers={"Authorization": f"Bearer {server.key}", "Content-Type": "application/x-yaml"},
            timeout=60,
        )
        bomb_s = time.monotonic() - bomb_started
    finally:
        done.set()
        prober.join(30)
    after = server.rss_mib()

    assert {(keyed, chunked): status for (keyed, chunked), (status, _) in results.items()} == {
        (False, False): 401,
        (False, True): 401,
        (True, False): 413,
        (True, True): 413,
    }
    assert max(elapsed for _, elapsed in results.values()) < 5
    assert bomb.status_code == 400 and bomb.json()["error"] == "invalid_spec", bomb.text
    assert bomb_s < 5
    assert after - before < 64, f"the server grew from {before:.0f} to {after:.0f} MiB"
    assert health_times and max(health_times) < 2


# --- errors stay small --------------------------------------------------------------------------------


def test_an_error_never_echoes_a_huge_input_or_lists_every_problem(api: Api) -> None:
    api.context.store.put_sandbox(SandboxRecord("sb-x", "s", "ready", "test", datetime.now(UTC), None))
    seed = api.client.post("/v1/runs", json={"spec_id": "s", "seed": "7" * MiB})
    duration = api.client.post("/v1/sandboxes/sb-x/timeout", json={"timeout": "a" * MiB})
    key = api.client.post("/v1/experiments/exp-x/extend", json={"replicas": {"k" * MiB: 2}})
    many = api.client.post(
        "/v1/experiments", json={"name": "n", "spec_id": "s", "secrets": {f"K{i}": i for i in range(50_000)}}
    )

    for small in (seed, duration, key):  # a value, a parsed value, a mapping key in the error's location
        assert_error(small.status_code, small.json(), 400, "invalid_request")
        assert len(small.content) < 4096
    message = assert_error(many.status_code, many.json(), 400, "invalid_request")
    assert "and 49999 more problems" in message
    assert len(many.json()["details"]["errors"]) == 20
    assert len(many.content) < 8192


def test_the_limits_are_documented(api: Api) -> None:
    document = api.client.get("/openapi.json").json()

    assert "larger than 8.0 MiB is refused unread (413)" in document["info"]["description"]
    posts = [operations["post"] for operations in document["paths"].values() if "post" in operations]
    assert all("413" in operation["responses"] for operation in posts)


def test_ks_serve_takes_its_body_limit_from_max_body_mib(tmp_path: Path) -> None:
    with ks_serve(tmp_path, "--max-body-mib", "0.5") as running:
        response = httpx.post(
            f"{running.url}/v1/experiments",
            json={"name": "n", "spec_id": "s", "metadata": {"pad": "x" * 600_000}},
            headers={"Authorization": f"Bearer {running.key}"},
        )

    message = assert_error(response.status_code, response.json(), 413, "payload_too_large")
    assert "512.0 KiB" in message


def test_a_spec_stored_before_the_loader_had_limits_is_listed_without_expanding_it(api: Api) -> None:
    """A store may hold a spec text no upload would accept today (written by an older server): listing
    it reads its description with the loader's limits instead of expanding the aliases."""
    bomb = ALIAS_BOMB.replace("id: bomb", "id: bomb\ndescription: *i")
    api.context.store.put_spec("default", "stored-bomb", bomb, "0" * 64)

    started = time.monotonic()
    listed = api.client.get("/v1/specs/stored-bomb")

    assert listed.status_code == 200, listed.text
    assert listed.json()["description"] == ""
    assert time.monotonic() - started < 5
