"""Every rejected spec names the file, the exact line and the field, and says how to fix it."""

from __future__ import annotations

from pathlib import Path

import pytest

from polarity_keystone.spec import SpecError, SpecIssue, load_spec, parse_spec, unsupported_features

VALID = """\
version: 1
id: hello-world
base: "ubuntu:24.04"
task:
  prompt: Create hello.txt
agent:
  type: cli
  command: python3 agent.py
services:
  - name: db
    image: postgres:16
invariants:
  hello:
    check:
      type: file_exists
      path: hello.txt
"""
"""A valid spec whose line numbers the cases below rely on."""


def edited(old: str, new: str) -> str:
    assert old in VALID
    return VALID.replace(old, new)


def issues_of(text: str) -> list[SpecIssue]:
    with pytest.raises(SpecError) as raised:
        parse_spec(text, filename="specs/hello.yaml")
    return raised.value.issues


def only_issue(text: str) -> SpecIssue:
    (issue,) = issues_of(text)
    assert issue.file == "specs/hello.yaml"
    return issue


def test_the_valid_base_spec_loads() -> None:
    assert parse_spec(VALID).spec.id == "hello-world"


@pytest.mark.parametrize(
    ("text", "line", "field", "message", "suggestion"),
    [
        pytest.param(
            edited("      path: hello.txt\n", ""),
            14,
            "invariants.hello.check.path",
            "field required",
            "path: hello.txt",
            id="missing field points at its parent",
        ),
        pytest.param(
            VALID + "resources:\n  cpu: many\n",
            18,
            "resources.cpu",
            "valid number",
            None,
            id="wrong type",
        ),
        pytest.param(
            edited("  command:", "  comand:"),
            8,
            "agent.comand",
            "unknown field `comand`",
            "did you mean `command`?",
            id="unknown key",
        ),
        pytest.param(
            edited("      path: hello.txt", "      path: hello.txt\n      mode: 0644"),
            17,
            "invariants.hello.check.mode",
            "unknown field `mode`",
            "allowed here: type, path",
            id="unknown key without a close match lists the allowed ones",
        ),
        pytest.param(
            VALID + "secrets:\n  - name: KEY\n    frm: generated\n",
            19,
            "secrets[0].frm",
            "unknown field `frm`",
            "did you mean `from`?",
            id="unknown key close to an alias",
        ),
        pytest.param(
            VALID + "resources:\n  timeout: 5 minutes\n",
            18,
            "resources.timeout",
            "invalid duration '5 minutes'",
            None,
            id="bad duration",
        ),
        pytest.param(
            VALID + "resources:\n  memory: lots\n",
            18,
            "resources.memory",
            "invalid size 'lots'",
            None,
            id="bad size",
        ),
        pytest.param(
            edited("type: file_exists", "type: file_exist"),
            15,
            "invariants.hello.check.type",
            "unknown check type `file_exist`",
            "did you mean `file_exists`? valid check types: file_exists, file_absent, file_content",
            id="bad check type",
        ),
        pytest.param(
            edited("  type: cli", "  type: binary"),
            7,
            "agent.type",
            "`binary` is not an allowed value",
            "allowed values: cli, paragon, snapshot",
            id="wrong enum literal",
        ),
        pytest.param(
            edited(
                "      type: file_exists\n      path: hello.txt\n",
                "      type: sql\n      service: dbb\n      query: SELECT 1\n      equals: 1\n",
            ),
            16,
            "invariants.hello.check.service",
            "service `dbb` is not declared",
            "did you mean `db`?",
            id="sql check naming an undeclared service",
        ),
        pytest.param(
            edited("  prompt: Create hello.txt\n", "  prompt: Create hello.txt\n  prompt: Create bye.txt\n"),
            6,
            "task.prompt",
            "duplicate key `prompt` (first set at line 5)",
            "keeps only the last value",
            id="duplicate key",
        ),
        pytest.param(
            edited("  - name: db\n    image: postgres:16\n", "  - {name: db, image: postgres:16}\n" * 2),
            11,
            "services[1].name",
            "service name `db` is already used",
            None,
            id="duplicate service name",
        ),
        pytest.param(
            edited("  - name: db\n", "  - name: agent\n"),
            10,
            "services[0].name",
            "service name `agent` is reserved",
            "agent-api",
            id="service named like the agent container",
        ),
        pytest.param(
            VALID + "parallelism:\n  matrix:\n    KEYSTONE_SEED: [1, 2]\n",
            19,
            "parallelism.matrix.KEYSTONE_SEED",
            "collides with the env vars Keystone sets",
            None,
            id="matrix axis shadowing a Keystone env var",
        ),
        pytest.param(
            VALID + "parallelism:\n  matrix: {size: [1]}\n  dataset: {id: ds_1}\n",
            17,
            "parallelism",
            "`matrix` and `dataset` both set",
            None,
            id="scenarios from a matrix and a dataset",
        ),
        pytest.param(
            VALID + "parallelism:\n  dataset: {id: ds_1, limit: 5000}\n",
            18,
            "parallelism.dataset.limit",
            "less than or equal to 1000",
            None,
            id="dataset limit past the most scenarios",
        ),
        pytest.param(
            edited("    check:", "    weight: 0\n    check:"),
            12,
            "invariants",
            "every invariant has weight 0",
            None,
            id="all weights zero",
        ),
        pytest.param(
            VALID + "fixtures:\n  - {type: drift}\n",
            18,
            "fixtures[0].type",
            "the `drift` fixture is not supported yet by this Keystone version"
            " (coming with adversarial drift); remove it or run on a newer version",
            None,
            id="unsupported feature",
        ),
        pytest.param(
            VALID + "network:\n  dns_overrides:\n    api.stripe.com: strpe.services.internal\n",
            19,
            "network.dns_overrides.api.stripe.com",
            "service `strpe` is not declared in `services`",
            None,
            id="override to an undeclared service",
        ),
        pytest.param(
            VALID + "forbidden:\n  sql: ['(unclosed']\n",
            18,
            "forbidden.sql[0]",
            "not a valid regular expression",
            None,
            id="bad regular expression",
        ),
    ],
)
def test_each_problem_is_reported_at_its_line_and_field(
    text: str, line: int, field: str, message: str, suggestion: str | None
) -> None:
    issue = only_issue(text)

    assert (issue.line, issue.field) == (line, field)
    assert message in issue.message
    if suggestion is not None:
        assert issue.suggestion is not None and suggestion in issue.suggestion


