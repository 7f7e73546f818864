"""`/v1/datasets`: a project's versioned datasets. Appending records makes the dataset's next version;
every earlier version stays readable as the records added up to it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response

from ..store import DatasetRecord
from ._datasets import (
    DATASET_QUOTA,
    MAX_DATASETS_PER_PROJECT,
    MAX_RECORDS_PAGE_BYTES,
    MAX_TAG_LENGTH,
    MAX_TAGS,
    DatasetCreate,
    DatasetOut,
    DatasetRecordOut,
    DatasetRecordsAdd,
    DatasetRecordsAdded,
    dataset_entries,
    dataset_out,
    dataset_record_out,
    new_dataset_id,
)
from ._deps import Context, LiveKey
from ._errors import InvalidRequest
from ._models import MAX_VERSION, error_responses
from ._paging import LIST_RESPONSES, Paging

router = APIRouter(prefix="/v1/datasets", tags=["Datasets"])


@router.post(
    "",
    status_code=201,
    response_model=DatasetOut,
    summary="Create an empty dataset (version 1)",
    responses=error_responses(403, 409),
)
def create_dataset(body: DatasetCreate, context: Context, caller: LiveKey) -> DatasetOut:
    now = datetime.now(UTC)
    record = DatasetRecord(
        id=new_dataset_id(),
        project_id=caller.project_id,
        name=body.name,
        description=body.description,
        owner=caller.id,
        version=1,
        entry_count=0,
        size_bytes=0,
        created_at=now,
        updated_at=now,
    )
    context.store.add_dataset(record, max_per_project=MAX_DATASETS_PER_PROJECT)
    return dataset_out(record)


@router.get(
    "",
    response_model=list[DatasetOut],
    summary="List the project's datasets (oldest first)",
    responses={**LIST_RESPONSES, **error_responses(403)},
)
def list_datasets(context: Context, caller: LiveKey, pager: Paging) -> list[DatasetOut]:
    page = context.store.list_datasets(caller.project_id, cursor=pager.cursor, limit=pager.limit)
    return pager.answer(page, dataset_out)


@router.get(
    "/{dataset_id}",
    response_model=DatasetOut,
    summary="Get a dataset: its latest version and how many records that holds",
    responses=error_responses(403, 404),
)
def get_dataset(dataset_id: str, context: Context, caller: LiveKey) -> DatasetOut:
    return dataset_out(context.store.get_dataset(caller.project_id, dataset_id))


@router.delete(
    "/{dataset_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a dataset and all its records",
    responses=error_responses(403, 404),
)
def delete_dataset(dataset_id: str, context: Context, caller: LiveKey) -> Response:
    context.store.delete_dataset(caller.project_id, dataset_id)
    return Response(status_code=204)


@router.post(
    "/{dataset_id}/records",
    status_code=201,
    response_model=DatasetRecordsAdded,
    summary="Add records: they make the dataset's next version, each stamped with it",
    description=f"At most {DATASET_QUOTA.max_entries} records or {DATASET_QUOTA.max_bytes} bytes of "
    "records per dataset (409 past that).",
    responses=error_responses(403, 404, 409, 413),
)
def add_records(
    dataset_id: str, body: DatasetRecordsAdd, context: Context, caller: LiveKey
) -> DatasetRecordsAdded:
    entries = dataset_entries(body)
    dataset = context.store.append_dataset_entries(caller.project_id, dataset_id, entries, DATASET_QUOTA)
    return DatasetRecordsAdded(added=len(entries), version=dataset.version)


@router.get(
    "/{dataset_id}/records",
    response_model=list[DatasetRecordOut],
    summary="A version's records (those added up to it), oldest first, optionally only those with all tags",
    description=f"A page holds fewer than `limit` records where they would pass {MAX_RECORDS_PAGE_BYTES} "
    "bytes.",
    responses={**LIST_RESPONSES, **error_responses(403, 404)},
)
def get_records(
    dataset_id: str,
    context: Context,
    caller: LiveKey,
    pager: Paging,
    version: Annotated[
        int | None,
        Query(ge=1, le=MAX_VERSION, description="Default: the latest. 404 past the latest."),
    ] = None,
    tags: Annotated[
        str | None,
        Query(
            max_length=MAX_TAGS * (MAX_TAG_LENGTH + 1),
            description="Comma-separated: only records carrying every one of these tags.",
        ),
    ] = None,
) -> list[DatasetRecordOut]:
    wanted = list(dict.fromkeys(tag.strip() for tag in (tags or "").split(",") if tag.strip()))
    if len(wanted) > MAX_TAGS:
        raise InvalidRequest(f"filter on at most {MAX_TAGS} tags, not {len(wanted)}")
    page = context.store.dataset_entries(
        caller.project_id,
        dataset_id,
        version=version,
        tags=wanted,
        cursor=pager.cursor,
        limit=pager.limit,
        max_bytes=MAX_RECORDS_PAGE_BYTES,
    )
    return pager.answer(page, dataset_record_out)
