"""Datasets on the wire: the bodies of `/v1/datasets` and the bounds every request is held to.

A dataset is a project's versioned collection of records (`input`, optional `expected`, `metadata`,
`tags`). Unlike the API's other request bodies, these refuse unknown fields: a record whose `inputs` or
`expect` is misspelt would otherwise be stored without it, and every scenario built from it be wrong.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Annotated, Any

from pydantic import ConfigDict, Field, StringConstraints, field_validator

from ..store import DatasetEntry, DatasetEntryRecord, DatasetQuota, DatasetRecord
from ._errors import PayloadTooLarge
from ._limits import describe_size
from ._models import _Request, _Response

MAX_DATASETS_PER_PROJECT = 1000
MAX_NAME_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 4000
MAX_TAGS = 32
"""Of one record, and in one `tags=` filter."""
MAX_TAG_LENGTH = 100
MAX_RECORD_BYTES = 256 * 1024
"""Of one record's JSON (input, expected, metadata and tags together)."""
MAX_RECORDS_PER_CALL = 10_000
MAX_RECORDS_PAGE_BYTES = 8 * 1024**2
"""Of the records one page of `GET .../records` holds (it holds fewer than `limit` past that): 500 records
of 256 KiB would otherwise be 128 MiB in the server's memory at once."""
DATASET_QUOTA = DatasetQuota(max_entries=100_000, max_bytes=256 * 1024**2)

Tag = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TAG_LENGTH, pattern=r"^[^,]+$"),
    Field(description="No commas: `?tags=a,b` separates tags with them; surrounding spaces are dropped."),
]


class _Strict(_Request):
    model_config = ConfigDict(extra="forbid")


class DatasetCreate(_Strict):
    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    description: str = Field(default="", max_length=MAX_DESCRIPTION_LENGTH)


class DatasetRecordIn(_Strict):
    input: Any = Field(description="Required: any JSON value but null (a scenario's task parameters).")
    expected: Any = Field(default=None, description="What a correct answer holds; null or absent: none.")
    metadata: dict[str, Any] = Field(default_factory=dict)
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)

    @field_validator("input")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("a record's input may not be null")
        return value


class DatasetRecordsAdd(_Strict):
    records: list[DatasetRecordIn] = Field(min_length=1, max_length=MAX_RECORDS_PER_CALL)


class DatasetOut(_Response):
    id: str
    user_id: str = Field(description="The id of the API key that created it.")
    name: str
    description: str
    version: int = Field(description="1 when created; each `POST .../records` makes the next one.")
    record_count: int = Field(description="Records in the latest version.")
    created_at: datetime
    updated_at: datetime


class DatasetRecordsAdded(_Response):
    added: int
    version: int = Field(description="The version these records made (they are stamped with it).")


class DatasetRecordOut(_Response):
    id: str
    dataset_id: str
    version: int = Field(description="The version that added it; it belongs to that one and every later one.")
    input: Any
    expected: Any = None
    metadata: dict[str, Any]
    tags: list[str]
    created_at: datetime


def new_dataset_id() -> str:
    return f"ds_{secrets.token_hex(12)}"


def dataset_entries(body: DatasetRecordsAdd) -> list[DatasetEntry]:
    """The records of `body` as store entries, each with a new id and its JSON size. PayloadTooLarge names
    the first record over MAX_RECORD_BYTES."""
    entries = []
    for index, record in enumerate(body.records):
        fields = record.model_dump(mode="json")
        size = len(json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode())
        if size > MAX_RECORD_BYTES:
            raise PayloadTooLarge(
                f"records[{index}] is {describe_size(size)} of JSON; a record may be at most "
                f"{describe_size(MAX_RECORD_BYTES)}"
            )
        entries.append(
            DatasetEntry(
                id=f"rec_{secrets.token_hex(12)}",
                input=fields["input"],
                expected=fields["expected"],
                metadata=fields["metadata"],
                tags=tuple(dict.fromkeys(record.tags)),
                size_bytes=size,
            )
        )
    return entries


def dataset_out(record: DatasetRecord) -> DatasetOut:
    return DatasetOut(
        id=record.id,
        user_id=record.owner,
        name=record.name,
        description=record.description,
        version=record.version,
        record_count=record.entry_count,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


def dataset_record_out(record: DatasetEntryRecord) -> DatasetRecordOut:
    entry = record.entry
    return DatasetRecordOut(
        id=entry.id,
        dataset_id=record.dataset_id,
        version=record.version,
        input=entry.input,
        expected=entry.expected,
        metadata=entry.metadata,
        tags=list(entry.tags),
        created_at=record.created_at,
    )
