"""Where secret values come from: the request, the operator's allow-list, and the local user's own
machine only when the server is theirs. A shared server never reads a source the spec chose."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from polarity_keystone.cli import main
from polarity_keystone.cli._served import host_sources_line
from polarity_keystone.engine import PreparedSpec
from polarity_keystone.engine._fixtures import psql_errors
from polarity_keystone.secrets import SecretError, SecretPolicy, parse_operator_secret, resolve_fixed
from polarity_keystone.spec import Secret, parse_spec
from tests.examples.shipped_examples import RunSpec

SHARED = SecretPolicy()


def _declared(marker: Path) -> list[Secret]:
    return [
        Secret(name="RUNS", source=f"command:touch {marker}; echo ran"),
        Secret(name="READS", source="file:/etc/hostname"),
        Secret(name="HOME_DIR", source="env:HOME"),
        Secret(name="HOME"),
        Secret.model_validate({"name": "STATIC", "from": "static://literal"}),
        Secret.model_validate({"name": "GEN", "from": "generated"}),
    ]


def test_a_shared_policy_refuses_every_host_source_without_reading_it(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    with pytest.raises(SecretError) as caught:
        resolve_fixed(_declared(marker), {}, SHARED)

    message = str(caught.value)
    for name in ("RUNS", "READS", "HOME_DIR", "HOME"):
        assert f"secret {name}: its source" in message
    assert "STATIC" not in message and "GEN" not in message
    assert not marker.exists()


def test_request_values_and_operator_sources_fill_a_shared_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "ran"
    monkeypatch.setenv("OPERATOR_HOME", "/srv/operator")
    policy = SecretPolicy(operator={"HOME": "env:OPERATOR_HOME", "HOME_DIR": "command:echo op-cmd"})
    provided = {"RUNS": "from-request", "READS": "also-from-request", "HOME_DIR": "request-wins"}

    values = resolve_fixed(_declared(marker), provided, policy)

    assert values == {
        "RUNS": "from-request",
        "READS": "also-from-request",
        "HOME_DIR": "request-wins",
        "HOME": "/srv/operator",
        "STATIC": "literal",
    }
    assert not marker.exists()


def test_the_local_users_own_server_reads_this_machine(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    values = resolve_fixed(_declared(marker), {}, SecretPolicy(host_sources=True))

    assert values["RUNS"] == "ran" and marker.exists()
    assert values["READS"] == Path("/etc/hostname").read_text().strip()


@pytest.mark.parametrize(
    ("flag", "problem"),
    [
        ("API_KEY", "is not NAME=SOURCE"),
        ("API_KEY=vault:x", "must be env:VAR, file:PATH or command:CMD"),
        ("API_KEY=env:", "must be env:VAR, file:PATH or command:CMD"),
        ("1BAD=env:X", "must be a valid environment variable name"),
    ],
)
def test_operator_secrets_are_checked(flag: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_operator_secret(flag)


def test_ks_serve_refuses_a_malformed_secret_flag_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--secret", "API_KEY=vault:x", "--port", "1"]) == 2
    assert "invalid --secret" in capsys.readouterr().err


def test_ks_eval_run_names_the_host_sources_never_the_values() -> None:
    spec = parse_spec(
        """\
version: 1
id: sources
base: "debian:bookworm-slim"
task: {prompt: go}
agent: {type: cli, command: "true"}
secrets:
  - API_KEY
  - {name: DB_PASS, source: "command:echo hunter2"}
  - {name: TOKEN, from: "static://x"}
invariants:
  ok: {check: {type: command_exit, command: "true"}}
"""
    )

    assert host_sources_line(spec) == "secrets from this machine: API_KEY (env), DB_PASS (command)"


def test_a_failed_sql_fixture_reports_psqls_errors_without_the_scripts_text() -> None:
    output = (
        'psql:<stdin>:1: ERROR:  syntax error at or near "root"\n'
        "LINE 1: root:$y$j9T$hashedpassword:19000:0:99999:7:::\n"
        "        ^\n"
    )

    shown = psql_errors(output)

    assert shown == 'psql:<stdin>:1: ERROR:  syntax error at or near "root"'
    assert "hashedpassword" not in shown


SQL_FILE_SPEC = """
version: 1
id: sql-file
base: "debian:bookworm-slim"
task: {prompt: "never runs"}
agent: {type: cli, command: "true"}
services: [{name: db, image: "postgres:16"}]
fixtures:
  - {type: sql, service: db, file: notes.sql}
invariants:
  ok: {check: {type: command_exit, command: "true"}}
"""


@pytest.mark.docker
def test_a_sql_fixture_file_that_is_not_sql_fails_without_its_content_in_the_error(
    prepared_from: Callable[..., PreparedSpec], run: RunSpec
) -> None:
    files = {"notes.sql": "root:x:0:0:host-password-1234:/root:/bin/bash\n"}

    results = run(prepared_from(SQL_FILE_SPEC, files), seed=1)

    (replica,) = results.scenarios[0].replicas
    assert replica.status == "error" and replica.error is not None
    assert "sql fixture on db (notes.sql)" in replica.error and "syntax error" in replica.error
    assert "host-password-1234" not in replica.error
