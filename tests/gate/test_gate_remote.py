"""`ks gate --server-url` against a `ks serve` of its own: another process, started in an empty directory
elsewhere (its own store, blobs and bundles there), so it can read none of the checkout's files. The
shipped examples' agents and fixtures reach it only as bundles, and every one of them gets the verdict
and the fingerprint it gets from the embedded server."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from polarity_keystone.server import create_api_key
from polarity_keystone.spec import load_spec
from polarity_keystone.store import open_store
from tests.examples.shipped_examples import EXAMPLES
from tests.gate.gate_env import GateRun, gate
from tests.ks_serve import start_ks_serve

pytestmark = pytest.mark.docker

EXPECTED = {"sloppy-agent": "fail", "llm-agent-reckless": "fail"}
"""Scenario statuses other than `pass` at one replica and seed 7 (sloppy-agent writes outside its
directory, a forbidden rule)."""


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment of a gate that talks to the separate server."""
    home = tmp_path_factory.mktemp("server-home")
    store_url = f"sqlite://{home / 'keystone.db'}"
    store = open_store(store_url)
    try:
        key = create_api_key(store, "gate e2e")[0]
    finally:
        store.close()
    served = start_ks_serve(store_url, home)
    try:
        yield {"KEYSTONE_BASE_URL": served.url, "KEYSTONE_API_KEY": key}
    finally:
        assert served.stop() == 0, served.log()


def outcome(run: GateRun) -> tuple[int, list[tuple[str, str]]]:
    statuses = [
        (scenario["scenario_id"], scenario["status"])
        for result in run.results["runs"]
        for scenario in result["scenarios"]
    ]
    return run.code, statuses


def test_every_example_gated_on_a_remote_server_gets_the_embedded_verdict(
    remote: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    flags = ("--specs", "examples/*/*.yaml", "--replicas", "1", "--seed", "7", "--comment", "off")

    served = gate(tmp_path, remote, *flags)
    embedded = gate(tmp_path, {}, *flags)

    assert f"Keystone server: {remote['KEYSTONE_BASE_URL']}" in served.log
    assert outcome(served) == outcome(embedded), served.log
    specs = sorted(load_spec(path).spec.id for path in EXAMPLES.glob("*/*.yaml"))
    statuses = dict(outcome(served)[1])
    assert sorted(statuses) == specs
    assert statuses == {spec: EXPECTED.get(spec, "pass") for spec in specs}
    fingerprints = [[run["fingerprint"] for run in gated.results["runs"]] for gated in (served, embedded)]
    assert fingerprints[0] == fingerprints[1]
