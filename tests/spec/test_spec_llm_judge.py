"""`llm_as_judge` checks in the spec: the documented fields and defaults load, and bad selectors,
oversized criteria, unknown keys and an `input_from` naming a mock that does not record are rejected
with the field."""

from __future__ import annotations

import pytest

from polarity_keystone.spec import LlmAsJudgeCheck, SpecError, SpecIssue, parse_spec, unsupported_features

VALID = """\
version: 1
id: judged
base: "ubuntu:24.04"
task:
  prompt: Write a polite refund email
agent:
  type: cli
  command: python3 agent.py
services:
  - name: smtp
    type: http_mock
    record: true
  - name: db
    image: postgres:16
invariants:
  polite:
    check:
      type: llm_as_judge
      criteria: The reply is polite and mentions the refund amount
  email:
    weight: 2
    check:
      type: llm_as_judge
      model: claude-sonnet-4-5
      criteria: The email body apologises
      input_from: smtp.last_request.body
      rubric: {pass: "apologises and names the amount", fail: "rude or no amount"}
      prompt_template: "Rate {input} against {criteria}. {rubric}"
      temperature: 0.2
      pass_threshold: 0.7
      template_key: factuality
      provider: anthropic
"""


def edited(old: str, new: str) -> str:
    assert old in VALID, old
    return VALID.replace(old, new)


def only_issue(text: str) -> SpecIssue:
    with pytest.raises(SpecError) as raised:
        parse_spec(text, filename="judged.yaml")
    (issue,) = raised.value.issues
    return issue


def test_the_documented_fields_and_defaults_load_and_are_supported() -> None:
    spec = parse_spec(VALID).spec

    assert unsupported_features(spec) == []
    polite = spec.invariants["polite"].check
    assert isinstance(polite, LlmAsJudgeCheck)
    assert (polite.model, polite.input_from, polite.temperature, polite.pass_threshold) == (
        "paragon-fast",
        "agent_output",
        0.0,
        0.5,
    )
    assert (polite.rubric, polite.prompt_template, polite.provider) == (None,) * 3
    assert polite.input_service is None
    email = spec.invariants["email"].check
    assert isinstance(email, LlmAsJudgeCheck)
    assert email.rubric is not None
    assert (email.rubric.pass_, email.rubric.fail) == ("apologises and names the amount", "rude or no amount")
    assert (email.model, email.provider, email.template_key) == (
        "claude-sonnet-4-5",
        "anthropic",
        "factuality",
    )
    assert (email.temperature, email.pass_threshold) == (0.2, 0.7)
    assert email.input_service == "smtp"


@pytest.mark.parametrize(
    ("selector", "service"),
    [
        ("stdout", None),
        ("workspace", None),
        ("file:reports/summary.md", None),
        ("file:a.b.last_request", None),
        ("smtp.last_request", "smtp"),
        ("smtp.last_request.body", "smtp"),
    ],
)
def test_selectors(selector: str, service: str | None) -> None:
    check = LlmAsJudgeCheck.model_validate({"type": "llm_as_judge", "criteria": "x", "input_from": selector})
    assert check.input_service == service


@pytest.mark.parametrize(
    ("old", "new", "field", "message"),
    [
        ("input_from: smtp.last_request.body", "input_from: smtp.body", "input_from", "is not a selector"),
        ("input_from: smtp.last_request.body", "input_from: 'file:'", "input_from", "is not a selector"),
        ("      criteria: The email body apologises\n", "", "criteria", "field required"),
        ("criteria: The email body apologises", "criteria: " + "x" * 5000, "criteria", "4096"),
        ('fail: "rude or no amount"', 'fial: "rude"', "rubric.fial", "did you mean `fail`"),
        ("provider: anthropic", "provider: gemini", "provider", "openai, anthropic"),
        ("pass_threshold: 0.7", "pass_threshold: 1.5", "pass_threshold", "less than or equal to 1"),
        ("template_key: factuality", "temprature: 0", "temprature", "temperature"),
    ],
)
def test_invalid_judges_name_the_field(old: str, new: str, field: str, message: str) -> None:
    issue = only_issue(edited(old, new))

    assert issue.field == f"invariants.email.check.{field}"
    assert message in f"{issue.message} {issue.suggestion}"


def test_input_from_a_mock_that_does_not_record_is_rejected() -> None:
    issue = only_issue(edited("    record: true\n", ""))

    assert issue.field == "invariants.email.check.input_from"
    assert "does not record requests" in issue.message
    assert issue.suggestion == "add `record: true` to services[0]"


def test_input_from_a_service_that_is_no_mock_is_rejected() -> None:
    issue = only_issue(edited("input_from: smtp.last_request.body", "input_from: db.last_request.body"))

    assert issue.field == "invariants.email.check.input_from"
    assert "`db` is not an http_mock service; llm_as_judge reads" in issue.message


def test_input_from_an_undeclared_service_suggests_the_closest() -> None:
    issue = only_issue(edited("input_from: smtp.last_request.body", "input_from: smtq.last_request"))

    assert issue.field == "invariants.email.check.input_from"
    assert "`smtq` is not declared" in issue.message
    assert issue.suggestion == "did you mean `smtp`?"
