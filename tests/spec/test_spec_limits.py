"""Spec inputs that cannot blow up: the YAML is bounded (size, depth, aliases followed) before it is
validated, and values that would fail mid-run (a 12,000-character id, `memory: 1`) are spec errors
with their line."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest

from polarity_keystone.cli import main
from polarity_keystone.spec import SpecError, parse_spec

MINIMAL = """\
version: 1
id: hello-world
base: "ubuntu:24.04"
task: {prompt: Create hello.txt}
agent: {type: cli, command: python3 agent.py}
invariants:
  hello:
    check: {type: file_exists, path: hello.txt}
"""

LAUGHS = "".join(
    f"{level}: &{level} [{', '.join(['*' + below] * 9)}]\n"
    for below, level in zip("abcdefgh", "bcdefghi", strict=True)
)
"""Nine levels of nine aliases: 9**9 strings once expanded, from about 700 bytes."""


def _issue(text: str) -> str:
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "spec.yaml")
    return str(caught.value)


def _with(block: str) -> str:
    return MINIMAL + block


@pytest.mark.parametrize(
    "field",
    [
        "    check: {type: sql, service: db, query: SELECT 1, equals: *i}\n",
        "    check: {type: http_mock_assertions, service: api, json: *i}\n",
    ],
)
def test_a_billion_laughs_is_refused_at_the_alias_that_crosses_the_bound(field: str) -> None:
    text = "x-bomb:\n  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    text += "".join("  " + line + "\n" for line in LAUGHS.splitlines())
    text = MINIMAL.replace("invariants:\n", text + "invariants:\n  bomb:\n" + field)
    assert len(text.encode()) < 1500
    tracemalloc.start()
    started = time.monotonic()
    try:
        message = _issue(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert "the spec expands to more than 100000 values (aliases followed)" in message
    assert message.startswith("spec.yaml:")  # at the line of an alias
    assert time.monotonic() - started < 2 and peak < 50 * 1024**2


def test_nesting_a_thousand_deep_is_a_spec_error_not_a_recursion_error() -> None:
    message = _issue(_with("description: " + "[" * 1000 + "]" * 1000 + "\n"))

    assert "spec.yaml:9:" in message and "nests deeper than 64 levels" in message


def test_a_recursive_alias_is_refused() -> None:
    assert "alias *loop refers to itself" in _issue(_with("x: &loop [*loop]\n"))


def test_the_text_size_is_capped_with_both_figures() -> None:
    text = _with("description: " + "a" * (1024 * 1024) + "\n")
    message = _issue(text)

    assert f"the spec is 1.0 MiB ({len(text)} bytes); the limit is 1.0 MiB" in message


@pytest.mark.parametrize(
    "value",
    ["1" * 5000, "2024-13-45", "!!float nope", '!!float ""', "!!timestamp x"],
)
def test_a_scalar_python_cannot_hold_is_a_yaml_error_at_its_line(value: str) -> None:
    message = _issue(_with(f"description: {value}\n"))

    assert message.startswith("spec.yaml:9:14: invalid YAML: cannot read")


@pytest.mark.parametrize(
    ("change", "field", "expected"),
    [
        (("id: hello-world", "id: " + "a" * 12_000), "id", "id has 12000 characters; the limit is 100"),
        (
            ("invariants:", "resources: {memory: 1}\ninvariants:"),
            "resources.memory",
            "below Docker's minimum of 6Mi",
        ),
        (
            ("invariants:", "resources: {memory: 2Ti}\ninvariants:"),
            "resources.memory",
            "above the limit of 1Ti",
        ),
        (
            ("invariants:", "resources: {memory: .inf}\ninvariants:"),
            "resources.memory",
            "finite number of bytes",
        ),
        (
            ("invariants:", "resources: {cpu: 0}\ninvariants:"),
            "resources.cpu",
            "greater than or equal to 0.01",
        ),
        (
            ("invariants:", "resources: {cpu: 1000}\ninvariants:"),
            "resources.cpu",
            "less than or equal to 256",
        ),
        (
            ("invariants:", "resources: {timeout: 30d}\ninvariants:"),
            "resources.timeout",
            "longer than the limit",
        ),
        (("invariants:", "resources: {timeout: .nan}\ninvariants:"), "resources.timeout", "finite number"),
        (
            ("command: python3 agent.py}", "command: x, timeout: 2d}"),
            "agent.timeout",
            "longer than the limit",
        ),
        (("command: python3 agent.py}", f"command: x, path: {'a' * 5000}}}"), "agent.path", "at most 4096"),
    ],
)
def test_limits_are_spec_errors_with_file_line_and_field(
    change: tuple[str, str], field: str, expected: str
) -> None:
    message = _issue(MINIMAL.replace(*change))

    assert f": {field}: " in message and expected in message
    assert message.startswith("spec.yaml:")


def test_counts_and_the_matrix_are_bounded() -> None:
    services = "services:\n" + "".join(f"  - {{name: s{i}, image: x}}\n" for i in range(65))
    matrix = "parallelism:\n  matrix: {a: [" + ",".join(map(str, range(11))) + "], b: ["
    matrix += ",".join(map(str, range(100))) + "]}\n"

    assert "services: list should have at most 64 items" in _issue(_with(services))
    assert "the matrix has 1100 cells (scenarios); the limit is 1000" in _issue(_with(matrix))


def test_expected_values_are_typed_and_bounded() -> None:
    sql = "    check: {type: sql, service: db, query: SELECT 1, equals: [1, 2]}\n"
    deep_json = "    check: {type: http_mock_assertions, service: api, json: " + "[" * 40 + "]" * 40 + "}\n"
    invariants = MINIMAL.index("invariants:")

    def with_check(check: str) -> str:
        return MINIMAL[:invariants] + "invariants:\n  it:\n" + check

    assert "spec.yaml:8:54: invariants.it.check.equals: input should be a valid string" in _issue(
        with_check(sql)
    )
    assert "nests deeper than 32 levels" in _issue(with_check(deep_json))


def test_a_date_expected_by_a_sql_check_is_compared_as_text() -> None:
    services = 'services: [{name: db, image: "postgres:16"}]\n'
    check = "  day:\n    check: {type: sql, service: db, query: SELECT current_date, equals: 2025-01-31}\n"
    spec = parse_spec(services + MINIMAL + check).spec

    assert spec.invariants["day"].check.equals == "2025-01-31"  # type: ignore[union-attr]


def test_ks_spec_validate_exits_2_for_memory_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(MINIMAL.replace("invariants:", "resources: {memory: 1}\ninvariants:"))

    assert main(["spec", "validate", str(spec)]) == 2
    assert "resources.memory" in capsys.readouterr().err
