"""A spec's `parallelism.dataset` resolved to scenarios when an experiment is created: one per record of
the pinned dataset version, its `input` fields (an `input` that is no object becomes `input`) and its
`expected` as the task parameters.

Parameters become environment variables of the agent and are stored in the experiment's plan, so their
names must be identifiers and their size is bounded.
"""

from __future__ import annotations

import re
from typing import Any

from ..engine import parameter_text
from ..spec import MAX_SCENARIOS, DatasetScenarios
from ..store import DatasetEntry, NotFound, Store
from ._errors import InvalidRequest

MAX_SCENARIO_PARAMETER_BYTES = 32 * 1024
"""Of one scenario's parameters as text: each is an environment variable (Linux caps one at 128 KiB)."""
MAX_DATASET_PARAMETER_BYTES = 4 * 1024**2
"""Of all scenarios' parameters: they are stored with the experiment's plan."""
_PAGE_BYTES = 8 * 1024**2
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def dataset_scenarios(
    store: Store, project_id: str, source: DatasetScenarios, spec_id: str
) -> tuple[int, list[tuple[str, dict[str, Any]]]]:
    """(the version read, its scenarios). InvalidRequest for a dataset the project has not (another
    project's reads as missing), more than MAX_SCENARIOS records, or a record that makes no parameters."""
    try:
        version = source.version or store.get_dataset(project_id, source.id).version
        entries = _entries(store, project_id, source, version)
    except NotFound:
        at = f" version {source.version}" if source.version else ""
        raise InvalidRequest(
            f"parallelism.dataset: dataset {source.id!r}{at} does not exist in this project"
        ) from None
    if not entries:
        raise InvalidRequest(
            f"parallelism.dataset: dataset {source.id!r} version {version} has no records"
            + (f" with tags {source.tags}" if source.tags else "")
        )
    cells = [(f"{spec_id}[{entry.id}]", _parameters(source.id, entry)) for entry in entries]
    total = sum(_size(parameters) for _, parameters in cells)
    if total > MAX_DATASET_PARAMETER_BYTES:
        raise InvalidRequest(
            f"parallelism.dataset: the records of dataset {source.id!r} make {total} bytes of parameters; "
            f"the limit is {MAX_DATASET_PARAMETER_BYTES}: narrow them with `tags` or `limit`"
        )
    return version, cells


def _entries(store: Store, project_id: str, source: DatasetScenarios, version: int) -> list[DatasetEntry]:
    """The records in order, at most `limit`; InvalidRequest past MAX_SCENARIOS without a limit."""
    wanted = source.limit or MAX_SCENARIOS + 1
    entries: list[DatasetEntry] = []
    cursor: str | None = None
    while len(entries) < wanted:
        page = store.dataset_entries(
            project_id,
            source.id,
            version=version,
            tags=source.tags,
            cursor=cursor,
            limit=min(500, wanted - len(entries)),
            max_bytes=_PAGE_BYTES,
        )
        entries += [record.entry for record in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    if len(entries) > MAX_SCENARIOS:
        raise InvalidRequest(
            f"parallelism.dataset: dataset {source.id!r} version {version} has more than {MAX_SCENARIOS} "
            f"records{' with these tags' if source.tags else ''}, the most scenarios a spec may have: set "
            "`limit` or `tags` to choose fewer"
        )
    return entries


def _parameters(dataset_id: str, entry: DatasetEntry) -> dict[str, Any]:
    parameters = dict(entry.input) if isinstance(entry.input, dict) else {"input": entry.input}
    where = f"record {entry.id} of dataset {dataset_id!r}"
    if entry.expected is not None:
        if "expected" in parameters:
            raise InvalidRequest(
                f"parallelism.dataset: {where} has an `expected` field in its input and an `expected` "
                "value: both would be the `expected` parameter; rename the input's field"
            )
        parameters["expected"] = entry.expected
    names = [name for name in parameters if not _IDENTIFIER.fullmatch(name) or name.startswith("KEYSTONE_")]
    if names:
        raise InvalidRequest(
            f"parallelism.dataset: {where} has input field(s) {', '.join(map(repr, names[:5]))}: task "
            "parameters become environment variables, so their names must be identifiers not starting "
            "with KEYSTONE_"
        )
    size = _size(parameters)
    if size > MAX_SCENARIO_PARAMETER_BYTES:
        raise InvalidRequest(
            f"parallelism.dataset: {where} makes {size} bytes of task parameters; the limit is "
            f"{MAX_SCENARIO_PARAMETER_BYTES} (they become environment variables)"
        )
    return parameters


def _size(parameters: dict[str, Any]) -> int:
    """Bytes of `NAME=value` text, as the agent's environment holds them."""
    return sum(len(name) + 1 + len(parameter_text(value).encode()) for name, value in parameters.items())
