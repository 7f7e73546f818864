"""`ks serve --executor ray`: without the `ray` extra the server does not start, and says what to
install; the executor and its address come from the environment as from the flags."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from polarity_keystone import cli
from polarity_keystone.server import ServerSettings


def test_the_ray_executor_without_ray_stops_the_server_saying_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [name for name in sys.modules if name.startswith("polarity_keystone.cluster")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as where it is missing
    store = f"sqlite://{tmp_path / 'k.db'}"

    assert cli.main(["serve", "--executor", "ray", "--store", store]) == 2
    err = capsys.readouterr().err
    assert "the ray executor needs Ray" in err
    assert "pip install 'polarity-keystone[ray]'" in err


def test_the_executor_and_its_address_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYSTONE_EXECUTOR", "ray")
    monkeypatch.setenv("KEYSTONE_RAY_ADDRESS", "ray://head.internal:10001")
    parsed = cli.build_parser().parse_args(["serve"])
    assert (parsed.executor, parsed.ray_address) == ("ray", "ray://head.internal:10001")


def test_a_ray_address_needs_the_ray_executor(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ray_address needs executor 'ray'"):
        ServerSettings(store_url=f"sqlite://{tmp_path / 'k.db'}", ray_address="head:6379")
    with pytest.raises(ValueError, match="executor must be 'local' or 'ray'"):
        ServerSettings(store_url=f"sqlite://{tmp_path / 'k.db'}", executor="kubernetes")  # type: ignore[arg-type]
