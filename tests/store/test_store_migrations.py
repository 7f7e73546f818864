"""Schema migrations: numbered, applied once when a store opens, recorded, and never run backwards."""

from __future__ import annotations

import threading

import pytest

from polarity_keystone.store import MIGRATIONS, PostgresStore, SqliteStore, StoreError, open_store
from tests.store.store_helpers import query


def test_migrations_are_numbered_from_one_without_gaps() -> None:
    assert [migration.version for migration in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))


def test_a_new_database_gets_every_migration_once_and_a_reopened_one_none(store_url: str) -> None:
    first = open_store(store_url)
    first.close()
    second = open_store(store_url)
    second.close()

    assert first.applied_migrations == [m.version for m in MIGRATIONS]
    assert second.applied_migrations == []
    recorded = query(store_url, "SELECT version, description FROM schema_migrations ORDER BY version")
    assert recorded == [(m.version, m.description) for m in MIGRATIONS]


def test_stores_opening_a_new_database_at_once_migrate_it_once(store_url: str) -> None:
    barrier = threading.Barrier(4)
    stores: list[SqliteStore | PostgresStore] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        barrier.wait()
        try:
            stores.append(open_store(store_url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()

    assert errors == []
    assert sorted(len(store.applied_migrations) for store in stores) == [0, 0, 0, len(MIGRATIONS)]
    assert query(store_url, "SELECT COUNT(*) FROM schema_migrations") == [(len(MIGRATIONS),)]


def test_a_database_migrated_by_a_newer_keystone_is_refused(store_url: str) -> None:
    open_store(store_url).close()
    newer = len(MIGRATIONS) + 1
    query(
        store_url,
        "INSERT INTO schema_migrations (version, description, applied_at) "
        f"VALUES ({newer}, 'from the future', '2030-01-01T00:00:00+00:00') RETURNING version",
    )

    with pytest.raises(StoreError, match=f"version {newer}, newer than this Keystone knows"):
        open_store(store_url)
