"""Keeping secret values out of everything a replica returns.

One pass, applied to the finished `ReplicaResult` (`redact_result`), walks every string of it — paths,
tool names, audit fields, evidence, reasons, errors, output, dict keys — so a field added later cannot
be forgotten. Code that needs the raw text (`forbidden.secrets_in_logs` through `Redactor.leaked`, an
LLM judge that must never receive a secret) uses the same `Redactor` before the pass.

Known limits: a value is recognised only as it was given (not base64-, hex- or URL-encoded, not split
across lines or cut by output truncation), and values shorter than `Redactor.MIN_LENGTH` are left alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar, get_origin

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from ..results import ReplicaResult

Model = TypeVar("Model", bound=BaseModel)

MASK = "***"


class Redactor:
    """Replaces every secret value with `***`. Where values overlap (`abcd` and `cdef` in `abcdef`) the
    whole covered span is masked, and masking is repeated until no value is left, so a mask next to
    other text cannot spell a value either."""

    MIN_LENGTH = 4
    """Shorter values would redact ordinary text; they are not hidden, nor reported as leaks."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._names = {name: value for name, value in values.items() if len(value) >= self.MIN_LENGTH}
        self._values = sorted(set(self._names.values()), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        # Each round replaces at least MIN_LENGTH characters by len(MASK) < MIN_LENGTH: it terminates.
        while spans := self._spans(text):
            kept, end = [], 0
            for start, stop in spans:
                kept += [text[end:start], MASK]
                end = stop
            text = "".join([*kept, text[end:]])
        return text

    def _spans(self, text: str) -> list[tuple[int, int]]:
        """Every occurrence of every value, overlapping ones merged, in order."""
        found = []
        for value in self._values:
            start = text.find(value)
            while start != -1:
                found.append((start, start + len(value)))
                start = text.find(value, start + 1)
        merged: list[tuple[int, int]] = []
        for start, stop in sorted(found):
            if merged and start < merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
            else:
                merged.append((start, stop))
        return merged

    def leaked(self, text: str) -> list[str]:
        """Names of the secrets whose values appear in `text` (for `forbidden.secrets_in_logs`)."""
        return sorted(name for name, value in self._names.items() if value in text)


def redact_result(result: ReplicaResult, redact: Callable[[str], str]) -> ReplicaResult:
    """The result with every string in it redacted: fields, extra keys, nested evidence and dict keys."""
    return _redact_model(result, redact)


def _redact_model(model: Model, redact: Callable[[str], str]) -> Model:
    fields = type(model).model_fields
    # A Literal field (a status) holds Keystone's own vocabulary, never what an agent wrote; redacting it
    # (a secret `pass`) would make the result invalid.
    fixed = {name for name, field in fields.items() if get_origin(field.annotation) is Literal}
    data = {name: value if name in fixed else redact_all(value, redact) for name, value in model}
    return type(model).model_validate(data)


def redact_all(value: Any, redact: Callable[[str], str]) -> Any:
    """Every string in `value` through `redact`, walked as a structure (not as JSON text, where escaping
    would hide values with quotes, backslashes or non-ASCII characters)."""
    if isinstance(value, BaseModel):
        return _redact_model(value, redact)
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_all(key, redact): redact_all(item, redact) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_all(item, redact) for item in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact_all(to_jsonable_python(value), redact)  # a Path, bytes, a set...: as it will be serialised
