"""The spec loader on hostile input: random YAML-ish text and mutated valid specs either load or raise
`SpecError` (never another exception), within bounded time and memory."""

from __future__ import annotations

import copy
import math
import tracemalloc
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polarity_keystone.spec import LoadedSpec, SpecError, parse_spec

FULL = Path(__file__).parent / "data" / "full"
VALID = yaml.safe_load((FULL / "spec.yaml").read_text())
PEAK_LIMIT = 64 * 1024**2
"""Bytes one example may allocate at its peak; an alias bomb or a deep nest would take far more."""

FUZZ = settings(
    max_examples=200,
    deadline=2000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

YAML_PIECES = st.sampled_from(
    [
        "- ",
        ": ",
        "&a ",
        "*a ",
        "&b ",
        "*b ",
        "[",
        "]",
        "{",
        "}",
        ", ",
        "\n",
        "  ",
        "    ",
        "<<: ",
        "? ",
        "|\n",
        ">-\n",
        "'",
        '"',
        "#",
        "---\n",
        "...\n",
        "%YAML 1.1\n",
        "!!binary ",
        "!!float ",
        "!!timestamp ",
        "!!python/object:os.system ",
        "!custom ",
        "\t",
        "\x00",
        "\ufeff",
        "~",
        "null",
        ".inf",
        "-.inf",
        ".nan",
        "1e999",
        "0x" + "f" * 20,
        "9" * 5000,
        "2024-13-45",
        "true",
        "version",
        "id",
        "base",
        "task",
        "agent",
        "invariants",
        "resources",
        "memory",
        "check",
        "type",
        "sql",
        "equals",
        "json",
        "path",
        "/etc/passwd",
        "../..",
        "secrets",
        "command:id",
        "matrix",
    ]
)
YAML_TEXT = st.one_of(
    st.text(max_size=400),
    st.lists(YAML_PIECES, max_size=80).map("".join),
    st.lists(st.one_of(YAML_PIECES, st.text(max_size=8)), max_size=80).map("".join),
)

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**310),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(
        ["", "1", "0", "-1", "1Gi", "1", "5m", "/etc", "../x", "command:id", "env:HOME", "a" * 5000]
    ),
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


def _load(text: str) -> LoadedSpec | SpecError:
    """The loader's answer, its peak memory checked; any exception but SpecError fails the test."""
    tracemalloc.start()
    try:
        try:
            return parse_spec(text, "fuzz.yaml", FULL)
        except SpecError as exc:
            assert exc.issues and all(issue.format() for issue in exc.issues)
            return exc
        finally:
            _, peak = tracemalloc.get_traced_memory()
            assert peak < PEAK_LIMIT, f"loading took {peak / 1024**2:.0f} MiB at its peak"
    finally:
        tracemalloc.stop()


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path in `data`, containers and leaves alike."""
    found = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _paths(value, (*prefix, index))
    return found


def _mutate(data: Any, path: tuple[Any, ...], action: str, value: Any) -> Any:
    if not path:
        return value
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    if action == "delete":
        del parent[path[-1]]
    elif action == "nest":
        parent[path[-1]] = [[parent[path[-1]]]]
    else:
        parent[path[-1]] = value
    return data


@FUZZ
@given(YAML_TEXT)
def test_random_yaml_text_loads_or_is_a_spec_error(text: str) -> None:
    _load(text)


@FUZZ
@given(st.data())
def test_mutated_valid_specs_load_or_are_spec_errors(data: st.DataObject) -> None:
    spec = copy.deepcopy(VALID)
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        path = data.draw(st.sampled_from(_paths(spec)))
        action = data.draw(st.sampled_from(["replace", "delete", "nest"]) if path else st.just("replace"))
        spec = _mutate(spec, path, action, data.draw(VALUES))
    try:
        text = yaml.safe_dump(spec, allow_unicode=True)
    except (yaml.YAMLError, ValueError):
        return  # not every Python value is YAML; the loader never sees these
    _load(text)


def test_the_valid_spec_itself_loads() -> None:
    loaded = _load(yaml.safe_dump(VALID))

    assert isinstance(loaded, LoadedSpec)
    assert math.isfinite(loaded.spec.resources.cpu)
