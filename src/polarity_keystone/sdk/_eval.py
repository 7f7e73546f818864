"""`Eval`: run a task over rows (a list, a callable giving one, or a dataset), score each output with
scorers, aggregate per scorer; record it as an experiment when a client is given or configured.

    result = Eval("email-eval", data=[{"input": "hi", "expected": "hello"}], task=my_agent,
                  scores=[ExactMatch()], max_concurrency=4)
    result.summary["exact_match"].mean

Each row runs `task(input)` (sync or async) on one of at most `max_concurrency` threads. A task that
raises fails its case (the exception's tail is the case's `error`), never the whole Eval. A case passes
when its task did not raise and every score that was not skipped passed. A scorer's summary covers its
scores that were not skipped (an errored score counts 0) of the cases whose task did not raise.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import Progress

from ..analysis import percentile
from ..results import RunResults
from ..scorers import Case, Score, Scorer
from ._datasets import Dataset
from ._eval_context import current_eval_context

if TYPE_CHECKING:
    from ._client import Keystone

MAX_CONCURRENCY = 64
"""`max_concurrency` is capped at this many threads, whatever is asked."""
MAX_ERROR_CHARS = 2000
"""A raising task's error keeps the last this many characters of its traceback (where it raised)."""
RECORD_BATCH = 50
"""Finished cases are sent to the server in batches of this many while the rest still run."""

Row = Mapping[str, Any]
DataSource = Iterable[Row] | Callable[[], Iterable[Row]] | Dataset | str | Mapping[str, Any]
Task = Callable[[Any], Any]


@dataclasses.dataclass(frozen=True)
class EvalSummary:
    """One scorer's scores over an Eval's cases."""

    mean: float
    p50: float
    p95: float
    count: int


@dataclasses.dataclass(frozen=True)
class EvalCase:
    """One row's run: what went in, what the task answered, how each scorer judged it."""

    index: int
    input: Any
    expected: Any = None
    output: Any = None
    scores: tuple[Score, ...] = ()
    error: str | None = None
    wall_ms: float = 0.0
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    tags: tuple[str, ...] = ()
    id: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and not any(score.failed for score in self.scores)

    def to_record(self) -> dict[str, Any]:
        """The case as the server stores it."""
        return {
            "index": self.index,
            "id": self.id,
            "input": _jsonable(self.input),
            "expected": _jsonable(self.expected),
            "metadata": _jsonable(dict(self.metadata)),
            "tags": list(self.tags),
            "output": _jsonable(self.output),
            "error": self.error,
            "wall_ms": self.wall_ms,
            "scores": [
                {key: value for key, value in score.to_dict().items() if key != "metadata"}
                for score in self.scores
            ],
        }


@dataclasses.dataclass(frozen=True)
class EvalResult:
    name: str
    cases: tuple[EvalCase, ...]
    summary: dict[str, EvalSummary]
    experiment_id: str | None = None
    run_results: RunResults | None = None
    """The server's aggregate of the recorded experiment; None when the Eval was not recorded."""

    @property
    def passed(self) -> int:
        return sum(1 for case in self.cases if case.passed)

    @property
    def failed(self) -> int:
        return len(self.cases) - self.passed


def Eval(
    name: str,
    data: DataSource,
    task: Task,
    scores: Sequence[Scorer | Callable[[Case], Score | float | bool]],
    max_concurrency: int = 4,
    *,
    ks: Keystone | None = None,
    experiment_name: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> EvalResult:
    """Run `task` over `data`, score each output with `scores`, and summarise per scorer.

    `data` is a list of rows (`{"input", "expected"?, "metadata"?, "tags"?, "id"?}`), a callable returning
    one, or a dataset: a `Dataset`, its id, or `{"dataset": id, "version": N, "tags": [...]}` (read
    through the client). The Eval is recorded as an experiment when `ks` is given, an `eval_context`
    supplies one, or KEYSTONE_API_KEY is set.
    """
    if max_concurrency < 1:
        raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
    scorers = [scorer if isinstance(scorer, Scorer) else Scorer(scorer) for scorer in scores]
    context = current_eval_context()
    client, owned = _client(ks if ks is not None else context.ks)
    try:
        rows = _rows(data, client)
        recorder = None
        if client is not None:
            recorder = _Recorder.start(
                client,
                name,
                experiment_name=experiment_name,
                metadata={**context.metadata, **(metadata or {})},
                total_cases=len(rows),
                scorers=[scorer.name for scorer in scorers],
                idempotency_key=context.idempotency_key(name) if context.idempotency_key else None,
            )
        cases = _run(name, rows, task, scorers, min(max_concurrency, MAX_CONCURRENCY), recorder)
        result = EvalResult(
            name=name,
            cases=cases,
            summary=summarise(cases),
            experiment_id=recorder.experiment_id if recorder else None,
            run_results=recorder.complete() if recorder else None,
        )
    finally:
        if owned and client is not None:
            client.close()
    if context.on_result is not None:
        context.on_result(result)
    return result


def summarise(cases: Iterable[EvalCase]) -> dict[str, EvalSummary]:
    """Per scorer: mean, p50, p95 and count of its scores that were not skipped (an errored one counts 0)."""
    values: dict[str, list[float]] = {}
    for case in cases:
        for score in case.scores:
            if not score.skipped:
                values.setdefault(score.name, []).append(0.0 if score.score is None else score.score)
    return {
        name: EvalSummary(
            mean=sum(figures) / len(figures),
            p50=percentile(figures, 50),
            p95=percentile(figures, 95),
            count=len(figures),
        )
        for name, figures in values.items()
    }


def _client(ks: Keystone | None) -> tuple[Keystone | None, bool]:
    """The client to record with, and whether this Eval made it (and so closes it)."""
    if ks is not None:
        return ks, False
    if os.environ.get("KEYSTONE_API_KEY"):
        from ._client import Keystone

        return Keystone(), True
    return None, False


def _rows(data: DataSource, client: Keystone | None) -> list[dict[str, Any]]:
    if isinstance(data, Dataset | str) or (isinstance(data, Mapping) and "dataset" in data):
        return _dataset_rows(data, client)
    if isinstance(data, Mapping):
        raise TypeError("data is a list of rows, a callable returning one, or a dataset; not one row")
    rows = list(data() if callable(data) else data)
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping) or "input" not in row:
            raise ValueError(f"row {index} of the data has no 'input' field")
    return [dict(row) for row in rows]


