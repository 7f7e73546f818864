"""The `http_mock_assertions` check: reads the requests an `http_mock` service recorded and counts the
ones each assertion describes, keeping the matching requests and the whole request log as evidence."""

from __future__ import annotations

import fnmatch
import json
from typing import Any
from urllib.parse import parse_qs

from ..services import http_mock
from ..spec import HttpMockAssertionsCheck, MockRequestAssertion
from ._checks import CheckContext, Outcome, register

BODY_EXCERPT = 500
"""Characters of a request body kept in the evidence."""
MATCHING_KEPT = 10
REQUESTS_KEPT = 20


@register("http_mock_assertions")
def _http_mock_assertions(check: HttpMockAssertionsCheck, ctx: CheckContext) -> Outcome:
    service = ctx.services.get(check.service)
    if service is None or service.type != "http_mock" or not service.record:
        return Outcome(False, f"service {check.service!r} is not an http_mock service with record: true")
    requests = http_mock.recorded_requests(ctx.sandbox, service)
    verdicts = []
    summaries = []
    problems = []
    for assertion in check.all_assertions():
        matching = [request for request in requests if matches(assertion, request)]
        least, most = assertion.bounds()
        passed = len(matching) >= least and (most is None or len(matching) <= most)
        expected = describe(assertion)
        verdict = f"{expected}: {_times(len(matching))}, expected {_bounds(least, most)}"
        summaries.append(f"{expected}: {_times(len(matching))}")
        if not passed:
            problems.append(verdict)
        verdicts.append(
            {
                "expected": expected,
                "matched": len(matching),
                "passed": passed,
                "matching": [_excerpt(request) for request in matching[:MATCHING_KEPT]],
            }
        )
    evidence: dict[str, Any] = {
        "service": service.name,
        "assertions": verdicts,
        "total_requests": len(requests),
        "requests": [_line(request) for request in requests[:REQUESTS_KEPT]],
    }
    message = f"{service.name}: " + "; ".join(problems or summaries)
    if problems and not requests:
        message += " (the mock received no requests at all)"
    return Outcome(not problems, message, evidence)


def matches(assertion: MockRequestAssertion, request: dict[str, Any]) -> bool:
    """Whether one recorded request passes every filter the assertion gives."""
    if assertion.method is not None and assertion.method not in ("*", "ANY", request.get("method")):
        return False
    if assertion.path is not None and not http_mock.compile_path(assertion.path).fullmatch(
        str(request.get("path", ""))
    ):
        return False
    if assertion.query is not None:
        query = {name: values[-1] for name, values in parse_qs(str(request.get("query", ""))).items()}
        if any(query.get(name) != value for name, value in assertion.query.items()):
            return False
    if assertion.headers is not None:
        headers = {str(name).lower(): str(value) for name, value in (request.get("headers") or {}).items()}
        for name, value in assertion.headers.items():
            actual = headers.get(name.lower())
            if actual is None or not fnmatch.fnmatchcase(actual, value):
                return False
    body = str(request.get("body", ""))
    if assertion.body_contains is not None and assertion.body_contains not in body:
        return False
    if assertion.json_ is not None:
        try:
            document = json.loads(body)
        except json.JSONDecodeError:
            return False
        if not json_subset(assertion.json_, document):
            return False
    return True


def json_subset(expected: Any, actual: Any) -> bool:
    """Mappings: every expected key is present with a matching value (extra keys are fine). Lists: the
    same length, item by item. Scalars: equal, with 1 == 1.0 but true != 1."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and json_subset(value, actual[key]) for key, value in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(json_subset(e, a) for e, a in zip(expected, actual, strict=True))
        )
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    return bool(expected == actual)


def describe(assertion: MockRequestAssertion) -> str:
    """The assertion's filters in words, e.g. `POST /v1/charges with json {"amount": 4999}`."""
    words = [assertion.method or "any method", assertion.path or "any path"]
    if assertion.query is not None:
        words.append(f"with query {json.dumps(assertion.query, sort_keys=True)}")
    if assertion.headers is not None:
        words.append(f"with headers {json.dumps(assertion.headers, sort_keys=True)}")
    if assertion.body_contains is not None:
        words.append(f"with a body containing {assertion.body_contains!r}")
    if assertion.json_ is not None:
        words.append(f"with json {json.dumps(assertion.json_, sort_keys=True)}")
    return " ".join(words)


def _times(count: int) -> str:
    return f"{count} matching request" + ("" if count == 1 else "s")


def _bounds(least: int, most: int | None) -> str:
    if most == least:
        return "none" if least == 0 else f"exactly {least}"
    if most is None:
        return f"at least {least}"
    return f"at most {most}" if least == 0 else f"between {least} and {most}"


def _line(request: dict[str, Any]) -> str:
    query = request.get("query")
    target = f"{request.get('path', '')}?{query}" if query else str(request.get("path", ""))
    return f"{request.get('method', '?')} {target} -> {request.get('status', '?')}"


def _excerpt(request: dict[str, Any]) -> dict[str, Any]:
    body = str(request.get("body", ""))
    if len(body) > BODY_EXCERPT:
        body = body[:BODY_EXCERPT] + f"... ({len(body) - BODY_EXCERPT} more characters)"
    return {**request, "body": body}
