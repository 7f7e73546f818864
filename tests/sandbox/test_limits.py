"""The agent user, capabilities and limits every sandbox gets (issue 9, finding 3), and the clear input
errors for what an engine cannot enforce (an unknown user, an unregistered runtime)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from polarity_keystone.cli import main
from polarity_keystone.engine import PreparedSpec, RunOptions, run_experiment
from polarity_keystone.sandbox import DockerBackend, SandboxError, SandboxPlan, ServiceContainer
from polarity_keystone.sandbox._hardening import AGENT_CAPABILITIES, limits_from_events
from polarity_keystone.spec import Service, SpecError

WHO_AM_I = """
version: 1
id: who-am-i
base: ubuntu:24.04
task: {prompt: "who runs me?"}
agent:
  type: cli
  command: >-
    echo "uid=$(id -u) home=$HOME"; touch data/new.txt && echo "wrote fixture dir";
    echo "fixture owner=$(stat -c %u data/in.txt)"; echo more >> data/in.txt && echo "changed fixture"
  USER
fixtures:
  - {type: directory, source: data, path: data}
invariants:
  ran: {check: {type: command_exit, command: "true"}}
"""


def test_limit_counters_become_reasons() -> None:
    events = "max 17\noom_control 0\nunder_oom 0\noom_kill 2\n"

    reasons = limits_from_events(events, pids_limit=128, memory_bytes=256 * 1024**2)

    assert reasons == [
        "the agent hit the pids limit (128 processes, resources.pids): 17 process or thread creations "
        "were refused",
        "the agent hit the memory limit (256 MiB, resources.memory): 2 process(es) killed",
    ]
    assert limits_from_events("max 0\noom_kill 0\n", 128, 1) == []


@pytest.mark.docker
def test_the_agent_runs_unprivileged_and_owns_its_workspace_and_fixtures(
    prepared_from: Callable[..., PreparedSpec], backend: DockerBackend
) -> None:
    prepared = prepared_from(WHO_AM_I.replace("USER", ""), {"data/in.txt": "x\n"})

    replica = run_experiment(prepared, backend, RunOptions(seed=1)).scenarios[0].replicas[0]

    assert replica.agent_output.splitlines() == [
        "uid=10001 home=/home/agent",
        "wrote fixture dir",
        "fixture owner=10001",
        "changed fixture",
    ], replica.agent_stderr


@pytest.mark.docker
def test_agent_user_root_opts_in(prepared_from: Callable[..., PreparedSpec], backend: DockerBackend) -> None:
    prepared = prepared_from(WHO_AM_I.replace("USER", "user: root"), {"data/in.txt": "x\n"})

    replica = run_experiment(prepared, backend, RunOptions(seed=1)).scenarios[0].replicas[0]

    assert replica.agent_output.splitlines()[0] == "uid=0 home=/root"


@pytest.mark.docker
def test_an_agent_user_the_image_does_not_have_is_a_spec_error(
    prepared_from: Callable[..., PreparedSpec],
) -> None:
    with pytest.raises(SpecError, match=r"spec\.yaml:\d+:\d+: agent\.user: agent\.user 'nobody-here'"):
        prepared_from(WHO_AM_I.replace("USER", "user: nobody-here"), {"data/in.txt": "x\n"})


@pytest.mark.docker
def test_a_runtime_the_engine_does_not_have_is_a_spec_error(
    prepared_from: Callable[..., PreparedSpec],
) -> None:
    spec = (WHO_AM_I.replace("USER", "")) + "resources: {runtime: no-such-runtime}\n"

    with pytest.raises(
        SpecError, match=r"resources\.runtime: the Docker runtime 'no-such-runtime' is not registered"
    ):
        prepared_from(spec, {"data/in.txt": "x\n"})


@pytest.mark.docker
def test_a_server_runtime_must_be_registered(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="'no-such-runtime' is not registered"):
        DockerBackend(runtime="no-such-runtime")

    code = main(["serve", "--runtime", "no-such-runtime", "--store", f"sqlite://{tmp_path / 'k.db'}"])

    assert code == 2


@pytest.mark.docker
def test_agent_and_service_containers_carry_capability_and_resource_limits(
    backend: DockerBackend, base_image: str, service_plan: Callable[[Service], ServiceContainer], run_id: str
) -> None:
    plan = SandboxPlan(
        spec_id="limits",
        run_id=run_id,
        image=base_image,
        services=[service_plan(Service(name="cache", image="redis:7"))],
        cpu=1.0,
        memory_bytes=512 * 1024**2,
        pids_limit=200,
    )
    sandbox = backend.create(plan)
    try:
        assert sandbox.agent is not None
        agent = sandbox.agent.attrs["HostConfig"]
        service = sandbox.service_containers["cache"].attrs["HostConfig"]
    finally:
        sandbox.destroy()

    assert agent["CapDrop"] == ["ALL"]
    assert sorted(agent["CapAdd"]) == sorted(AGENT_CAPABILITIES)
    assert "no-new-privileges" in agent["SecurityOpt"]
    assert (agent["PidsLimit"], agent["Memory"], agent["NanoCpus"]) == (200, 512 * 1024**2, 10**9)
    assert (service["PidsLimit"], service["Memory"], service["NanoCpus"]) == (200, 512 * 1024**2, 10**9)
    assert "no-new-privileges" in service["SecurityOpt"]


@pytest.mark.docker
def test_a_spec_cannot_trade_the_servers_runtime_for_its_own(
    backend: DockerBackend, base_image: str, run_id: str
) -> None:
    """An operator who runs agents under gVisor keeps them there: an untrusted spec's
    `resources.runtime: runc` does not take its agent back to the host kernel."""
    gvisor = DockerBackend(backend.client, owner=backend.owner, runtime="runsc")
    sandbox = gvisor.create(SandboxPlan(spec_id="runtime", run_id=run_id, image=base_image, runtime="runc"))
    try:
        assert sandbox.agent is not None
        assert sandbox.agent.attrs["HostConfig"]["Runtime"] == "runsc"
    finally:
        sandbox.destroy()
