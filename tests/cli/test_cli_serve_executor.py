"""`ks serve --executor ray`: without the `ray` extra the server does not start, and says what to
install; the executor and its address come from the environment as from the flags; an address that is
malformed or where nothing answers stops it at once, saying so."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from polarity_keystone import cli
from polarity_keystone.server import ServerSettings
from polarity_keystone.server._ray_address import host_and_port


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


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again when the probe is: nothing listens there


def test_a_ray_address_where_nothing_listens_stops_the_server_at_once_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ray itself tries a refused GCS address for over five minutes before it gives up."""
    address = f"127.0.0.1:{closed_port()}"
    store = f"sqlite://{tmp_path / 'k.db'}"

    code = cli.main(["serve", "--executor", "ray", "--ray-address", address, "--store", store])

    assert code == 3
    assert f"cannot connect to the Ray cluster at {address}: Connection refused" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("address", "served"),
    [
        ("head.internal:6379", ("head.internal", 6379)),
        ("ray://10.0.0.5:10001", ("10.0.0.5", 10001)),
        ("[fd00::1]:6379", ("fd00::1", 6379)),
        ("auto", None),
    ],
)
def test_ray_addresses_name_where_the_cluster_answers(address: str, served: tuple[str, int] | None) -> None:
    assert host_and_port(address) == served


@pytest.mark.parametrize("address", ["head.internal", "head:port", "head:0", "head:70000", ":6379", "ray://"])
def test_a_malformed_ray_address_is_refused_saying_what_one_looks_like(
    address: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite://{tmp_path / 'k.db'}"

    assert cli.main(["serve", "--executor", "ray", "--ray-address", address, "--store", store]) == 2
    assert "use HOST:PORT, ray://HOST:PORT or auto" in capsys.readouterr().err