def _dataset_rows(data: Dataset | str | Mapping[str, Any], client: Keystone | None) -> list[dict[str, Any]]:
    if client is None:
        raise ValueError("reading a dataset needs a client: pass ks= or set KEYSTONE_API_KEY")
    version: int | None = None
    tags: list[str] | None = None
    if isinstance(data, Dataset):
        dataset_id = data.id
    elif isinstance(data, str):
        dataset_id = data
    else:
        dataset_id = str(data["dataset"])
        version = data.get("version")
        tags = list(data["tags"]) if data.get("tags") is not None else None
    records = client.datasets.get_records(dataset_id, version=version, tags=tags)
    return [
        {"id": r.id, "input": r.input, "expected": r.expected, "metadata": r.metadata, "tags": r.tags}
        for r in records
    ]


def _run(
    name: str,
    rows: list[dict[str, Any]],
    task: Task,
    scorers: list[Scorer],
    workers: int,
    recorder: _Recorder | None,
) -> tuple[EvalCase, ...]:
    finished: dict[int, EvalCase] = {}
    with _progress(name, len(rows)) as advance, ThreadPoolExecutor(max_workers=workers) as pool:
        futures: dict[Future[EvalCase], int] = {
            pool.submit(_run_case, index, row, task, scorers): index for index, row in enumerate(rows)
        }
        for future in as_completed(futures):
            case = future.result()
            finished[case.index] = case
            advance()
            if recorder is not None:
                recorder.add(case)
    if recorder is not None:
        recorder.flush()
    return tuple(finished[index] for index in range(len(rows)))


def _run_case(index: int, row: Mapping[str, Any], task: Task, scorers: list[Scorer]) -> EvalCase:
    base = EvalCase(
        index=index,
        input=row["input"],
        expected=row.get("expected"),
        metadata=dict(row.get("metadata") or {}),
        tags=tuple(row.get("tags") or ()),
        id=None if row.get("id") is None else str(row["id"]),
    )
    started = time.perf_counter()
    try:
        output = _call(task, base.input)
    except Exception:  # the task's failure is this case's, never the whole Eval's
        wall_ms = (time.perf_counter() - started) * 1000
        return dataclasses.replace(base, error=traceback.format_exc()[-MAX_ERROR_CHARS:], wall_ms=wall_ms)
    wall_ms = (time.perf_counter() - started) * 1000
    case = Case(
        input=base.input,
        output=output,
        expected=base.expected,
        metadata=base.metadata,
        parameters=dict(row),
    )
    scores = tuple(scorer.score(case) for scorer in scorers)
    return dataclasses.replace(base, output=output, scores=scores, wall_ms=wall_ms)


def _call(task: Task, value: Any) -> Any:
    """The task's answer; an async task (or one returning an awaitable) runs on this thread's own loop."""
    answer = task(value)
    if isinstance(answer, Awaitable):
        return asyncio.run(_awaited(answer))
    return answer


async def _awaited(answer: Awaitable[Any]) -> Any:
    return await answer


def _jsonable(value: Any) -> Any:
    """`value` if it is JSON as it is, else its text: a task may answer any object."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value


@contextlib.contextmanager
def _progress(name: str, total: int) -> Iterator[Callable[[], None]]:
    """A progress bar on stderr while the cases run (only when stderr is a terminal); yields `advance`."""
    if not sys.stderr.isatty():
        yield lambda: None
        return
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task_id = bar.add_task(name, total=total)
        yield lambda: bar.advance(task_id)


class _Recorder:
    """Sends an Eval's cases to its experiment as they finish, in batches.

    When the Idempotency-Key the experiment was started with had already started it (a CI job run again),
    the server answers that experiment: if it is no longer running, its cases are recorded already and
    this run's are not sent; `complete` answers its results."""

    def __init__(self, client: Keystone, experiment_id: str, *, recording: bool) -> None:
        self._client = client
        self.experiment_id = experiment_id
        self._recording = recording
        self._pending: list[dict[str, Any]] = []

    @classmethod
    def start(cls, client: Keystone, name: str, **fields: Any) -> _Recorder:
        experiment = client.evals.start(name, **fields)
        return cls(client, experiment.id, recording=experiment.status == "running")

    def add(self, case: EvalCase) -> None:
        if not self._recording:
            return
        self._pending.append(case.to_record())
        if len(self._pending) >= RECORD_BATCH:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._client.evals.add_cases(self.experiment_id, self._pending)
            self._pending = []

    def complete(self) -> RunResults:
        return self._client.evals.complete(self.experiment_id)
