"""Embedded mode (`Keystone.local()`) and the `ks serve` / `ks keys create` commands, for real: a server
in this process, and `ks` run as a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from polarity_keystone import APIConnectionError, AuthenticationError, Keystone
from polarity_keystone.cli import main
from polarity_keystone.store import open_store
from tests.ks_serve import start_ks_serve
from tests.sdk.sdk_servers import spec_yaml


def test_local_starts_a_server_with_sqlite_under_the_path_and_stops_it_on_close(tmp_path: Path) -> None:
    state = tmp_path / ".keystone"
    with Keystone.local(state) as ks:
        assert ks.base_url.startswith("http://127.0.0.1:")
        assert ks.health()["status"] == "ok"
        spec = ks.specs.create(spec_yaml("local-spec"), source_dir=tmp_path)  # local paths: allowed here
        assert spec.id == "local-spec"
        url = ks.base_url
    assert (state / "keystone.db").is_file()
    assert (state / ".gitignore").read_text().endswith("*\n")

    with Keystone(api_key="k", base_url=url, max_retries=0) as gone, pytest.raises(APIConnectionError):
        gone.health()
    store = open_store(f"sqlite://{state / 'keystone.db'}")
    try:
        assert [key.revoked for key in store.list_api_keys()] == [True]  # no key outlives its server
    finally:
        store.close()

    with Keystone.local(state) as again:  # the state persists across starts
        assert [s.id for s in again.specs.list()] == ["local-spec"]


def _ks(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "polarity_keystone", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_ks_keys_create_prints_a_key_once_and_ks_serve_accepts_it(tmp_path: Path) -> None:
    store_url = f"sqlite://{tmp_path / 'shared.db'}"
    created = _ks("keys", "create", "ci-github", "--store", store_url, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("ks_live_") and "\n" not in key
    assert key not in created.stderr and "shown only this once" in created.stderr

    server = start_ks_serve(store_url, tmp_path)
    try:
        with Keystone(api_key=key, base_url=server.url) as ks:
            assert ks.specs.create(spec_yaml("served")).id == "served"
        stranger = Keystone(api_key="ks_live_wrong", base_url=server.url)
        with stranger, pytest.raises(AuthenticationError):
            stranger.specs.list()
    finally:
        code = server.stop()
    assert code == 0, server.log()
    assert f"Keystone server on {server.url}" in server.log()


def test_a_bad_store_url_is_invalid_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--store", "mysql://nope"]) == 2
    assert "unsupported store URL scheme" in capsys.readouterr().err
    assert main(["keys", "create", "x", "--store", "sqlite://relative.db"]) == 2
    assert "absolute path" in capsys.readouterr().err