def test_issue_format_is_file_line_column_field_message_hint() -> None:
    issue = only_issue(edited("  command:", "  comand:"))

    assert issue.format() == (
        "specs/hello.yaml:8:3: agent.comand: unknown field `comand` — hint: did you mean `command`?"
    )


def test_yaml_syntax_error_has_the_parsers_position() -> None:
    issue = only_issue(edited("  command: python3 agent.py", "  command: python3: agent.py"))

    assert (issue.line, issue.column, issue.field) == (8, 19, "")
    assert issue.message.startswith("invalid YAML: mapping values are not allowed here")


def test_every_problem_is_reported_at_once() -> None:
    text = edited("  command:", "  comand:") + "resources:\n  timeout: soon\n"

    assert [(issue.line, issue.field) for issue in issues_of(text)] == [
        (8, "agent.comand"),
        (18, "resources.timeout"),
    ]


def test_the_error_message_lists_every_issue() -> None:
    text = edited("  command:", "  comand:") + "resources:\n  timeout: soon\n"

    with pytest.raises(SpecError) as raised:
        parse_spec(text, filename="specs/hello.yaml")

    assert str(raised.value).splitlines() == [issue.format() for issue in raised.value.issues]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the spec is empty"),
        ("# only a comment\n", "the spec is empty"),
        ("- version: 1\n", "the top level of a spec must be a mapping"),
    ],
)
def test_a_spec_that_is_not_a_mapping_is_rejected(text: str, message: str) -> None:
    assert message in only_issue(text).message


def test_an_unreadable_file_is_a_spec_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"

    with pytest.raises(SpecError) as raised:
        load_spec(missing)

    (issue,) = raised.value.issues
    assert issue.file == str(missing)
    assert "cannot read the spec" in issue.message


def test_supported_network_and_forbidden_settings_are_not_flagged() -> None:
    text = VALID + (
        "network:\n  egress: {default: deny, allow: ['*.example.com']}\naudit:\n  http_calls: true\n"
        "forbidden:\n  file_writes_outside: [src/]\n"
    )

    assert unsupported_features(parse_spec(text).spec) == []


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ("extends: base.yaml\n", "extends"),
        ("fixtures:\n  - {type: drift}\n", "fixtures[0].type"),
    ],
)
def test_unsupported_features_are_errors_not_ignored(extra: str, field: str) -> None:
    issue = only_issue(VALID + extra)

    assert issue.field == field
    assert "is not supported yet by this Keystone version" in issue.message
