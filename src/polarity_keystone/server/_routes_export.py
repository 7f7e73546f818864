"""Export: a project's trace events (`GET /v1/traces`), one trace (`GET /v1/traces/{trace_id}`), spans
(`GET /v1/spans`), an experiment's scenario results (`GET /v1/scenarios`), each a cursor-paged
`{items, next_cursor, count}` page, and an experiment's whole bundle (`GET /v1/experiments/{id}/export`)
as one JSON document or NDJSON lines, streamed as it is read: with the scores its score rules gave."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Path, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict

from ..scoring import normalise_event
from ..store import ExperimentRecord, NotFound, Page, TraceEventRecord
from ._agents import PINNED
from ._context import ServerContext
from ._deps import Authenticated, Context, LiveKey, Principal
from ._export_pages import ExportPage, envelope, event_page, events_envelope, listed_event
from ._models import MAX_VERSION, error_responses
from ._paging import Paging
from ._routes_experiments import experiment_out
from ._routes_scoring import score_out
from ._routes_traces import filing_sandbox

router = APIRouter(tags=["export"])

MAX_TRACE_EVENTS = 10_000
"""The most events `GET /v1/traces/{trace_id}` answers; a longer trace says `truncated` (page through
`GET /v1/traces?trace_id=` for all of it)."""
BUNDLE_BATCH = 500
"""Trace events read from the store per step while an export streams."""
SCENARIO_STATUSES = {"passed": "pass", "failed": "fail", "errored": "error"}
"""Run-status words accepted for the scenario statuses they mean (`status=failed` is `fail`)."""

Item = TypeVar("Item")
Id = Annotated[str | None, Query(max_length=200)]
Name = Annotated[str | None, Query(max_length=500)]
ScenarioStatus = Literal["pass", "fail", "flaky", "error", "passed", "failed", "errored"]
ERRORS = error_responses(403, 404)


class TraceOut(BaseModel):
    """One trace: its events, oldest first."""

    model_config = ConfigDict(extra="allow")

    trace_id: str
    events: list[dict[str, Any]]
    count: int
    truncated: bool
    """More than `MAX_TRACE_EVENTS` events: only the first ones are here."""


def _agent(data: dict[str, Any]) -> str | None:
    """The agent an event names: its `agent` key, or an `agent`, `agent.name` or `gen_ai.agent.name`
    attribute (OpenTelemetry's GenAI convention)."""
    attributes = normalise_event(data)["metadata"]
    named = (attributes.get(key) for key in ("agent", "agent.name", "gen_ai.agent.name"))
    for value in (data.get("agent"), *named):
        if isinstance(value, str) and value:
            return value
    return None


def _replica_sandboxes(context: ServerContext, project_id: str, experiment_id: str) -> list[str]:
    return [
        record.id
        for record in context.store.list_sandboxes(project_id=project_id, include_destroyed=True)
        if record.metadata.get("experiment_id") == experiment_id
    ]


def _filed_under(
    context: ServerContext, caller: Principal, experiment_id: str | None, sandbox_id: str | None
) -> list[str] | None:
    """The sandboxes whose events a listing may show (None: any, and events filed under none); a sandbox
    token sees only its own sandbox's."""
    sandbox_ids = None
    if sandbox_id is not None or caller.kind == "sandbox":
        sandbox_ids = [str(filing_sandbox(context, caller, sandbox_id))]
    if experiment_id is not None:
        context.experiment(caller.project_id, experiment_id, with_results=False)
        replicas = _replica_sandboxes(context, caller.project_id, experiment_id)
        sandbox_ids = [s for s in replicas if sandbox_ids is None or s in sandbox_ids]
    return sandbox_ids


@router.get(
    "/v1/traces",
    response_model=ExportPage,
    summary="Trace events of the caller's project, oldest first (filter by experiment, sandbox, trace, "
    "agent, event type, tool, received since)",
    responses=ERRORS,
)
def list_events(
    context: Context,
    caller: Authenticated,
    pager: Paging,
    experiment_id: Id = None,
    sandbox_id: Id = None,
    trace_id: Id = None,
    agent: Name = None,
    event_type: Id = None,
    tool: Name = None,
    since: Annotated[datetime | None, Query(description="Events received at or after this time.")] = None,
) -> ExportPage:
    page = event_page(
        context.store,
        caller.project_id,
        cursor=pager.cursor,
        limit=pager.limit,
        keep=None if agent is None else (lambda record: _agent(record.data) == agent),
        sandbox_ids=_filed_under(context, caller, experiment_id, sandbox_id),
        trace_id=trace_id,
        event_type=event_type,
        tool=tool,
        since=since,
    )
    return events_envelope(page)


AGENT_VERSION_KEYS = ("agent_version", "agent.version", "gen_ai.agent.version")
"""Where an event reported outside a pinned run says which version of its agent it came from."""
MAX_VERSION_DIGITS = 10
"""An agent's event says what it likes: a longer digit string is no version (and no 4,300-digit int)."""


@router.get(
    "/v1/agents/{name}/traces",
    response_model=ExportPage,
    summary="Trace events of one uploaded agent, oldest first: those of the sandboxes that ran its snapshots "
    "(one version's with `version`) and those naming it (`agent`, `agent.name` or `gen_ai.agent.name`; "
    "with `version`, also `agent_version`, `agent.version` or `gen_ai.agent.version`)",
    responses=ERRORS,
)
def agent_traces(
    name: Annotated[str, Path(max_length=128)],
    context: Context,
    caller: LiveKey,
    pager: Paging,
    version: Annotated[int | None, Query(ge=1, le=MAX_VERSION)] = None,
) -> ExportPage:
    ran = _agent_sandboxes(context, caller.project_id, name, version)

    def keep(record: TraceEventRecord) -> bool:
        if record.sandbox_id in ran:
            return True
        return _agent(record.data) == name and (version is None or _agent_version(record.data) == version)

    page = event_page(context.store, caller.project_id, cursor=pager.cursor, limit=pager.limit, keep=keep)
    return events_envelope(page)


def _agent_sandboxes(context: ServerContext, project_id: str, name: str, version: int | None) -> set[str]:
    """The sandboxes of the experiments pinned to the agent's snapshots (or to its one `version`, which
    must exist: NotFound otherwise, as for `GET /v1/agents/{name}/versions/{version}`)."""
    if version is not None:
        snapshots = {context.store.resolve_agent(project_id, name, version=version).id}
    else:
        snapshots = _snapshot_ids(context, project_id, name)
    pinned: dict[str, bool] = {}
    ran: set[str] = set()
    for sandbox in context.store.list_sandboxes(project_id=project_id, include_destroyed=True):
        experiment_id = sandbox.metadata.get("experiment_id")
        if not isinstance(experiment_id, str):
            continue
        if experiment_id not in pinned:
            pinned[experiment_id] = _pinned_snapshot(context, experiment_id) in snapshots
        if pinned[experiment_id]:
            ran.add(sandbox.id)
    return ran


def _pinned_snapshot(context: ServerContext, experiment_id: str) -> object:
    try:
        return context.store.get_experiment_head(experiment_id).options.get(PINNED)
    except NotFound:  # deleted since its sandbox ran
        return None


def _snapshot_ids(context: ServerContext, project_id: str, name: str) -> set[str]:
    """Every version's snapshot id; NotFound (404) when the project never uploaded the agent, as for its
    other routes (events naming an agent never uploaded are listed by `GET /v1/traces?agent=`)."""
    ids: set[str] = set()
    cursor: str | None = None
    while True:
        page = context.store.list_agent_versions(project_id, name, cursor=cursor, limit=500)
        ids.update(item.id for item in page.items)
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor


def _agent_version(data: dict[str, Any]) -> int | None:
    attributes = normalise_event(data)["metadata"]
    for value in (data.get("agent_version"), *(attributes.get(key) for key in AGENT_VERSION_KEYS)):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.isdigit() and len(value) <= MAX_VERSION_DIGITS:
            return int(value)
    return None


@router.get(
    "/v1/traces/{trace_id}",
    response_model=TraceOut,
    summary="One trace of the caller's project: every event filed under the trace id, oldest first",
    responses=ERRORS,
)
def get_trace(trace_id: str, context: Context, caller: LiveKey) -> TraceOut:
    page = context.store.list_trace_events(
        caller.project_id, cursor=None, limit=MAX_TRACE_EVENTS, trace_id=trace_id
    )
    if not page.items:
        raise NotFound(f"no trace {trace_id!r}")
    events = [listed_event(record) for record in page.items]
    return TraceOut(
        trace_id=trace_id, events=events, count=len(events), truncated=page.next_cursor is not None
    )


def _span_filter(
    span_id: str | None, parent_span_id: str | None, root_span_id: str | None
) -> Callable[[TraceEventRecord], bool]:
    wanted = {"span_id": span_id, "parent_span_id": parent_span_id, "root_span_id": root_span_id}

    def keep(record: TraceEventRecord) -> bool:
        event = normalise_event(record.data)
        if not event.get("span_id"):
            return False
        return all(value is None or event.get(key) == value for key, value in wanted.items())

    return keep


@router.get(
    "/v1/spans",
    response_model=ExportPage,
    summary="Trace events that are spans (carry a `span_id`), oldest first (filter by trace, span, parent, "
    "root span, tool, event type)",
    responses=ERRORS,
)
def list_spans(
    context: Context,
    caller: LiveKey,
    pager: Paging,
    trace_id: Id = None,
    span_id: Id = None,
    parent_span_id: Id = None,
    root_span_id: Id = None,
    tool: Name = None,
    event_type: Id = None,
) -> ExportPage:
    page = event_page(
        context.store,
        caller.project_id,
        cursor=pager.cursor,
        limit=pager.limit,
        keep=_span_filter(span_id, parent_span_id, root_span_id),
        trace_id=trace_id,
        event_type=event_type,
        tool=tool,
    )
    return events_envelope(page)


@router.get(
    "/v1/scenarios",
    response_model=ExportPage,
    summary="An experiment's scenario results (ScenarioResult), by scenario id (filter by status, scenario)",
    responses=ERRORS,
)
def list_scenarios(
    context: Context,
    caller: LiveKey,
    pager: Paging,
    experiment_id: Annotated[str, Query(max_length=200)],
    status: Annotated[ScenarioStatus | None, Query(description="Also `passed`, `failed`, `errored`.")] = None,
    scenario_id: Name = None,
) -> ExportPage:
    record = context.experiment(caller.project_id, experiment_id)
    wanted = SCENARIO_STATUSES.get(status, status) if status is not None else None
    scenarios = sorted(
        (
            scenario
            for scenario in context.results(record).get("scenarios", [])
            if wanted in (None, scenario.get("status")) and scenario_id in (None, scenario.get("scenario_id"))
        ),
        key=lambda scenario: str(scenario.get("scenario_id")),
    )
    page = pager.slice(scenarios, "scenarios", lambda s: (str(s.get("scenario_id")), ""))
    return envelope(page.items, page.next_cursor)


Section = tuple[str, str, Any]
"""A part of the bundle: its member name in JSON, its `type` in NDJSON, and its value (one object, or an
iterator of the objects of an array)."""


def _bundle(context: ServerContext, project_id: str, record: ExperimentRecord) -> Iterator[Section]:
    """The experiment, its results without their scenarios, each scenario without its replicas, each
    replica, each score its score rules gave (as `GET /v1/experiments/{id}/scores` answers them), then
    each trace event of its replicas' sandboxes; scores and events are read from the store a batch at
    a time."""
    results = context.results(record)
    scenarios = results.get("scenarios", [])
    yield "experiment", "experiment", experiment_out(record).model_dump(mode="json")
    yield "results", "results", {key: value for key, value in results.items() if key != "scenarios"}
    yield "scenarios", "scenario", ({k: v for k, v in s.items() if k != "replicas"} for s in scenarios)
    replicas = ({"scenario_id": s.get("scenario_id"), **r} for s in scenarios for r in s.get("replicas", []))
    yield "replicas", "replica", replicas
    yield "scores", "score", _scores(context, project_id, record.id)
    yield "trace_events", "trace_event", _trace_events(context, project_id, record.id)


def _batched(read: Callable[[str | None], Page[Item]]) -> Iterator[Item]:
    """Every item of a cursor-paged store listing, `read(cursor)` giving one batch after another."""
    cursor = None
    while True:
        page = read(cursor)
        yield from page.items
        cursor = page.next_cursor
        if cursor is None:
            return


def _trace_events(context: ServerContext, project_id: str, experiment_id: str) -> Iterator[dict[str, Any]]:
    sandbox_ids = _replica_sandboxes(context, project_id, experiment_id)
    if not sandbox_ids:
        return iter(())
    records = _batched(
        lambda cursor: context.store.list_trace_events(
            project_id, cursor=cursor, limit=BUNDLE_BATCH, sandbox_ids=sandbox_ids
        )
    )
    return map(listed_event, records)


def _scores(context: ServerContext, project_id: str, experiment_id: str) -> Iterator[dict[str, Any]]:
    records = _batched(
        lambda cursor: context.store.list_scores(
            project_id, experiment_id, rule_id=None, cursor=cursor, limit=BUNDLE_BATCH
        )
    )
    return (score_out(record).model_dump(mode="json") for record in records)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _ndjson(sections: Iterator[Section]) -> Iterator[bytes]:
    for _, kind, value in sections:
        for item in value if isinstance(value, Iterator) else [value]:
            yield f"{_dumps({'type': kind, 'data': item})}\n".encode()


def _json(sections: Iterator[Section]) -> Iterator[bytes]:
    """One JSON object, written member by member and array item by array item."""
    separator = "{"
    for member, _, value in sections:
        if not isinstance(value, Iterator):
            yield f"{separator}{_dumps(member)}:{_dumps(value)}".encode()
        else:
            yield f"{separator}{_dumps(member)}:[".encode()
            for index, item in enumerate(value):
                yield f"{',' if index else ''}{_dumps(item)}".encode()
            yield b"]"
        separator = ","
    yield b"}"


@router.get(
    "/v1/experiments/{experiment_id}/export",
    summary="The experiment's whole bundle: experiment, results, scenarios, replicas, rule scores and "
    "trace events, as one JSON document or as NDJSON lines `{type, data}`, streamed",
    responses={
        200: {
            "description": "The bundle.",
            "content": {"application/json": {}, "application/x-ndjson": {}},
        },
        **ERRORS,
    },
)
def export_experiment(
    experiment_id: str,
    context: Context,
    caller: LiveKey,
    format: Literal["json", "ndjson"] = "json",
) -> StreamingResponse:
    record = context.experiment(caller.project_id, experiment_id)
    sections = _bundle(context, caller.project_id, record)
    if format == "ndjson":
        return StreamingResponse(_ndjson(sections), media_type="application/x-ndjson")
    return StreamingResponse(_json(sections), media_type="application/json")
