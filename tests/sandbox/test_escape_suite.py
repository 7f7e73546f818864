"""The escape suite: agent scripts that try to leave or weaken their sandbox, and must all fail, under runc
and under gVisor (`resources.runtime: runsc`; scripts/setup-docker registers it, so CI runs both).

Every probe runs through the engine, as a spec's agent would: the agent user, capabilities, limits and
runtime are the ones a real run gets. Each asserts the concrete failure (the errno, the limit named in
the replica's reasons), not only that something went wrong.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from polarity_keystone.engine import PreparedSpec, RunOptions, run_experiment
from polarity_keystone.results import ReplicaResult
from polarity_keystone.sandbox import DockerBackend, ImageResolver, disk_quota_problem
from polarity_keystone.spec import SpecError

pytestmark = pytest.mark.docker

PROBES = (Path(__file__).parent / "escape_probes.py").read_text()
RUNTIMES = ["runc", "runsc"]

# Each probe's failure, by runtime: the errno names that mean "refused" there.
AGENT_USER_FAILURES = {
    "docker_socket": {"ENOENT"},
    "docker_api_tcp": {"unreachable"},
    "mount_proc": {"EPERM"},
    "remount_sysfs_writable": {"EPERM"},
    "write_proc_sys": {"EACCES", "EROFS"},
    "load_kernel_module": {"EPERM", "ENOSYS"},
    "mknod_block_device": {"EPERM", "ENXIO"},
    "change_iptables": {"EPERM", "gVisor netstack"},
    "raw_socket": {"EPERM", "EAFNOSUPPORT"},
    "setuid_binary": {"EACCES"},
    "setuid_syscall": {"EPERM"},
    "ptrace_init": {"EPERM"},
    "write_etc_passwd": {"EACCES"},
}
ROOT_FAILURES = {
    # What the dropped capabilities (SYS_ADMIN, SYS_MODULE, MKNOD, NET_ADMIN, NET_RAW) refuse even to an
    # agent that opted in to root; the Docker socket is absent for everyone.
    name: AGENT_USER_FAILURES[name]
    for name in (
        "docker_socket",
        "docker_api_tcp",
        "mount_proc",
        "remount_sysfs_writable",
        "load_kernel_module",
        "mknod_block_device",
        "change_iptables",
        "raw_socket",
    )
}


def _spec(
    runtime: str, command: str, *, user: str | None = None, resources: str = "", setup: str = ""
) -> str:
    resources_block = ", ".join(
        part for part in [resources, "runtime: runsc" if runtime == "runsc" else ""] if part
    )
    return f"""
version: 1
id: escape-{runtime}
base: ubuntu:24.04
task: {{prompt: "leave the sandbox"}}
{setup}
agent:
  type: cli
  path: agent
  command: {json.dumps(command)}
  timeout: 45s
  {f"user: {user}" if user else ""}
resources: {{{resources_block}}}
invariants:
  contained: {{check: {{type: command_exit, command: "true"}}}}
"""


SETUID_SETUP = """
setup:
  commands:
    - cp /bin/cat /usr/local/bin/rootcat && chmod 4755 /usr/local/bin/rootcat
    - echo root-only > /root/flag && chmod 600 /root/flag
