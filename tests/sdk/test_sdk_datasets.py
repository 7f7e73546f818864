"""`ks.datasets` against the real server (on a socket and in-process, over SQLite and Postgres): the seed's
calls unchanged, versions read back as they were, records paged through, and the server's refusals as
the SDK's errors."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from polarity_keystone import APIStatusError, BadRequestError, NotFoundError
from polarity_keystone.sdk import Dataset, DatasetRecord
from polarity_keystone.server import _datasets as wire
from tests.sdk.sdk_servers import KeystoneServer
from tests.sdk.test_sdk_models_match_server import mismatches


def test_the_seed_calls_work_against_a_served_server(socket_server: KeystoneServer) -> None:
    ks = socket_server.client()
    ds = ks.datasets.create("customer-emails", "Renewal scenarios")
    assert isinstance(ds, Dataset)
    assert (ds.id[:3], ds.name, ds.description, ds.version, ds.record_count) == (
        "ds_",
        "customer-emails",
        "Renewal scenarios",
        1,
        0,
    )
    assert [d.id for d in ks.datasets.list()] == [ds.id]

    added = ks.datasets.add_records(
        ds.id, [{"input": {"id": "alice"}, "expected": {"subject": "Renewal"}, "tags": ["pro"]}]
    )
    assert added == {"added": 1, "version": 2}
    ks.datasets.add_records(
        ds.id, [{"input": {"id": "bob"}, "tags": ["free"], "metadata": {"source": "crm"}}]
    )
    assert ks.datasets.get(ds.id).version == 3

    [alice] = ks.datasets.get_records(ds.id, version=3, tags=["pro"])
    assert isinstance(alice, DatasetRecord)
    assert (alice.input, alice.expected, alice.tags, alice.version) == (
        {"id": "alice"},
        {"subject": "Renewal"},
        ["pro"],
        2,
    )
    assert [r.input["id"] for r in ks.datasets.get_records(ds.id)] == ["alice", "bob"]
    assert [r.input["id"] for r in ks.datasets.get_records(ds.id, version=2)] == ["alice"]
    assert ks.datasets.get_records(ds.id, version=1) == []

    ks.datasets.delete(ds.id)
    with pytest.raises(NotFoundError):
        ks.datasets.get(ds.id)
    assert ks.datasets.list() == []


def test_get_records_pages_through_every_record(server: KeystoneServer) -> None:
    ks = server.client()
    ds = ks.datasets.create("many")
    ks.datasets.add_records(ds.id, ({"input": i, "tags": ["even"] if i % 2 == 0 else []} for i in range(250)))

    assert [r.input for r in ks.datasets.get_records(ds.id)] == list(range(250))
    assert [r.input for r in ks.datasets.get_records(ds.id, tags=["even"])] == list(range(0, 250, 2))
    assert [d.id for d in ks.datasets.list(limit=1)] == [ds.id]


def test_refusals_arrive_as_the_sdk_errors(server: KeystoneServer) -> None:
    ks = server.client()
    ds = ks.datasets.create("strict")

    with pytest.raises(BadRequestError) as unknown:
        ks.datasets.add_records(ds.id, [{"input": {"id": "a"}, "expect": {"subject": "typo"}}])
    assert "expect" in unknown.value.message
    with pytest.raises(NotFoundError) as ahead:
        ks.datasets.get_records(ds.id, version=2)
    assert "no version 2" in ahead.value.message
    with pytest.raises(APIStatusError) as large:
        ks.datasets.add_records(ds.id, [{"input": "x" * (300 * 1024)}])
    assert large.value.status_code == 413
    with pytest.raises(NotFoundError):
        ks.datasets.add_records("ds_missing", [{"input": 1}])
    assert ks.datasets.get(ds.id).version == 1


@pytest.mark.parametrize(
    ("server_model", "sdk_model"),
    [(wire.DatasetOut, Dataset), (wire.DatasetRecordOut, DatasetRecord)],
    ids=lambda model: model.__name__,
)
def test_the_sdk_models_hold_every_field_the_server_sends(
    server_model: type[BaseModel], sdk_model: type[BaseModel]
) -> None:
    assert mismatches(server_model, sdk_model) == []
