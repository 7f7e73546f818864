"""`ks eval run` stopped mid-replica leaves nothing on the engine: SIGTERM and SIGINT end it through its
clean-up path within seconds, also as PID 1 of its own pid namespace (as in a container, where SIGTERM has
no default action); SIGKILL leaves the clean-up to its reaper container, and the closing of its server's
port to sandboxes to that port's keeper. A real `ks` process, a real engine."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from polarity_keystone.sandbox import DockerBackend
from polarity_keystone.sandbox import _labels as labels
from tests.host_rules import ports_open_to_sandboxes
from tests.waiting import wait_until

pytestmark = pytest.mark.docker

BOOT_TIMEOUT_S = 120.0
EXIT_WITHIN_S = 5.0
GONE_WITHIN_S = 10.0


def sleeping_spec(spec_id: str) -> str:
    return textwrap.dedent(
        f"""\
        version: 1
        id: {spec_id}
        description: an agent that runs until it is stopped
        base: "debian:bookworm-slim"
        task: {{prompt: "wait"}}
        agent: {{type: cli, command: "sleep 300"}}
        invariants:
          ok: {{check: {{type: command_exit, command: "true"}}}}
        parallelism: {{replicas: 2}}
        """
    )


def left_of_spec(client: docker.DockerClient, spec_id: str) -> tuple[list[str], list[str]]:
    """Names of the spec's containers and networks still on the engine."""
    selector = {"label": f"{labels.SPEC}={spec_id}"}
    containers = client.containers.list(all=True, filters=selector, ignore_removed=True)
    return [c.name or "" for c in containers], [n.name or "" for n in client.networks.list(filters=selector)]


class Run:
    """`ks eval run` of a spec whose agents sleep, in its own directory (its embedded store)."""

    def __init__(self, folder: Path, *, pid_1: bool) -> None:
        self.spec_id = f"stopped-{uuid.uuid4().hex[:10]}"
        spec = folder / "spec.yaml"
        spec.write_text(sleeping_spec(self.spec_id))
        command = [sys.executable, "-m", "polarity_keystone", "eval", "run", str(spec)]
        if pid_1:
            command = ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", *command]
        self.log = folder / "ks.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT)

    def wait_for_agents(self, client: docker.DockerClient) -> None:
        def agents_running() -> bool:
            assert self.process.poll() is None, self.log.read_text()
            return len(client.containers.list(filters={"label": f"{labels.SPEC}={self.spec_id}"})) >= 2

        wait_until(agents_running, BOOT_TIMEOUT_S, "both replicas' agents running")

    def server_port(self) -> int:
        """The port of its embedded server, which its agents may reach."""
        found = re.search(r"embedded \(http://127\.0\.0\.1:(\d+)", self.log.read_text())
        assert found, self.log.read_text()
        return int(found[1])

    def signal(self, signum: int, *, pid_1: bool) -> None:
        """`signum` to `ks` itself: as PID 1 it is unshare's only child, which unshare does not forward to."""
        target = self.process.pid
        if pid_1:
            children = Path(f"/proc/{target}/task/{target}/children").read_text().split()
            target = int(children[0])
        os.kill(target, signum)


@pytest.fixture
def runs(tmp_path: Path, backend: DockerBackend) -> Iterator[list[Run]]:
    started: list[Run] = []
    yield started
    for run in started:
        if run.process.poll() is None:
            run.process.kill()
        run.process.wait()
        for name in left_of_spec(backend.client, run.spec_id)[0]:
            backend.client.containers.get(name).remove(force=True)


def _start(runs: list[Run], folder: Path, backend: DockerBackend, *, pid_1: bool = False) -> Run:
    run = Run(folder, pid_1=pid_1)
    runs.append(run)
    run.wait_for_agents(backend.client)
    return run


def _assert_nothing_left(backend: DockerBackend, run: Run) -> None:
    wait_until(
        lambda: left_of_spec(backend.client, run.spec_id) == ([], []),
        GONE_WITHIN_S,
        f"no containers or networks of {run.spec_id}",
    )


def test_sigkill_mid_replica_leaves_nothing_within_10_s(
    runs: list[Run], tmp_path: Path, backend: DockerBackend
) -> None:
    run = _start(runs, tmp_path, backend)

    port = run.server_port()
    assert port in ports_open_to_sandboxes()
    run.process.send_signal(signal.SIGKILL)
    run.process.wait()

    _assert_nothing_left(backend, run)
    wait_until(
        lambda: port not in ports_open_to_sandboxes(), GONE_WITHIN_S, f"port {port} closed to sandboxes"
    )


unshare = pytest.mark.skipif(
    shutil.which("unshare") is None, reason="unshare (util-linux) makes pid namespaces"
)


@pytest.mark.parametrize(
    ("signum", "pid_1"),
    [
        pytest.param(signal.SIGTERM, False, id="SIGTERM"),
        pytest.param(signal.SIGINT, False, id="SIGINT"),
        pytest.param(signal.SIGTERM, True, id="SIGTERM-as-PID-1", marks=unshare),
    ],
)
def test_sigterm_and_sigint_end_the_run_within_seconds_and_leave_nothing(
    runs: list[Run], tmp_path: Path, backend: DockerBackend, signum: int, pid_1: bool
) -> None:
    run = _start(runs, tmp_path, backend, pid_1=pid_1)

    stopped = time.monotonic()
    run.signal(signum, pid_1=pid_1)
    code = run.process.wait(EXIT_WITHIN_S * 4)
    took = time.monotonic() - stopped

    assert took < EXIT_WITHIN_S, f"exited {took:.1f} s after {signal.Signals(signum).name}"
    assert code == 128 + signum, run.log.read_text()
    assert "interrupted" in run.log.read_text()
    _assert_nothing_left(backend, run)
