"""A valid spec loads into typed models, with the defaults and units a spec author relies on."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from polarity_keystone.spec import (
    CustomCheck,
    DirectoryFixture,
    FileContentCheck,
    Secret,
    SpecError,
    SqlCheck,
    SqlFixture,
    load_spec,
    parse_spec,
)

FULL = Path(__file__).parent / "data" / "full" / "spec.yaml"

MINIMAL = """\
version: 1
id: hello-world
base: "ubuntu:24.04"
task:
  prompt: Create hello.txt
agent:
  type: cli
  command: python3 agent.py
invariants:
  hello:
    check: {type: file_exists, path: hello.txt}
"""


def test_minimal_spec_gets_the_documented_defaults() -> None:
    spec = parse_spec(MINIMAL).spec

    assert spec.resources.cpu == 2.0
    assert spec.resources.memory == 2 * 1024**3
    assert spec.resources.timeout == 600.0
    assert spec.scoring.pass_threshold == 1.0
    assert spec.parallelism.replicas == 1
    assert spec.invariants["hello"].weight == 1.0
    assert spec.invariants["hello"].gate is False
    assert spec.network.egress.default == "allow"


def test_full_spec_loads_every_block() -> None:
    loaded = load_spec(FULL)
    spec = loaded.spec

    assert spec.id == "refund-agent"
    assert spec.agent.timeout == 300.0
    assert spec.resources.memory == 1024**3
    assert spec.resources.timeout == 900.0
    assert spec.resources.cpu == 2.0
    assert [service.name for service in spec.services] == ["db"]
    assert isinstance(spec.fixtures[0], SqlFixture) and spec.fixtures[0].file == "seed.sql"
    assert isinstance(spec.fixtures[1], DirectoryFixture) and spec.fixtures[1].path == "/workspace"
    assert spec.network.egress.default == "deny" and spec.network.egress.allow == []
    assert spec.forbidden.file_writes_outside == ["src/", "output/"]
    assert spec.parallelism.matrix == {"model": ["small", "large"]}
    refund = spec.invariants["refund_row"]
    assert (refund.weight, refund.gate) == (2.0, True)
    assert isinstance(refund.check, SqlCheck) and refund.check.equals == 1  # written as `expected`
    assert isinstance(spec.invariants["report_written"].check, FileContentCheck)
    assert isinstance(spec.invariants["tests_pass"].check, CustomCheck)


def test_loaded_spec_records_where_it_came_from() -> None:
    loaded = load_spec(FULL)

    assert loaded.path == FULL.resolve()
    assert loaded.spec_dir == FULL.resolve().parent
    assert loaded.text == FULL.read_text()
    assert loaded.sha256 == hashlib.sha256(FULL.read_bytes()).hexdigest()


def test_a_spec_given_as_text_resolves_paths_from_the_cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FULL.parent)

    loaded = parse_spec(FULL.read_text(), filename="inline.yaml")

    assert loaded.path is None
    assert loaded.spec_dir == FULL.parent


def test_bare_string_secrets_become_names() -> None:
    spec = load_spec(FULL).spec

    assert spec.secrets[0] == Secret(name="OPENAI_API_KEY")
    assert spec.secrets[1].from_ == "generated"


def test_sql_check_compares_with_null_when_equals_is_null() -> None:
    text = MINIMAL.replace(
        "    check: {type: file_exists, path: hello.txt}",
        "    check: {type: sql, service: db, query: SELECT NULL, equals: null}",
    )
    text += "services:\n  - {name: db, image: postgres:16}\n"

    check = parse_spec(text).spec.invariants["hello"].check

    assert isinstance(check, SqlCheck) and check.equals is None


def test_local_paths_are_checked_relative_to_the_spec(tmp_path: Path) -> None:
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(MINIMAL.replace("  command: python3 agent.py\n", "  command: x\n  path: agent\n"))

    with pytest.raises(SpecError) as raised:
        load_spec(spec_file)
    (issue,) = raised.value.issues
    assert (issue.line, issue.field) == (9, "agent.path")
    assert str(tmp_path / "agent") in issue.message

    (tmp_path / "agent").mkdir()
    assert load_spec(spec_file).spec.agent.path == "agent"
