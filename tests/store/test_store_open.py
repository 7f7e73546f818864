"""Opening stores: URLs, the SQLite file's mode, the connection pool, and a closed store."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import psycopg
import pytest

from polarity_keystone.store import PostgresStore, SqliteStore, Store, StoreError, open_store
from tests.store.store_helpers import query


def open_small(store_url: str, pool_size: int) -> SqliteStore | PostgresStore:
    if store_url.startswith("sqlite://"):
        return SqliteStore(store_url.removeprefix("sqlite://"), pool_size=pool_size)
    return PostgresStore(store_url, pool_size=pool_size)


def test_a_sqlite_url_opens_a_wal_database_creating_its_folder(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'state' / 'keystone.db'}"

    with contextlib.closing(open_store(url)) as store:
        assert isinstance(store, SqliteStore)
        store.put_spec("default", "refunds", "v: 1", "sha-1")

    assert query(url, "PRAGMA journal_mode") == [("wal",)]


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("sqlite://relative/keystone.db", "absolute path"),
        ("sqlite://", "absolute path"),
        ("mysql://db/keystone", "unsupported store URL scheme 'mysql'"),
        ("/var/lib/keystone.db", "unsupported store URL scheme ''"),
    ],
)
def test_other_urls_are_refused(url: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        open_store(url)


def test_both_postgres_schemes_open_a_postgres_store(store_url: str) -> None:
    urls = [store_url]
    if store_url.startswith("postgresql://"):
        urls.append(store_url.replace("postgresql://", "postgres://", 1))
    for url in urls:
        with contextlib.closing(open_store(url)) as store:
            assert isinstance(store, SqliteStore if url.startswith("sqlite") else PostgresStore)
            assert store.put_spec("default", "refunds", "v: 1", "sha-1").version == 1


def test_more_threads_than_pooled_connections_all_get_their_turn(store_url: str) -> None:
    store = open_small(store_url, pool_size=2)
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            for round in range(5):
                store.append_event(f"stream-{index}", "tick", {"round": round})
                store.events_after(f"stream-{index}", 0)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert all(len(store.events_after(f"stream-{index}", 0)) == 5 for index in range(8))
    finally:
        store.close()


def test_a_closed_store_refuses_work(store: Store) -> None:
    store.close()

    with pytest.raises(StoreError, match="closed"):
        store.get_spec("default", "refunds")


@pytest.mark.docker
@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_a_postgres_store_outlives_its_connections_being_cut(store_url: str) -> None:
    store = open_small(store_url, pool_size=3)
    try:
        for index in range(3):
            store.append_event("stream", "tick", {"n": index})
        database = store_url.rsplit("/", 1)[1]
        with psycopg.connect(store_url, autocommit=True) as admin:
            cut = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> "
                "pg_backend_pid()",
                (database,),
            ).fetchall()
        assert len(cut) >= 1

        assert [event.data["n"] for event in store.events_after("stream", 0)] == [0, 1, 2]
    finally:
        store.close()
