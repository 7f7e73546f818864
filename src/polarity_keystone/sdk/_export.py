"""`ks.export`: a project's trace events, spans, scenario results and scores as iterators that fetch each page
when the one before is used up, one trace, and an experiment's whole bundle (JSON, or NDJSON lines
streamed). Events come as the agent sent them (plus `sandbox_id`, `trace_id`, `received_at`): an
export adds nothing they did not say."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal, overload
from urllib.parse import quote

from ..results import ScenarioResult
from ._http import HttpClient


class ExportService:
    def __init__(self, http: HttpClient) -> None:
        self._http = http

    def traces(
        self,
        *,
        experiment_id: str | None = None,
        sandbox_id: str | None = None,
        trace_id: str | None = None,
        agent: str | None = None,
        event_type: str | None = None,
        tool: str | None = None,
        since: datetime | str | None = None,
        page_size: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Trace events of the project, oldest first; `agent` is the event's `agent` (or its
        `gen_ai.agent.name` attribute), `since` the time the server received it."""
        params = {
            "experiment_id": experiment_id,
            "sandbox_id": sandbox_id,
            "trace_id": trace_id,
            "agent": agent,
            "event_type": event_type,
            "tool": tool,
            "since": since.isoformat() if isinstance(since, datetime) else since,
            "limit": page_size,
        }
        return self._http.iter_items("/v1/traces", params=params)

    def spans(
        self,
        *,
        trace_id: str | None = None,
        span_id: str | None = None,
        parent_span_id: str | None = None,
        root_span_id: str | None = None,
        tool: str | None = None,
        event_type: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Trace events that are spans (they carry a `span_id`), oldest first."""
        params = {
            "trace_id": trace_id,
            "span_id": span_id,
            "parent_span_id": parent_span_id,
            "root_span_id": root_span_id,
            "tool": tool,
            "event_type": event_type,
            "limit": page_size,
        }
        return self._http.iter_items("/v1/spans", params=params)

    def scenarios(
        self,
        experiment_id: str,
        *,
        status: str | None = None,
        scenario_id: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[ScenarioResult]:
        """The experiment's scenario results by scenario id; `status` is pass, fail, flaky or error
        (`passed`, `failed`, `errored` also do)."""
        params = {"experiment_id": experiment_id, "status": status, "scenario_id": scenario_id}
        items = self._http.iter_items("/v1/scenarios", params={**params, "limit": page_size})
        return (ScenarioResult.from_dict(item) for item in items)

    def scores(
        self, *, experiment_id: str, rule_id: str | None = None, page_size: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """The experiment's scores given by score rules (`ks.scoring`), oldest first."""
        params = {"experiment_id": experiment_id, "rule_id": rule_id, "limit": page_size}
        return self._http.iter_items("/v1/scores", params=params)

    def trace(self, trace_id: str) -> dict[str, Any]:
        """`{trace_id, events, count, truncated}`: every event filed under the trace id, oldest first
        (`truncated` past the server's cap; `traces(trace_id=...)` pages through any length)."""
        trace: dict[str, Any] = self._http.json("GET", f"/v1/traces/{quote(trace_id, safe='')}")
        return trace

    @overload
    def experiment(self, experiment_id: str, format: Literal["json"] = "json") -> dict[str, Any]: ...

    @overload
    def experiment(self, experiment_id: str, format: Literal["ndjson"]) -> Iterator[str]: ...

    def experiment(
        self, experiment_id: str, format: Literal["json", "ndjson"] = "json"
    ) -> dict[str, Any] | Iterator[str]:
        """The bundle: `{experiment, results, scenarios, replicas, scores, trace_events}` (results
        without their scenarios, scenarios without their replicas, `scores` those the experiment's score
        rules gave, as `ks.scoring.get_scores` answers them). With `format="ndjson"`, the same as lines of
        `{"type": ..., "data": ...}` JSON text, read from the server as they are iterated."""
        path = f"/v1/experiments/{quote(experiment_id, safe='')}/export"
        if format == "ndjson":
            return self._http.lines(path, params={"format": "ndjson"})
        bundle: dict[str, Any] = self._http.json("GET", path)
        return bundle
