"""An agent inside a sandbox calls the server that booted it, for real: with its `ks_sb_` token it reads its
sandbox and reports a trace event, which the server stores; from the same sandbox (egress denied by its
spec) another port of the host, where a server listens, stays unreachable. Against an embedded server
(`Keystone.local`) and a `ks serve` run as its own process."""

from __future__ import annotations

import json
import shlex
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from polarity_keystone import Keystone
from polarity_keystone.server import create_api_key
from polarity_keystone.store import open_store
from tests.host_rules import ports_open_to_sandboxes
from tests.ks_serve import start_ks_serve
from tests.sandbox.host_listener import HostServer, serve_on_every_address
from tests.waiting import wait_until

pytestmark = pytest.mark.docker

SPEC = textwrap.dedent(
    """\
    version: 1
    id: reach
    description: an agent that calls its server
    base: "ubuntu:24.04"
    task: {prompt: "call home"}
    agent: {type: cli, command: "true"}
    network:
      egress:
        default: deny
    invariants:
      ok: {check: {type: command_exit, command: "true"}}
    """
)
PROBE = """\
import json, os, socket, sys, urllib.error, urllib.request

base, sandbox = os.environ["KEYSTONE_BASE_URL"], os.environ["KEYSTONE_SANDBOX_ID"]
headers = {"Authorization": "Bearer " + os.environ["KEYSTONE_API_KEY"], "Content-Type": "application/json"}

def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())

status, got = call("GET", "/v1/sandboxes/" + sandbox)
event = {"event_type": "tool_call", "tool": "lookup", "phase": "end", "duration_ms": 12}
posted, accepted = call("POST", "/v1/sandboxes/" + sandbox + "/trace", {"events": [event]})
try:
    socket.create_connection((urllib.parse.urlsplit(base).hostname, int(sys.argv[1])), timeout=2).close()
    other = "reached"
except OSError as exc:
    other = type(exc).__name__
seen = {"base": base, "get": [status, got["id"]], "post": [posted, accepted], "other": other}
print(json.dumps(seen))
with open("/workspace/reach.json", "w") as out:
    json.dump(seen, out)
"""
REPLICA_SPEC = textwrap.dedent(
    """\
    version: 1
    id: reach-run
    description: a replica's agent that calls its server
    base: "ubuntu:24.04"
    task: {prompt: "call home"}
    agent: {type: cli, path: agent, command: "python3 /opt/agent/probe.py OTHER_PORT"}
    network:
      egress:
        default: deny
    invariants:
      read_its_sandbox: {check: {type: file_content, path: reach.json, contains: '"get": [200, '}}
      reported: {check: {type: file_content, path: reach.json, contains: '"accepted": 1'}}
      no_other_port: {check: {type: file_content, path: reach.json, contains: '"other": "TimeoutError"'}}
    """
)


@pytest.fixture
def other_port() -> Iterator[HostServer]:
    """A server on every address of the host, on another port: what the agent must not reach."""
    server = serve_on_every_address()
    yield server
    server.shutdown()
    server.server_close()


def _agent_calls_home(ks: Keystone, other: HostServer, spec: str = SPEC) -> None:
    ks.specs.create(spec)
    sandbox = ks.sandboxes.create("reach", timeout="5m")
    try:
        command = f"python3 -c {shlex.quote(PROBE)} {other.port}"
        ran = ks.sandboxes.run_command(sandbox.id, command, timeout="60s")
        assert ran.exit_code == 0, ran.stderr
        seen = json.loads(ran.stdout)
        trace = ks.sandboxes.get_trace(sandbox.id)
    finally:
        ks.sandboxes.destroy(sandbox.id)

    port = ks.base_url.rsplit(":", 1)[1]
    assert seen["base"] == f"http://keystone-server:{port}"  # not the host's 127.0.0.1
    assert seen["get"] == [200, sandbox.id]
    assert seen["post"] == [200, {"accepted": 1}]
    assert [(e.event_type, e.tool) for e in trace.events] == [("tool_call", "lookup")]
    assert seen["other"] in ("TimeoutError", "timeout") and other.hits == 0


@pytest.mark.parametrize("runtime", ["runc", "runsc"])
def test_an_agent_reaches_the_embedded_server_and_no_other_host_port(
    tmp_path: Path, other_port: HostServer, runtime: str
) -> None:
    """Under gVisor (`runsc`) too, whose network stack is its own: the same host rule holds."""
    spec = SPEC + f"resources: {{runtime: {runtime}}}\n"
    with Keystone.local(tmp_path / ".keystone") as ks:
        _agent_calls_home(ks, other_port, spec)
        port = int(ks.base_url.rsplit(":", 1)[1])
        assert port in ports_open_to_sandboxes()
    # The server closed, and its exception goes with it: its keeper deletes the rule.
    wait_until(lambda: port not in ports_open_to_sandboxes(), 10, f"port {port} closed to sandboxes")


def test_an_agent_reaches_a_ks_serve_on_every_address_and_no_other_host_port(
    tmp_path: Path, other_port: HostServer
) -> None:
    store_url = f"sqlite://{tmp_path / 'shared.db'}"
    store = open_store(store_url)
    try:
        key, _ = create_api_key(store, "operator")
    finally:
        store.close()
    server = start_ks_serve(store_url, tmp_path, "--host", "0.0.0.0")  # where sandbox bridges reach it
    try:
        with Keystone(api_key=key, base_url=server.url) as ks:
            _agent_calls_home(ks, other_port)
    finally:
        assert server.stop() == 0, server.log()


def test_the_agent_of_an_experiment_replica_reaches_the_embedded_server(
    tmp_path: Path, other_port: HostServer
) -> None:
    """The `ks eval run` path: a replica's agent, booted by the runner, calls home the same way."""
    (tmp_path / "agent").mkdir()
    (tmp_path / "agent" / "probe.py").write_text(PROBE)
    spec = REPLICA_SPEC.replace("OTHER_PORT", str(other_port.port))
    with Keystone.local(tmp_path / ".keystone") as ks:
        ks.specs.create(spec, source_dir=tmp_path)
        results = ks.experiments.run_and_wait(ks.experiments.create("reach", "reach-run").id, timeout=240)
        (scenario,) = results.scenarios
        (replica,) = scenario.replicas
        trace = ks.sandboxes.get_trace(replica.sandbox_id)

    assert (results.status, results.passed) == ("completed", 1), replica.model_dump()
    assert [(e.event_type, e.tool) for e in trace.events] == [("tool_call", "lookup")]
    assert other_port.hits == 0
