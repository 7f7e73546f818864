"""`http_mock` services and `http_mock_assertions` checks in the spec: what loads, and what is rejected
with the file, line and field (bad routes, contradictory counts, a check against a mock that does not
record, or against a service that is no mock)."""

from __future__ import annotations

import pytest

from polarity_keystone.spec import (
    HttpMockAssertionsCheck,
    SpecError,
    SpecIssue,
    parse_spec,
    unsupported_features,
)

VALID = """\
version: 1
id: stripe
base: "ubuntu:24.04"
task:
  prompt: Charge the order
agent:
  type: cli
  command: python3 agent.py
services:
  - name: stripe-mock
    type: http_mock
    record: true
    default_response: 404
    routes:
      - {method: POST, path: /v1/charges, response: '{"id": "ch_1"}', status: 200}
      - {method: get, path: "/v1/charges/{id}", response: {id: ch_1}}
  - name: db
    image: postgres:16
invariants:
  charged:
    check:
      type: http_mock_assertions
      service: stripe-mock
      method: POST
      path: /v1/charges
      json: {amount: 4999}
      count: 1
"""
"""A valid spec whose line numbers the cases below rely on."""


def edited(old: str, new: str) -> str:
    assert old in VALID, old
    return VALID.replace(old, new)


def only_issue(text: str) -> SpecIssue:
    with pytest.raises(SpecError) as raised:
        parse_spec(text, filename="specs/stripe.yaml")
    (issue,) = raised.value.issues
    assert issue.file == "specs/stripe.yaml"
    return issue


def test_the_valid_spec_loads_and_is_supported() -> None:
    spec = parse_spec(VALID).spec

    assert unsupported_features(spec) == []
    mock = spec.services[0]
    assert (mock.type, mock.image, mock.record, mock.default_response) == ("http_mock", None, True, 404)
    assert [(r.method, r.path, r.status) for r in mock.routes] == [
        ("POST", "/v1/charges", 200),
        ("GET", "/v1/charges/{id}", 200),
    ]
    assert mock.routes[1].response == '{"id": "ch_1"}'
    check = spec.invariants["charged"].check
    assert isinstance(check, HttpMockAssertionsCheck)
    (assertion,) = check.all_assertions()
    assert (assertion.method, assertion.path, assertion.json_, assertion.count) == (
        "POST",
        "/v1/charges",
        {"amount": 4999},
        1,
    )
    assert assertion.bounds() == (1, 1)


def test_a_list_of_assertions_loads() -> None:
    text = edited(
        "      method: POST\n      path: /v1/charges\n      json: {amount: 4999}\n      count: 1\n",
        "      assertions:\n        - {method: POST, path: /v1/charges, min_count: 1}\n"
        "        - {path: /v1/refunds, called: false}\n",
    )
    check = parse_spec(text).spec.invariants["charged"].check
    assert isinstance(check, HttpMockAssertionsCheck)
    assert [a.bounds() for a in check.all_assertions()] == [(1, None), (0, 0)]


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        pytest.param(
            edited("record: true", "record: true\n    routes_: []"),
            13,
            "services[0].routes_",
            "unknown field `routes_`",
            id="unknown service key",
        ),
        pytest.param(
            edited("path: /v1/charges, response", "path: v1/charges, response"),
            15,
            "services[0].routes[0].path",
            "must start with `/`",
            id="relative route path",
        ),
        pytest.param(
            edited("status: 200}", "status: 99}"),
            15,
            "services[0].routes[0].status",
            "not an HTTP status code",
            id="route status out of range",
        ),
        pytest.param(
            edited("default_response: 404", "default_response: 1000"),
            13,
            "services[0].default_response",
            "not an HTTP status code",
            id="default response out of range",
        ),
        pytest.param(
            edited("{method: get,", "{method: 'g e t',"),
            16,
            "services[0].routes[1].method",
            "must be an HTTP method",
            id="bad method",
        ),
        pytest.param(
            edited("    image: postgres:16\n", "    image: postgres:16\n    record: true\n"),
            17,
            "services[1]",
            "only apply to a service with type: http_mock",
            id="record on a non-mock service",
        ),
        pytest.param(
            edited("      count: 1\n", "      count: 1\n      max_count: 3\n"),
            21,
            "invariants.charged.check",
            "either `count` or `min_count`/`max_count`",
            id="count and bounds",
        ),
        pytest.param(
            edited("      count: 1\n", "      called: false\n      min_count: 2\n"),
            21,
            "invariants.charged.check",
            "contradicts",
            id="called false with a minimum",
        ),
        pytest.param(
            edited("      count: 1\n", "      min_count: 3\n      max_count: 2\n"),
            21,
            "invariants.charged.check",
            "greater than max_count",
            id="min above max",
        ),
        pytest.param(
            edited(
                "      count: 1\n", "      count: 1\n      assertions: [{path: /v1/refunds, called: false}]\n"
            ),
            21,
            "invariants.charged.check",
            "inside one of the `assertions`",
            id="flat fields and a list",
        ),
        pytest.param(
            edited("      count: 1\n", "      cuont: 1\n"),
            27,
            "invariants.charged.check.cuont",
            "unknown field `cuont`",
            id="typo in a check key",
        ),
        pytest.param(
            edited("      service: stripe-mock\n", ""),
            21,
            "invariants.charged.check.service",
            "field required",
            id="service required",
        ),
    ],
)
def test_invalid_mocks_and_checks_name_the_line(text: str, line: int, field: str, message: str) -> None:
    issue = only_issue(text)

    assert issue.field == field
    assert message in issue.message
    assert issue.line == line


def test_assertions_need_a_mock_that_records() -> None:
    issue = only_issue(edited("    record: true\n", ""))

    assert issue.field == "invariants.charged.check.service"
    assert issue.line == 22
    assert "does not record requests" in issue.message
    assert issue.suggestion == "add `record: true` to services[0]"


def test_assertions_need_an_http_mock_service() -> None:
    issue = only_issue(edited("service: stripe-mock", "service: db"))

    assert issue.field == "invariants.charged.check.service"
    assert issue.line == 23
    assert "`db` is not an http_mock service" in issue.message
    assert issue.suggestion == "give services[1] `type: http_mock` and `record: true`"


def test_assertions_against_an_undeclared_service_suggest_the_closest() -> None:
    issue = only_issue(edited("service: stripe-mock", "service: stripe-mok"))

    assert issue.field == "invariants.charged.check.service"
    assert issue.line == 23
    assert "`stripe-mok` is not declared" in issue.message
    assert issue.suggestion == "did you mean `stripe-mock`?"


def test_an_http_mock_needs_no_image_but_other_services_do() -> None:
    issue = only_issue(edited("    image: postgres:16\n", ""))

    assert issue.field == "services[1]"
    assert "needs an `image`" in issue.message
