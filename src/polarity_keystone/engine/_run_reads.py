"""What a replica reads once its agent's processes are gone, read side by side.

These reads (the workspace diff, the command log, the database audit's statements and counts, the model
proxies' recordings, the trace file, the services' state, the gateway's log, the mocks' recorded requests)
look at different containers, or at different things in one, and none of them writes: each sees what it
would see alone, whatever order they run in. So they run on their own threads and a replica waits for the
slowest of them instead of for their sum. A read that fails raises as it did when they ran one after
another, the first in that order winning when several fail.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from ..sandbox import Sandbox, WorkspaceDiff
from ..scoring import AgentEvent
from ..services import ServiceSnapshot, http_mock, kind_of
from ..spec import Service, Spec
from ._db_audit import DbAudit
from ._execlog import ExecutedCommand, needs_command_log, read_commands
from ._model_calls import Recordings, model_services, read_recordings
from ._state_audit import capture
from ._trace import ReportedTrace, read_trace

_T = TypeVar("_T")


def _done(value: _T) -> Future[_T]:
    """A read a spec does not need, answered with its empty value on the spot."""
    done: Future[_T] = Future()
    done.set_result(value)
    return done


@dataclass(frozen=True)
class RunReads:
    diff: WorkspaceDiff
    commands: list[ExecutedCommand]
    recordings: Recordings
    trace: list[AgentEvent]
    """The agent's own trace (file and reported), before the model proxies' calls are merged in."""
    state_after: dict[str, ServiceSnapshot]
    """Empty unless `state_before` was taken."""
    network_log: list[dict[str, Any]]
    mock_requests: list[tuple[str, dict[str, Any]]]
    """(service, request) for every request a recording mock received."""


def read_run(
    sandbox: Sandbox,
    spec: Spec,
    services: dict[str, Service],
    db_audit: DbAudit | None,
    reported_trace: ReportedTrace | None,
    state_before: dict[str, ServiceSnapshot],
) -> RunReads:
    recording_mocks = [
        service for service in services.values() if kind_of(service).name == "http_mock" and service.record
    ]
    with ThreadPoolExecutor(thread_name_prefix=f"reads-{sandbox.id}") as pool:
        diff = pool.submit(sandbox.diff)
        commands: Future[list[ExecutedCommand]] = _done([])
        if needs_command_log(spec):
            commands = pool.submit(read_commands, sandbox, str(spec.agent.command))
        audited: Future[None] = _done(None)
        if db_audit is not None:
            audited = pool.submit(db_audit.read_after)
        recordings: Future[Recordings] = _done({})
        if model_services(services):
            recordings = pool.submit(read_recordings, sandbox, services)
        trace = pool.submit(read_trace, sandbox, reported_trace)
        state_after: Future[dict[str, ServiceSnapshot]] = _done({})
        if state_before:
            state_after = pool.submit(capture, sandbox, services)
        network_log = pool.submit(sandbox.network_log)
        mocked = [
            (service.name, pool.submit(http_mock.recorded_requests, sandbox, service))
            for service in recording_mocks
        ]
        # Collected in the order they used to run, so the same failure is the one raised.
        workspace_diff, executed = diff.result(), commands.result()
        audited.result()
        return RunReads(
            diff=workspace_diff,
            commands=executed,
            recordings=recordings.result(),
            trace=trace.result(),
            state_after=state_after.result(),
            network_log=network_log.result(),
            mock_requests=[(name, request) for name, requests in mocked for request in requests.result()],
        )
