"""`ks serve` reads the operator's sandbox network variables before it starts: a server whose engine
would refuse every sandbox for a typo in them stops at once, naming the variable and the entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from polarity_keystone import cli


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        (
            "KEYSTONE_SANDBOX_DENY",
            "10.0.0.0/8,ray-head",
            "KEYSTONE_SANDBOX_DENY: 'ray-head' is not an address or range",
        ),
        (
            "KEYSTONE_SANDBOX_DENY_EXCEPT",
            "10.0.5.7:8080",
            "makes exceptions to KEYSTONE_SANDBOX_DENY, which is empty",
        ),
        (
            "KEYSTONE_GATEWAY_HOSTS",
            "mirror=not-an-ip",
            "KEYSTONE_GATEWAY_HOSTS: 'mirror=not-an-ip' is not name=address",
        ),
    ],
)
def test_a_bad_sandbox_network_variable_stops_the_server_naming_the_entry(
    variable: str,
    value: str,
    named: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(variable, value)

    code = cli.main(["serve", "--store", f"sqlite://{tmp_path / 'k.db'}"])

    assert code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "invalid sandbox network settings:" in err
    assert named in err
