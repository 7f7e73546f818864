"""`ks.experiments`: create an experiment from an uploaded spec, run it, wait for it, compare two."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..scorers import Scorer
from ._client_scores import apply_client_scores
from ._errors import APIConnectionError, APIStatusError, ConflictError
from ._http import HttpClient
from ._models import Comparison, Experiment, ExperimentMetrics, ExperimentResults
from ._secrets import request_secrets
from ._sse import StreamEvent

TERMINAL_EVENTS = frozenset({"done", "error"})
"""Experiment stream events after which the server ends the stream."""

_NO_STREAM_STATUSES = frozenset({404, 405, 406, 501})
"""Answers to the stream request that mean this server has no experiment stream: poll instead."""

EventCallback = Callable[[StreamEvent], None]


class ExperimentService:
    def __init__(self, http: HttpClient) -> None:
        self._http = http

    def create(
        self,
        name: str,
        spec_id: str,
        *,
        secrets: Mapping[str, str] | None = None,
        spec_path: str | Path | None = None,
        metadata: Mapping[str, str] | None = None,
        replicas: int | None = None,
        concurrency: int | None = None,
        seed: int | None = None,
        idempotency_key: str | None = None,
    ) -> Experiment:
        """Create (not run) an experiment of an uploaded spec. With `spec_path`, the secrets the spec
        declares are resolved here and sent along; explicit `secrets` win on a name collision.
        `metadata` tags it (repo, branch, commit, ...) for `list(metadata=...)`."""
        body: dict[str, Any] = {"name": name, "spec_id": spec_id}
        forwarded = request_secrets(secrets, spec_path)
        if forwarded is not None:
            body["secrets"] = forwarded
        if metadata is not None:
            body["metadata"] = dict(metadata)
        options = {"replicas": replicas, "concurrency": concurrency, "seed": seed}
        body.update({key: value for key, value in options.items() if value is not None})
        data = self._http.json("POST", "/v1/experiments", json=body, idempotency_key=idempotency_key)
        return Experiment.from_dict(data)

    def run(self, experiment_id: str, *, idempotency_key: str | None = None) -> Experiment:
        """Start the run and return at once; follow it with `wait`, `stream` or `get`."""
        data = self._http.json("POST", _path(experiment_id, "run"), idempotency_key=idempotency_key)
        return Experiment.from_dict(data)

    def extend(
        self,
        experiment_id: str,
        replicas: Mapping[str, int],
        *,
        secrets: Mapping[str, str] | None = None,
        spec_path: str | Path | None = None,
        idempotency_key: str | None = None,
    ) -> Experiment:
        """Run more replicas of some scenarios of a completed experiment: `replicas` maps scenario ids to
        the count each should have in all (replicas it ran are kept). Returns at once; follow it with
        `wait`. Secrets are never stored: give `spec_path` (or `secrets`) again when the spec declares
        some."""
        body: dict[str, Any] = {"replicas": dict(replicas)}
        forwarded = request_secrets(secrets, spec_path)
        if forwarded is not None:
            body["secrets"] = forwarded
        data = self._http.json(
            "POST", _path(experiment_id, "extend"), json=body, idempotency_key=idempotency_key
        )
        return Experiment.from_dict(data)

    def run_and_wait(
        self,
        experiment_id: str,
        poll_interval: float = 1.0,
        timeout: float = 600.0,
        *,
        stream: bool = True,
        on_event: EventCallback | None = None,
        scores: Sequence[Scorer] = (),
    ) -> ExperimentResults:
        """Run the experiment and return its results when it has finished (whatever its outcome: see
        `status` and `error`). An experiment already running or finished is waited for, not run again.

        `scores` are client-side scorers run here on each finished scenario: their scores are appended
        to the scenario's `invariants`, and a failed one fails a passing scenario and the counts
        (a skipped one changes nothing). The server's stored results are not changed."""
        try:
            self.run(experiment_id)
        except ConflictError:
            if self.get(experiment_id).status == "created":
                raise  # it cannot start (e.g. its secrets are gone): waiting would never end
        results = self.wait(
            experiment_id, poll_interval=poll_interval, timeout=timeout, stream=stream, on_event=on_event
        )
        return apply_client_scores(results, scores)

    def wait(
        self,
        experiment_id: str,
        *,
        poll_interval: float = 1.0,
        timeout: float = 600.0,
        stream: bool = True,
        on_event: EventCallback | None = None,
    ) -> ExperimentResults:
        """Results once the experiment has finished; raises TimeoutError after `timeout` seconds.

        With `stream`, it follows the experiment's SSE stream (passing each event to `on_event`) and
        polls only when the server has no stream or the stream breaks; otherwise it polls every
        `poll_interval` seconds."""
        deadline = time.monotonic() + timeout
        last_event_id: str | None = None
        while True:
            results = self.get(experiment_id)
            if results.finished:
                return results
            if time.monotonic() >= deadline:
                raise TimeoutError(f"experiment {experiment_id} did not finish within {timeout:g}s")
            if stream:
                try:
                    last_event_id, ended = self._follow(experiment_id, last_event_id, deadline, on_event)
                except APIStatusError as exc:
                    if exc.status_code not in _NO_STREAM_STATUSES:
                        raise
                    stream, ended = False, False
                except APIConnectionError:
                    ended = False  # poll once, then stream again from the last event seen
                if ended:
                    stream = False  # the stream is over: poll until the results say so too
                    continue
            time.sleep(max(0.0, min(poll_interval, deadline - time.monotonic())))

    def _follow(
        self, experiment_id: str, last_event_id: str | None, deadline: float, on_event: EventCallback | None
    ) -> tuple[str | None, bool]:
        """Read the stream until a terminal event (True), its end, or the deadline (False)."""
        events = self._http.stream(
            _path(experiment_id, "stream"), last_event_id=last_event_id, deadline=deadline
        )
        with contextlib.closing(events):
            for event in events:
                last_event_id = event.id or last_event_id
                if on_event is not None:
                    on_event(event)
                if event.event in TERMINAL_EVENTS:
                    return last_event_id, True
        return last_event_id, False

    def stream(
        self, experiment_id: str, *, last_event_id: str | None = None
    ) -> Generator[StreamEvent, None, None]:
        """The experiment's events (progress, replica_done, done, error) as they happen; resumes after
        `last_event_id`. The server ends the stream after `done` or `error`."""
        return self._http.stream(_path(experiment_id, "stream"), last_event_id=last_event_id)

    def get(self, experiment_id: str) -> ExperimentResults:
        """The results so far (partial while it runs), with `status` and `progress`."""
        return ExperimentResults.from_dict(self._http.json("GET", _path(experiment_id)))

    def list(
        self,
        *,
        spec_id: str | None = None,
        status: str | None = None,
        metadata: Mapping[str, str] | None = None,
        limit: int | None = None,
    ) -> list[Experiment]:
        """Newest first (the first `limit`), fetching page after page; `metadata` keeps experiments
        tagged with all the given key/values."""
        items = self._http.list_items(
            "/v1/experiments", params=_filters(spec_id, status, metadata), limit=limit
        )
        return [Experiment.from_dict(item) for item in items]

    def iter_all(
        self,
        *,
        spec_id: str | None = None,
        status: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Iterator[Experiment]:
        """What `list` answers, newest first, fetching each page only when the iteration reaches it."""
        items = self._http.iter_items("/v1/experiments", params=_filters(spec_id, status, metadata))
        return (Experiment.from_dict(item) for item in items)

    def compare(
        self,
        baseline_id: str,
        candidate_id: str,
        *,
        alpha: float | None = None,
        correction: str | None = None,
        min_effect: float | None = None,
    ) -> Comparison:
        """Compare two finished experiments the way `ks gate` does: each scenario both ran, and the
        suite, is regressed, improved, unchanged or inconclusive. `alpha` (0 < alpha <= 0.5),
        `correction` (holm or bh) and `min_effect` (0 to 1) default on the server to those of `ks gate`;
        the comparison says which it used."""
        body: dict[str, Any] = {"baseline_id": baseline_id, "candidate_id": candidate_id}
        policy = {"alpha": alpha, "correction": correction, "min_effect": min_effect}
        body.update({key: value for key, value in policy.items() if value is not None})
        return Comparison.from_dict(self._http.json("POST", "/v1/experiments/compare", json=body))

    def metrics(self, experiment_id: str) -> ExperimentMetrics:
        data = self._http.json("GET", f"/v1/metrics/experiments/{quote(experiment_id, safe='')}")
        return ExperimentMetrics.from_dict(data)


def _path(experiment_id: str, *rest: str) -> str:
    return "/".join(["/v1/experiments", quote(experiment_id, safe=""), *rest])


def _filters(
    spec_id: str | None, status: str | None, metadata: Mapping[str, str] | None
) -> dict[str, str | None]:
    """The query of an experiment listing: metadata tags as `metadata.<key>=<value>`."""
    params: dict[str, str | None] = {"spec_id": spec_id, "status": status}
    params.update({f"metadata.{key}": value for key, value in (metadata or {}).items()})
    return params
