"""`limits_hit` right after `settle_agent` answers from the counters the settle probe read in the same
exec (one exec less per replica), and reads them afresh once anything ran in the agent container since."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from polarity_keystone.sandbox import DockerBackend, DockerSandbox, ImageResolver, SandboxPlan
from polarity_keystone.sandbox import _docker as docker_sandbox

pytestmark = pytest.mark.docker

PIDS_LIMIT = 40


@pytest.fixture
def sandbox(backend: DockerBackend, resolver: ImageResolver) -> Iterator[DockerSandbox]:
    image = resolver.local("base").ref
    plan = SandboxPlan(
        spec_id="settle-limits", run_id=f"test-{uuid.uuid4().hex[:10]}", image=image, pids_limit=PIDS_LIMIT
    )
    sandbox = backend.create(plan)
    yield sandbox
    sandbox.destroy()


@pytest.fixture
def execs(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The commands the Docker backend runs in containers, counted around its real exec."""
    commands: list[Any] = []
    real = docker_sandbox._exec

    def counting(container: Any, command: Any, **kwargs: Any) -> Any:
        commands.append(command)
        return real(container, command, **kwargs)

    monkeypatch.setattr(docker_sandbox, "_exec", counting)
    return commands


def test_a_pids_limit_hit_is_reported_from_the_settle_probe(sandbox: DockerSandbox, execs: list[Any]) -> None:
    sandbox.exec(f"for i in $(seq {2 * PIDS_LIMIT}); do sleep 60 & done 2>/dev/null; true")
    sandbox.settle_agent(deadline=time.monotonic())
    settled = len(execs)

    limits = sandbox.limits_hit()

    assert len(execs) == settled, "limits_hit ran a command of its own"
    assert len(limits) == 1 and "pids" in limits[0], limits
    sandbox.exec("true")
    assert sandbox.limits_hit() == limits, "read afresh, the counters say the same"
    assert len(execs) == settled + 2, "after a command, limits_hit reads the counters itself"


def test_no_limit_hit_is_no_reason(sandbox: DockerSandbox, execs: list[Any]) -> None:
    sandbox.exec("true")
    sandbox.settle_agent(deadline=time.monotonic() + 5)
    settled = len(execs)

    assert sandbox.limits_hit() == []
    assert len(execs) == settled
