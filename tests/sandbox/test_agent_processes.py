"""Which processes in the agent container are the agent's (the /proc probe), and `settle_agent`: wait for
them until the deadline, then SIGKILL them, whoever they run as and whatever they call themselves."""

from __future__ import annotations

import shlex
import time
from collections.abc import Iterator
from typing import Any

import pytest

from polarity_keystone.sandbox import AgentProcess, DockerBackend, DockerSandbox, ExecResult, SandboxPlan
from polarity_keystone.sandbox import _docker as docker_module
from polarity_keystone.sandbox._processes import agent_processes

real_exec = docker_module._exec


def _stat(pid: int, name: str, state: str = "S", parent: int = 1, start: int = 1000) -> str:
    """A /proc/<pid>/stat line: 20 fields after the name, the start time (clock ticks) the 20th."""
    after = [state, str(parent), *["0"] * 17, str(start), "0", "0"]
    return f"{pid} ({name}) {' '.join(after)}"


def _probe_output(probe: int, *stats: tuple[int, str]) -> str:
    return "\n".join([str(probe), *(f"{pid} {line}" for pid, line in stats)]) + "\n"


INIT = (1, _stat(1, "docker-init", parent=0, start=100))
MAIN = (7, _stat(7, "sleep", start=101))


def test_init_the_container_command_and_the_probe_are_not_the_agent() -> None:
    listing = _probe_output(
        40, INIT, MAIN, (33, _stat(33, "sleep", start=900)), (40, _stat(40, "sh", start=950))
    )

    assert agent_processes(listing) == [AgentProcess(33, "sleep")]


def test_exited_processes_waiting_to_be_reaped_are_gone() -> None:
    listing = _probe_output(40, INIT, MAIN, (33, _stat(33, "sh", state="Z", start=900)))

    assert agent_processes(listing) == []


def test_a_name_with_parentheses_and_fake_fields_is_read_up_to_the_last_parenthesis() -> None:
    name = "x) Z 1 0 0 0 (y"
    listing = _probe_output(40, INIT, MAIN, (33, _stat(33, name, start=900)))

    assert agent_processes(listing) == [AgentProcess(33, name)], "its own fields say running, not Z"


def test_a_record_that_does_not_parse_counts_as_the_agent_s() -> None:
    # A name with a newline: the probe's `read` keeps only the part before it.
    listing = _probe_output(40, INIT, MAIN, (33, "33 (evil"))

    assert agent_processes(listing) == [AgentProcess(33, "?")]


def test_output_that_is_not_the_probe_s_is_an_error() -> None:
    with pytest.raises(ValueError, match="instead of its PID"):
        agent_processes("sh: 1: cannot open /proc\n")


@pytest.fixture(scope="module")
def sandbox(backend: DockerBackend, base_image: str) -> Iterator[DockerSandbox]:
    plan = SandboxPlan(spec_id="settle", run_id="test-settle", image=base_image, timeout_s=600)
    sandbox = backend.create(plan)
    yield sandbox
    sandbox.destroy()


@pytest.mark.docker
def test_settle_returns_at_once_when_nothing_is_left(sandbox: DockerSandbox) -> None:
    sandbox.exec("true")

    report = sandbox.settle_agent(deadline=time.monotonic() + 30)

    assert (report.lingering, report.killed) == ((), ())
    assert report.waited_ms < 5000


@pytest.mark.docker
def test_settle_waits_for_a_process_that_ends_before_the_deadline(sandbox: DockerSandbox) -> None:
    sandbox.exec("(sleep 1; echo late > late.txt) > /dev/null 2>&1 &")

    report = sandbox.settle_agent(deadline=time.monotonic() + 30)

    assert sorted(process.name for process in report.lingering) == ["sh", "sleep"]
    assert report.killed == ()
    assert sandbox.read_file("late.txt") == b"late\n"


@pytest.mark.docker
def test_settle_kills_every_process_at_the_deadline_whoever_it_runs_as_and_whatever_its_name(
    sandbox: DockerSandbox,
) -> None:
    sandbox.exec("cp /bin/sleep '/tmp/x\n1 (init'")
    sandbox.exec("('/tmp/x\n1 (init' 1000 &) > /dev/null 2>&1", user="10001:10001")
    sandbox.exec("(sleep 1000 &) > /dev/null 2>&1")
    sandbox.exec("(while :; do sleep 1000 & sleep 0.05; done) > /dev/null 2>&1 &", user="10001:10001")

    started = time.monotonic()
    report = sandbox.settle_agent(deadline=time.monotonic() + 1)

    assert time.monotonic() - started < 15
    assert {"?", "sleep", "sh"} <= {process.name for process in report.killed}
    assert sandbox.settle_agent(deadline=time.monotonic()).lingering == (), "nothing survived"
    assert sandbox.exec("echo still up").stdout == "still up\n", "init and the container's command live on"


@pytest.mark.docker
def test_a_name_holding_a_separator_hides_no_process(sandbox: DockerSandbox) -> None:
    """A process name is the agent's to choose, any byte but NUL: the probe's boundary is random, so no name
    can end the listing early and hide the processes listed after it."""
    sandbox.exec("cp /bin/sleep \"$(printf '/tmp/a\\001b--keystone-')\"")
    sandbox.exec("(\"$(printf '/tmp/a\\001b--keystone-')\" 1000 &) > /dev/null 2>&1")
    for _ in range(5):
        sandbox.exec("(sleep 1000 &) > /dev/null 2>&1")

    report = sandbox.settle_agent(deadline=time.monotonic())

    assert {"a\x01b--keystone-", "sleep"} <= {process.name for process in report.killed}
    assert sandbox.settle_agent(deadline=time.monotonic()).lingering == (), "nothing hid from the kill"


@pytest.mark.docker
def test_the_diff_after_settling_is_read_by_the_settle_probe_unless_a_command_ran_since(
    sandbox: DockerSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox.snapshot()
    sandbox.exec("echo a > a.txt")
    sandbox.settle_agent(deadline=time.monotonic() + 30)
    execs: list[object] = []

    def counted(*args: Any, **kwargs: Any) -> ExecResult:
        execs.append(args)
        return real_exec(*args, **kwargs)

    monkeypatch.setattr(docker_module, "_exec", counted)

    assert sandbox.diff().added == ["a.txt"]
    assert execs == [], "the settle probe read the workspace: no exec of its own"

    sandbox.snapshot()
    sandbox.exec("echo b > b.txt")
    sandbox.settle_agent(deadline=time.monotonic() + 30)
    sandbox.exec("echo c > c.txt")  # after the probe: its reading no longer holds
    assert sandbox.diff().added == ["b.txt", "c.txt"]


BOMB = """
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
"""


@pytest.mark.docker
def test_settle_stops_a_fork_bomb_left_running(backend: DockerBackend, base_image: str) -> None:
    plan = SandboxPlan(spec_id="settle", run_id="test-settle-bomb", image=base_image, pids_limit=128)
    sandbox = backend.create(plan)
    try:
        # Each process forks for ever and shrugs off the failures once the pids limit is reached.
        sandbox.exec(f"python3 -c {shlex.quote(BOMB)} > /dev/null 2>&1 &", user="10001:10001")
        time.sleep(1)

        started = time.monotonic()
        report = sandbox.settle_agent(deadline=time.monotonic())

        assert time.monotonic() - started < 30
        assert len(report.killed) > 100, "the bomb filled the pids limit of 128"
        assert sandbox.settle_agent(deadline=time.monotonic()).lingering == ()
        assert sandbox.exec("echo still up").stdout == "still up\n"
    finally:
        sandbox.destroy()
