"""Turn one pydantic error into a message a spec author can act on.

Pydantic's wording is written for Python callers ("Extra inputs are not permitted"); spec
authors need the key they mistyped, the values that are allowed and an example to copy.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any, Literal, get_args, get_origin

from pydantic_core import ErrorDetails

from ._locate import Located, field_for, tag_of, union_members, yaml_names
from ._source import DataPath

_EXAMPLES = {
    "version": "version: 1",
    "id": "id: refund-agent",
    "base": 'base: "ubuntu:24.04"',
    "task": 'task: {prompt: "Create hello.txt containing Hello, World!"}',
    "prompt": 'prompt: "Create hello.txt containing Hello, World!"',
    "agent": "agent: {type: cli, command: python3 /opt/agent/agent.py}",
    "type": "type: cli",
    "invariants": "invariants: {hello: {check: {type: file_exists, path: hello.txt}}}",
    "check": "check: {type: file_exists, path: hello.txt}",
    "path": "path: hello.txt",
    "content": 'content: "print(1)"',
    "service": "service: db",
    "query": 'query: "SELECT count(*) FROM refunds"',
    "equals": "equals: 1",
    "command": "command: pytest -q",
    "name": "name: db",
    "source": "source: ./seed",
    "url": "url: https://github.com/octocat/Hello-World.git",
    "to_port": "to_port: 3000",
}
"""A line to copy for each required field, shown when it is missing."""


def explain(error: ErrorDetails, located: Located) -> tuple[DataPath, str, str | None]:
    """The path, message and hint for one error, already located in the data."""
    kind = error["type"]
    path = located.path
    if kind == "missing":
        example = _EXAMPLES.get(str(path[-1])) if path else None
        return path, "field required", f"add it, e.g. `{example}`" if example else None
    if kind == "extra_forbidden":
        return (path, *_unknown_key(path[-1], located))
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return _bad_tag(error, located)
    if kind == "literal_error" and get_origin(located.annotation) is Literal:
        allowed = [str(value) for value in get_args(located.annotation)]
        hint = _with_guess(error["input"], allowed, f"allowed values: {_listing(allowed)}")
        return path, f"`{error['input']}` is not an allowed value", hint
    if kind == "model_type":
        return path, f"expected a mapping of `key: value` pairs, got {yaml_kind(error['input'])}", None
    if kind == "string_type" and isinstance(error["input"], int | float):
        return path, _sentence(error["msg"]), 'quote it so YAML keeps it as text, e.g. "1" or "true"'
    return path, _sentence(error["msg"].removeprefix("Value error, ")), None


def _unknown_key(key: object, located: Located) -> tuple[str, str | None]:
    owner = located.owner
    if owner is None:
        return f"unknown field `{key}`", None
    known = field_for(owner, key)
    if known is not None:  # a second alias of a field that is already set
        other = next(alias for alias in yaml_names(known[1], known[0]) if alias != key)
        return f"`{key}` sets the same field as `{other}`", "give only one of them"
    allowed = [alias for name, info in owner.model_fields.items() for alias in yaml_names(info, name)]
    return f"unknown field `{key}`", _guess(key, allowed) or f"allowed here: {_listing(allowed)}"


def _bad_tag(error: ErrorDetails, located: Located) -> tuple[DataPath, str, str | None]:
    """An unknown or missing `type` of a check or fixture: list the types that exist."""
    discriminator = str(error.get("ctx", {}).get("discriminator", "'type'")).strip("'")
    noun = next((str(s) for s in reversed(located.path) if isinstance(s, str)), "").removesuffix("s")
    tags = [tag for tag in (tag_of(m, discriminator) for m in union_members(located.annotation)) if tag]
    valid = f"valid {noun} types: {_listing(tags)}"
    path = (*located.path, discriminator)
    if error["type"] == "union_tag_not_found":
        return path, "field required", valid
    tag = error.get("ctx", {}).get("tag", "")
    return path, f"unknown {noun} type `{tag}`", _with_guess(tag, tags, valid)


def _guess(value: object, choices: list[str]) -> str | None:
    """A "did you mean `X`?" for the closest choice, if one is close enough to be a typo."""
    close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


def _with_guess(value: object, choices: list[str], listing: str) -> str:
    guess = _guess(value, choices)
    return f"{guess} {listing}" if guess else listing


def yaml_kind(value: object) -> str:
    """How a YAML author would name the type of a loaded value."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "a string" if isinstance(value, str) else f"a {type(value).__name__}"


def _listing(names: Iterable[Any]) -> str:
    return ", ".join(str(name) for name in names)


def _sentence(message: str) -> str:
    return message[:1].lower() + message[1:]
