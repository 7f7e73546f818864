"""`ks` starts at once: the commands that need no sandbox and no server (`ks --help`, `ks gate --help`,
`ks spec validate`) never load the engine, the server, sandboxes, the SDK, Docker, httpx or a database
driver, and the public names of `polarity_keystone` and its gate, loaded on first use, are all there.

Each command runs in a fresh interpreter, so what it loads is what `ks` itself loads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import polarity_keystone
from polarity_keystone import gate, sdk
from tests.cli.test_cli import BROKEN_SPEC
from tests.examples.shipped_examples import EXAMPLES

HEAVY = (
    "docker",
    "httpx",
    "fastapi",
    "uvicorn",
    "psycopg",
    "polarity_keystone.engine",
    "polarity_keystone.server",
    "polarity_keystone.sandbox",
    "polarity_keystone.sdk",
    "polarity_keystone.store",
)

LOADED_AFTER_MAIN = """\
import json, sys
from polarity_keystone.cli import main
code = main(json.loads(sys.argv[1]))
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def run_main(argv: list[str]) -> tuple[int, list[str]]:
    """(exit code, modules loaded) of `main(argv)` in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", LOADED_AFTER_MAIN, json.dumps(argv)],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(done.stdout.splitlines()[-1])
    return report["code"], report["modules"]


def heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["gate", "--help"], ["spec", "validate", str(EXAMPLES / "hello-world" / "hello.yaml")]],
    ids=["help", "gate-help", "spec-validate"],
)
def test_a_command_without_sandboxes_loads_no_heavy_module(argv: list[str]) -> None:
    code, modules = run_main(argv)
    assert code == 0
    assert heavy(modules) == []


def test_help_does_not_load_spec_models_or_pydantic() -> None:
    """The parser is all `--help` needs: the spec's models and pydantic come with `spec validate`."""
    _, modules = run_main(["--help"])
    assert [m for m in modules if m.startswith(("pydantic", "polarity_keystone.spec"))] == []


def test_an_invalid_spec_is_reported_without_loading_docker(tmp_path: Path) -> None:
    """The error path checks the cheap error families first: a spec error is told without the sandbox."""
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN_SPEC)
    code, modules = run_main(["spec", "validate", str(broken)])
    assert code == 2
    assert heavy(modules) == []


def test_every_public_name_of_the_package_resolves_to_its_home() -> None:
    for name in polarity_keystone.__all__:
        value = getattr(polarity_keystone, name)
        if hasattr(sdk, name) and name != "__version__":
            assert value is getattr(sdk, name), name
    assert polarity_keystone.estimate_cost.__module__.startswith("polarity_keystone.analysis")


def test_every_public_name_of_the_gate_resolves() -> None:
    for name in gate.__all__:
        assert getattr(gate, name) is not None, name


@pytest.mark.parametrize("package", [polarity_keystone, gate], ids=["polarity_keystone", "gate"])
def test_an_unknown_name_is_an_attribute_error(package: object) -> None:
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        package.nothing_here  # type: ignore[attr-defined]  # noqa: B018
