"""The one redaction pass over a finished replica result: secret values planted in every string field of
a `ReplicaResult` (found by walking the model, so a new field is planted too), inside other text, in dict
keys, overlapping each other, never survive it — nor reach what the gate writes from the result."""

from __future__ import annotations

import types
from typing import Any, Literal, Union, get_args, get_origin

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from polarity_keystone.engine._aggregate import aggregate_run, aggregate_scenario
from polarity_keystone.gate import GateReport, Policy, SpecRun, decide
from polarity_keystone.gate._junit import render_junit
from polarity_keystone.gate._summary import render
from polarity_keystone.results import ForbiddenCheckResult, InvariantResult, ReplicaResult, RunResults
from polarity_keystone.secrets import Redactor, redact_result

CJK = st.characters(min_codepoint=0x4E00, max_codepoint=0x4E05)
"""Characters no JSON syntax, field name, JUnit or Markdown template contains: a value made of them can
be looked for in serialised text without false alarms (and, from six characters, values overlap)."""
SECRET = st.one_of(st.text(min_size=Redactor.MIN_LENGTH, max_size=10), st.text(CJK, min_size=4, max_size=8))


def _only_cjk(value: str) -> bool:
    return all(0x4E00 <= ord(char) <= 0x4E05 for char in value)


@st.composite
def planted_text(draw: st.DrawFn, secrets: list[str]) -> str:
    """Text with secrets inside: alone, two overlapping (`abcd` + `cdef` -> `abcdef`), or run together."""
    first, second = draw(st.sampled_from(secrets)), draw(st.sampled_from(secrets))
    overlap = next(
        (k for k in range(min(len(first), len(second)) - 1, 0, -1) if first.endswith(second[:k])), 0
    )
    core = draw(st.sampled_from([first, first + second[overlap:], first + second]))
    return draw(st.text(max_size=4)) + core + draw(st.text(max_size=4))


def json_values(text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    leaves = st.one_of(st.none(), st.booleans(), st.integers(), text)
    return st.recursive(
        leaves,
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)),
        max_leaves=8,
    )


def for_type(annotation: Any, text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """A strategy for a field's type, with `text` wherever a string can go (keys of dicts too)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return for_model(annotation, text)
    if annotation is str:
        return text
    if annotation is bool:
        return st.booleans()
    if annotation is int:
        return st.integers(-(2**31), 2**31)
    if annotation is float:
        return st.floats(allow_nan=False, allow_infinity=False)
    if annotation is Any:
        return json_values(text)
    if origin is Literal:
        return st.sampled_from(args)
    if origin in (Union, types.UnionType):
        return st.one_of([for_type(arg, text) for arg in args])
    if origin is list:
        return st.lists(for_type(args[0], text), max_size=3)
    if origin is tuple:
        return st.tuples(*(for_type(arg, text) for arg in args))
    if origin is dict:
        return st.dictionaries(for_type(args[0], text), for_type(args[1], text), max_size=3)
    if annotation is type(None):
        return st.none()
    raise AssertionError(f"no strategy for {annotation!r}: teach the test the new field type")


def for_model(model: type[BaseModel], text: st.SearchStrategy[str]) -> st.SearchStrategy[BaseModel]:
    fields = {name: for_type(field.annotation, text) for name, field in model.model_fields.items()}
    extra = st.dictionaries(st.from_regex(r"x_[a-z]{1,6}", fullmatch=True), json_values(text), max_size=2)
    return st.builds(lambda values, more: model(**values, **more), st.fixed_dictionaries(fields), extra)


@st.composite
def planted(draw: st.DrawFn) -> tuple[dict[str, str], ReplicaResult]:
    secrets = draw(st.lists(SECRET, min_size=1, max_size=3, unique=True))
    text = st.one_of(planted_text(secrets), st.text(max_size=6))
    result = draw(for_model(ReplicaResult, text))
    assert isinstance(result, ReplicaResult)
    return {f"S{index}": value for index, value in enumerate(secrets)}, result


def strings(value: Any) -> list[str]:
    """Every string a result holds: values, and keys of its dicts (not the names of its fields)."""
    if isinstance(value, BaseModel):
        return [text for _, item in value for text in strings(item)]
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for key, item in value.items() for text in [*strings(key), *strings(item)]]
    if isinstance(value, list | tuple):
        return [text for item in value for text in strings(item)]
    return []


def gate_outputs(replica: ReplicaResult) -> str:
    """What the gate writes from a results document carrying `replica`: JUnit XML and the summary."""
    scenario = aggregate_scenario("spec", "spec", {}, [replica])
    results = aggregate_run(
        spec_id="spec", experiment_id="exp-1", seed=1, scenarios=[scenario], fingerprint={}, spec_file="", k=1
    )
    document = RunResults.model_validate_json(results.model_dump_json())  # as the gate reads it
    verdict = decide([SpecRun("spec", document)], Policy())
    return render_junit(verdict) + render(GateReport(verdict=verdict))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(planted())
def test_no_planted_secret_survives_the_redaction_pass(case: tuple[dict[str, str], ReplicaResult]) -> None:
    secrets, result = case
    redacted = redact_result(result, Redactor(secrets))

    assert redacted.status == result.status
    seen = strings(redacted)
    text, written = redacted.model_dump_json(), gate_outputs(redacted)
    for value in secrets.values():
        assert not [shown for shown in seen if value in shown], value
        if _only_cjk(value):
            assert value not in text
            assert value not in written


def _failing(secret: str) -> ReplicaResult:
    return ReplicaResult(
        replica=0,
        seed=1,
        status="fail",
        reasons=[f"gate invariant failed: saw {secret}"],
        error=f"error {secret}",
        invariants=[InvariantResult(name="done", passed=False, gate=True, reason=f"no {secret}")],
        forbidden_checks=[ForbiddenCheckResult(rule="tool_calls", violated=True, details=f"called {secret}")],
        audit=[
            {"type": "file_write", "path": f"{secret}.txt", "change": "added"},
            {"type": "tool_call", "tool": secret, "status": "ok"},
        ],
    )


def test_paths_and_tool_names_in_the_audit_are_redacted() -> None:
    secret = "tok-3f9a77c1"
    redacted = redact_result(_failing(secret), Redactor({"TOKEN": secret}))

    assert redacted.audit[0]["path"] == "***.txt"
    assert redacted.audit[1]["tool"] == "***"
    assert secret not in redacted.model_dump_json()


def test_the_gate_writes_no_secret_from_a_redacted_result() -> None:
    secret = "tok-3f9a77c1"
    assert secret in gate_outputs(_failing(secret))  # the gate shows what the result says
    assert secret not in gate_outputs(redact_result(_failing(secret), Redactor({"TOKEN": secret})))


def test_overlapping_values_are_masked_as_one_span() -> None:
    redact = Redactor({"A": "abcd", "B": "cdef"})
    assert redact("x abcdef y") == "x *** y"
    assert redact("cdefabcd") == "******"


def test_a_mask_next_to_other_text_cannot_spell_a_value() -> None:
    redact = Redactor({"A": "a***", "B": "bcde"})
    assert redact("abcde") == "***"


def test_a_secret_equal_to_a_status_keeps_the_result_valid() -> None:
    redacted = redact_result(
        ReplicaResult(replica=0, seed=1, status="pass", agent_output="pass"), Redactor({"P": "pass"})
    )
    assert (redacted.status, redacted.agent_output) == ("pass", "***")


def test_values_shorter_than_the_minimum_are_left_alone() -> None:
    assert Redactor({"PIN": "123"})("pin 123") == "pin 123"
