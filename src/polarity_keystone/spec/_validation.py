"""Validate loaded YAML against the `Spec` model, reporting every error at its line.

Plain unions make pydantic report one error per member (`command` is neither a string nor a
list); those are folded into one issue at the key the user wrote, and a member that got further
into the input (a mapping checked field by field) wins over members that rejected it outright.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from ._errors import SpecError, SpecIssue
from ._hints import explain
from ._locate import Located, locate
from ._models import Spec
from ._source import DataPath, SourceMap

_SHAPE_ERRORS = frozenset({"model_type", "model_attributes_type", "dict_type"})
"""Union members that refused the input's shape: noise when a sibling member says more."""


def validate(data: dict[str, Any], source: SourceMap) -> Spec:
    try:
        return Spec.model_validate(data)
    except ValidationError as exc:
        located = [(error, locate(error["loc"])) for error in exc.errors(include_url=False)]
        raise SpecError(_issues(_winning_branches(located), source)) from None


def _winning_branches(located: list[tuple[ErrorDetails, Located]]) -> list[tuple[ErrorDetails, Located]]:
    """Drop union-member errors shallower than the deepest one of the same union."""
    deepest: dict[DataPath, int] = {}
    for _, where in located:
        if where.union_at is not None:
            deepest[where.union_at] = max(deepest.get(where.union_at, 0), len(where.path))
    return [
        (error, where)
        for error, where in located
        if where.union_at is None or len(where.path) == deepest[where.union_at]
    ]


def _issues(located: list[tuple[ErrorDetails, Located]], source: SourceMap) -> list[SpecIssue]:
    plain: list[SpecIssue] = []
    alternatives: dict[DataPath, list[tuple[str, str, str | None]]] = {}
    for error, where in located:
        path, message, hint = explain(error, where)
        if where.union_at is None:
            plain.append(source.issue(path, message, hint))
        else:
            alternatives.setdefault(path, []).append((error["type"], message, hint))
    for path, options in alternatives.items():
        telling = [option for option in options if option[0] not in _SHAPE_ERRORS] or options
        hint = next((hint for _, _, hint in telling if hint), None)
        plain.append(source.issue(path, _either([message for _, message, _ in telling]), hint))
    return sorted(plain, key=lambda issue: (issue.line or 0, issue.column or 0))


def _either(messages: list[str]) -> str:
    """`input should be a valid string or a valid list` from one message per union member."""
    prefix = "input should be "
    if all(message.startswith(prefix) for message in messages):
        return prefix + " or ".join(message.removeprefix(prefix) for message in messages)
    return " or ".join(messages)
