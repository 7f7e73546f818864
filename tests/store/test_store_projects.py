"""Projects in the store: every key and resource belongs to one, spec ids are per project, and a database
from before projects keeps all it holds in the default project."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import pytest

from polarity_keystone.store import (
    DEFAULT_PROJECT,
    MIGRATIONS,
    Conflict,
    NotFound,
    ProjectRecord,
    Store,
    open_store,
)
from tests.store.store_helpers import query
from tests.store.test_store_contract import experiment, sandbox

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def test_projects_are_added_once_by_id_and_by_name_and_the_default_one_always_exists(store: Store) -> None:
    store.add_project(ProjectRecord("proj_a", "team-a", T0))

    with pytest.raises(Conflict):
        store.add_project(ProjectRecord("proj_b", "team-a", T0))
    with pytest.raises(Conflict):
        store.add_project(ProjectRecord("proj_a", "team-b", T0))
    with pytest.raises(NotFound):
        store.get_project("proj_unknown")
    assert store.get_project("proj_a").name == "team-a"
    assert [project.id for project in store.list_projects()] == [DEFAULT_PROJECT, "proj_a"]


def test_two_projects_keep_their_own_versions_of_the_same_spec_id(store: Store) -> None:
    a1 = store.put_spec("proj_a", "refunds", "v: a1", "sha-a1")
    b1 = store.put_spec("proj_b", "refunds", "v: b1", "sha-b1")
    a2 = store.put_spec("proj_a", "refunds", "v: a2", "sha-a2")

    assert (a1.version, b1.version, a2.version) == (1, 1, 2)
    assert store.get_spec("proj_b", "refunds").yaml == "v: b1"
    assert [spec.yaml for spec in store.list_specs("proj_a", cursor=None, limit=10).items] == ["v: a2"]
    store.delete_spec("proj_a", "refunds")
    assert store.get_spec("proj_b", "refunds") == b1
    with pytest.raises(NotFound):
        store.delete_spec("proj_c", "refunds")


def test_experiments_and_sandboxes_are_listed_per_project(store: Store) -> None:
    store.add_experiment(experiment("e-a", project_id="proj_a"))
    store.add_experiment(experiment("e-b", 1, project_id="proj_b"))
    store.put_sandbox(sandbox("sb-a", project_id="proj_a"))
    store.put_sandbox(sandbox("sb-b", project_id="proj_b"))

    assert [e.id for e in store.list_experiments("proj_a", cursor=None, limit=10).items] == ["e-a"]
    assert store.get_experiment("e-b").project_id == "proj_b"
    assert [s.id for s in store.list_sandboxes(project_id="proj_b")] == ["sb-b"]
    assert [s.id for s in store.list_sandboxes(project_id=None)] == ["sb-a", "sb-b"]


def test_a_database_from_before_projects_keeps_everything_in_the_default_project(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("polarity_keystone.store._migrations.MIGRATIONS", MIGRATIONS[:1])
    open_store(store_url).close()
    created = "'2025-03-01T09:00:00.000000+00:00'"
    for statement in (
        "INSERT INTO api_keys (id, name, prefix, key_hash, kind, created_at) "
        f"VALUES ('k1', 'ci', 'ks_live_ab12', 'hash-1', 'live', {created})",
        "INSERT INTO specs (id, version, yaml, sha256, created_at) "
        f"VALUES ('refunds', 1, 'v: 1', 's', {created})",
        "INSERT INTO experiments (id, name, spec_id, spec_version, status, created_at, owner, metadata, "
        f"options, progress) VALUES ('e1', 'run', 'refunds', 1, 'completed', {created}, 'k1', "
        "'{}', '{}', '{}')",
    ):
        query(store_url, statement + " RETURNING 1")
    monkeypatch.undo()

    with contextlib.closing(open_store(store_url)) as store:
        assert store.applied_migrations[0] == 2
        key = store.api_key_by_hash("hash-1")
        assert key is not None
        assert (key.project_id, key.admin) == (DEFAULT_PROJECT, False)
        assert store.get_spec(DEFAULT_PROJECT, "refunds").yaml == "v: 1"
        assert store.get_experiment("e1").project_id == DEFAULT_PROJECT
        assert store.put_spec(DEFAULT_PROJECT, "refunds", "v: 2", "t").version == 2
