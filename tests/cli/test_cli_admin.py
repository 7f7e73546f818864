"""`ks projects` and `ks keys`: the operator's commands on the server's store (and `ks serve` refusing
settings it cannot serve with)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from polarity_keystone.cli import main
from polarity_keystone.store import open_store


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_an_operator_creates_a_project_a_key_of_it_lists_and_revokes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_url = f"sqlite://{tmp_path / 'keystone.db'}"

    code, project_id, _ = _run(capsys, "projects", "create", "team-refunds", "--store", store_url)
    assert code == 0 and project_id.startswith("proj_")
    assert _run(capsys, "projects", "create", "team-refunds", "--store", store_url)[0] == 2
    created = ("keys", "create", "ci", "--project", "team-refunds", "--admin", "--store", store_url)
    code, key, said = _run(capsys, *created)
    assert code == 0 and key.startswith("ks_live_") and "admin key" in said and key.strip() not in said
    code, listed, _ = _run(capsys, "keys", "list", "--project", project_id.strip(), "--store", store_url)
    assert code == 0 and "ci" in listed and "admin" in listed and key.strip() not in listed
    code, projects, _ = _run(capsys, "projects", "list", "--store", store_url)
    assert "team-refunds" in projects and "default" in projects

    with contextlib.closing(open_store(store_url)) as store:
        [record] = store.list_api_keys(project_id.strip())
    assert (record.admin, record.revoked) == (True, False)
    assert _run(capsys, "keys", "revoke", record.id, "--store", store_url)[0] == 0
    assert _run(capsys, "keys", "revoke", "key_unknown", "--store", store_url)[0] == 2
    with contextlib.closing(open_store(store_url)) as store:
        assert [k.revoked for k in store.list_api_keys(project_id.strip())] == [True]


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (("projects", "create", "Team A"), "invalid project name"),
        (("keys", "create", "ci", "--project", "nope"), "no project 'nope'"),
        (("keys", "list", "--project", "nope"), "no project 'nope'"),
        (("serve", "--blob-store", "http://bucket"), "a blob store URL is s3://bucket/prefix"),
        (("serve", "--webhook-url", "https://hooks.example/k"), "webhook_url needs webhook_secret"),
    ],
)
def test_bad_input_exits_2_saying_why(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    complaint: str,
) -> None:
    for variable in ("KEYSTONE_WEBHOOK_SECRET", "KEYSTONE_BLOB_STORE_URL", "KEYSTONE_BLOB_STORE_ENDPOINT"):
        monkeypatch.delenv(variable, raising=False)
    code, _, said = _run(capsys, *args, "--store", f"sqlite://{tmp_path / 'keystone.db'}")
    assert code == 2 and complaint in said
