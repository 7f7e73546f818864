"""What the experiments list shows: one page of experiments filtered as the form asks, each with the pass
rate its stored results record, and the pass-rate trend of one spec on one branch.

The store filters by spec, status and metadata (the branch is `metadata.branch`); it has no date filter,
so the dates ride on its newest-first order: `until` starts the listing at a cursor just after that day,
and `since` ends it at the first older experiment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from ...store import ExperimentRecord, Store, encode_cursor
from .._errors import InvalidRequest

PAGE_ROWS = 50
TREND_POINTS = 100
"""The trend covers this many of the spec's latest completed experiments on the branch."""
DEFAULT_BRANCH = "main"
FIELDS = ("spec", "branch", "status", "since", "until")
STATUSES = ("created", "queued", "running", "completed", "failed", "cancelled", "interrupted")


@dataclass(frozen=True)
class Filters:
    """The list form's fields as the query string gave them (empty: not filtered)."""

    spec: str = ""
    branch: str = ""
    status: str = ""
    since: str = ""
    until: str = ""

    @classmethod
    def of(cls, query: dict[str, str]) -> Filters:
        filters = cls(**{name: query.get(name, "").strip() for name in FIELDS})
        if filters.status and filters.status not in STATUSES:
            raise InvalidRequest(f"status must be one of {', '.join(STATUSES)}, not {filters.status!r}")
        filters.since_day()
        filters.until_day()
        return filters

    def since_day(self) -> date | None:
        return _day("since", self.since)

    def until_day(self) -> date | None:
        return _day("until", self.until)

    def query(self, **more: str) -> str:
        """These filters (and `more`) as a query string, for the next page's link."""
        fields = {name: value for name, value in vars(self).items() if value}
        return urlencode({**fields, **more})


def _day(name: str, value: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"{name} must be a date as YYYY-MM-DD, not {value!r}") from None


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def created_before(moment: datetime, experiment_id: str = "") -> str:
    """A cursor of the store's experiment listing that starts after (older than) `moment` and the id:
    the position the store puts in its own cursors. With no id, at `moment` itself nothing is kept, as no
    id sorts below ""."""
    position = moment.astimezone(UTC).isoformat(timespec="microseconds")
    return encode_cursor("experiments", [position, experiment_id])


@dataclass(frozen=True)
class Row:
    """One experiment of the list: its record and the pass rate its results record (None while it has
    none: the row shows its progress instead)."""

    experiment: ExperimentRecord

    @property
    def metrics(self) -> dict[str, Any] | None:
        results = self.experiment.results
        return None if results is None else results.get("metrics", {})

    @property
    def branch(self) -> str:
        return str(self.experiment.metadata.get("branch", ""))

    @property
    def commit(self) -> str:
        return str(self.experiment.metadata.get("commit", ""))


@dataclass(frozen=True)
class Listing:
    rows: list[Row]
    next_cursor: str | None


def list_page(store: Store, project_id: str, filters: Filters, cursor: str | None) -> Listing:
    """One page of the project's experiments, newest first, as `filters` narrow them."""
    until = filters.until_day()
    if cursor is None and until is not None:
        cursor = created_before(_midnight(until + timedelta(days=1)))
    found = store.list_experiments(
        project_id,
        cursor=cursor,
        limit=PAGE_ROWS,
        spec_id=filters.spec or None,
        status=filters.status or None,
        metadata={"branch": filters.branch} if filters.branch else None,
    )
    since = filters.since_day()
    items = found.items
    if since is not None:
        items = [item for item in items if item.created_at >= _midnight(since)]
    ended = len(items) < len(found.items)
    return Listing([Row(item) for item in items], None if ended else found.next_cursor)


@dataclass(frozen=True)
class TrendPoint:
    experiment_id: str
    commit: str
    created_at: datetime
    pass_rate: float
    low: float
    high: float


@dataclass(frozen=True)
class Trend:
    spec: str
    branch: str
    points: list[TrendPoint]

    def chart_data(self) -> dict[str, Any]:
        """What `static/trend.js` draws: x in seconds since the epoch, oldest first."""
        return {
            "spec": self.spec,
            "branch": self.branch,
            "x": [point.created_at.timestamp() for point in self.points],
            "pass_rate": [point.pass_rate for point in self.points],
            "low": [point.low for point in self.points],
            "high": [point.high for point in self.points],
        }


def trend(store: Store, project_id: str, spec: str, branch: str) -> Trend:
    """The pass rate and its interval of the spec's latest completed experiments on the branch."""
    found = store.list_experiments(
        project_id,
        cursor=None,
        limit=TREND_POINTS,
        spec_id=spec,
        status="completed",
        metadata={"branch": branch},
    )
    points = []
    for record in reversed(found.items):
        metrics = (record.results or {}).get("metrics")
        if not metrics:
            continue
        low, high = metrics["pass_rate_ci"]
        points.append(
            TrendPoint(
                record.id,
                str(record.metadata.get("commit", "")),
                record.created_at,
                metrics["pass_rate"],
                low,
                high,
            )
        )
    return Trend(spec, branch, points)
