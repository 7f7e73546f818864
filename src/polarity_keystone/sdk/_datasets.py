"""`ks.datasets`: the project's versioned datasets of `(input, expected)` records.

Each `add_records` call makes the dataset's next version (a new dataset is version 1, empty) and stamps
its records with it; `get_records(version=n)` reads the dataset as it was at version `n`, so an eval
pinned to a version sees the same records however many are added later.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from pydantic import Field

from ._dataset_traces import records_from_events
from ._errors import KeystoneError
from ._export import ExportService
from ._http import HttpClient
from ._models import KeystoneModel


class Dataset(KeystoneModel):
    id: str
    user_id: str = ""
    """The id of the API key that created it."""
    name: str
    description: str = ""
    version: int
    """1 when created; each `add_records` call makes the next."""
    record_count: int = 0
    """Records in the latest version."""
    created_at: datetime
    updated_at: datetime | None = None


class DatasetRecord(KeystoneModel):
    id: str
    dataset_id: str
    version: int
    """The version that added it: it belongs to that version and every later one."""
    input: Any
    expected: Any = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    created_at: datetime


class DatasetService:
    def __init__(self, http: HttpClient) -> None:
        self._http = http

    def create(self, name: str, description: str = "") -> Dataset:
        """A new, empty dataset of this key's project (version 1)."""
        body = {"name": name, "description": description}
        return Dataset.from_dict(self._http.json("POST", "/v1/datasets", json=body))

    def list(self, *, limit: int | None = None) -> builtins.list[Dataset]:
        """The project's datasets, oldest first (the first `limit`)."""
        return [Dataset.from_dict(item) for item in self._http.list_items("/v1/datasets", limit=limit)]

    def get(self, dataset_id: str) -> Dataset:
        return Dataset.from_dict(self._http.json("GET", _path(dataset_id)))

    def delete(self, dataset_id: str) -> None:
        """Delete the dataset and all its records."""
        self._http.request("DELETE", _path(dataset_id))

    def add_records(self, dataset_id: str, records: Iterable[Mapping[str, Any]]) -> dict[str, int]:
        """Append `records` (each `{"input": ..., "expected"?, "tags"?, "metadata"?}`) as the dataset's
        next version: `{"added": n, "version": v}`. All or none are added: a record with an unknown
        field, no input or over the server's bounds is refused (BadRequestError; APIStatusError with
        status_code 413 for a record over 256 KiB), as is one that would fill the dataset past its limit
        (ConflictError)."""
        body = {"records": [dict(record) for record in records]}
        answer: dict[str, int] = self._http.json("POST", f"{_path(dataset_id)}/records", json=body)
        return answer

    def get_records(
        self, dataset_id: str, *, version: int | None = None, tags: Iterable[str] | None = None
    ) -> builtins.list[DatasetRecord]:
        """The records of `version` (those added up to it; default: the latest), oldest first, only those
        carrying every one of `tags` when given. NotFoundError for a version the dataset has not reached."""
        params: dict[str, str | int] = {}
        if version is not None:
            params["version"] = version
        if tags is not None:
            params["tags"] = ",".join(tags)
        items = self._http.iter_items(f"{_path(dataset_id)}/records", params=params)
        return [DatasetRecord.from_dict(item) for item in items]

    def from_traces(
        self,
        name: str,
        filter: Mapping[str, Any] | None = None,
        *,
        description: str = "",
        limit: int = 1000,
    ) -> Dataset:
        """A new dataset made of the project's stored trace events that `filter` keeps (the keywords of
        `ks.export.traces`: experiment_id, sandbox_id, trace_id, agent, event_type, tool, since), oldest
        first: each LLM or tool call with an input becomes a record, its input the record's `input` and
        its output the record's `expected`, where it came from in the record's `metadata`; at most
        `limit` (up to 10,000) records. The records are all added as version 2, or none: when the
        server refuses them (a record over 256 KiB), the dataset is deleted and the error raised."""
        if not 1 <= limit <= MAX_TRACE_RECORDS:
            raise ValueError(f"limit must be between 1 and {MAX_TRACE_RECORDS}, not {limit}")
        events = ExportService(self._http).traces(**dict(filter or {}))
        records = records_from_events(events, limit)
        dataset = self.create(name, description)
        if not records:
            return dataset
        try:
            self.add_records(dataset.id, records)
        except KeystoneError:
            self.delete(dataset.id)
            raise
        return self.get(dataset.id)


MAX_TRACE_RECORDS = 10_000
"""The most records `from_traces` makes: what one `add_records` call may add."""


def _path(dataset_id: str) -> str:
    return f"/v1/datasets/{quote(dataset_id, safe='')}"