"""


@pytest.fixture
def replica(
    prepared_from: Callable[..., PreparedSpec], backend: DockerBackend
) -> Callable[..., ReplicaResult]:
    def run(spec: str) -> ReplicaResult:
        prepared = prepared_from(spec, {"agent/escape_probes.py": PROBES})
        return run_experiment(prepared, backend, RunOptions(seed=1)).scenarios[0].replicas[0]

    return run


def _outcomes(result: ReplicaResult) -> dict[str, dict[str, object]]:
    lines = [json.loads(line) for line in result.agent_output.splitlines() if line.startswith("{")]
    return {line["probe"]: line for line in lines}


def _assert_refused(outcomes: dict[str, dict[str, object]], expected: dict[str, set[str]]) -> None:
    missing = sorted(set(expected) - set(outcomes))
    assert not missing, f"probes that did not report: {missing}"
    escaped = {name: outcomes[name] for name in expected if outcomes[name]["escaped"]}
    assert not escaped, f"escaped: {escaped}"
    wrong = {
        name: outcomes[name]["failure"]
        for name in expected
        if outcomes[name]["failure"] not in expected[name]
    }
    assert not wrong, f"refused, but not as expected: {wrong}"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_every_escape_of_the_unprivileged_agent_fails(
    runtime: str, replica: Callable[..., ReplicaResult]
) -> None:
    result = replica(_spec(runtime, "python3 /opt/agent/escape_probes.py", setup=SETUID_SETUP))

    outcomes = _outcomes(result)
    assert outcomes["whoami"]["detail"] == "10001", result.agent_output
    _assert_refused(outcomes, AGENT_USER_FAILURES)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_dropped_capabilities_hold_for_an_agent_that_opted_in_to_root(
    runtime: str, replica: Callable[..., ReplicaResult]
) -> None:
    result = replica(_spec(runtime, "python3 /opt/agent/escape_probes.py", user="root"))

    outcomes = _outcomes(result)
    assert outcomes["whoami"]["detail"] == "0", result.agent_output
    _assert_refused(outcomes, ROOT_FAILURES)


FORK_BOMB = (
    "python3 -c 'import os, time\n"
    "n = 0\n"
    "try:\n"
    "    while n < 5000:\n"
    "        if os.fork() == 0:\n"
    "            time.sleep(5); os._exit(0)\n"
    "        n += 1\n"
    "finally:\n"
    '    print("forked", n, flush=True)\''
)


def _explanation(result: ReplicaResult) -> str:
    return " ".join([result.error or "", *result.reasons])


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_fork_bomb_stops_at_the_pids_limit_and_the_result_says_so(
    runtime: str, replica: Callable[..., ReplicaResult]
) -> None:
    result = replica(_spec(runtime, FORK_BOMB, resources="pids: 128"))

    assert result.status in ("fail", "error")
    assert "pids limit (128" in _explanation(result), result
    assert "forked 5000" not in result.agent_output


MEMORY_BOMB = (
    "python3 -c 'chunks = []\n"
    "for n in range(32):\n"
    '    chunks.append(bytearray(64 * 1024 * 1024)); print("allocated", (n + 1) * 64, flush=True)\''
)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_memory_bomb_is_killed_at_the_memory_limit(
    runtime: str, replica: Callable[..., ReplicaResult]
) -> None:
    result = replica(_spec(runtime, MEMORY_BOMB, resources="memory: 256Mi"))

    assert result.status in ("fail", "error")
    assert "allocated 2048" not in result.agent_output
    assert "memory limit (256 MiB" in _explanation(result), result


DISK_FILL = "dd if=/dev/zero of=/workspace/fill bs=1M count=2048 2>&1; df -m /workspace | tail -1"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_disk_fill_stops_at_resources_disk_or_the_spec_is_refused(
    runtime: str,
    replica: Callable[..., ReplicaResult],
    resolver: ImageResolver,
) -> None:
    """Where the engine has a storage quota (CI: setup-docker puts the data-root on XFS with pquota), the
    agent's 2 GiB write stops at 100 MiB with ENOSPC; where it has none, the spec is refused up front."""
    spec = _spec(runtime, DISK_FILL, resources="disk: 100Mi")
    problem = disk_quota_problem(resolver.client, resolver.local("base").ref)
    if problem is not None:
        with pytest.raises(
            SpecError, match=r"resources\.disk: this Docker engine cannot cap a container's disk"
        ):
            replica(spec)
        return

    result = replica(spec)

    assert "No space left on device" in result.agent_output, result.agent_output
    assert result.agent_ms < 30_000
