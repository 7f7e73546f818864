"""The prompt template language ("mustache-lite") and its bounded renderer.

- `{name}` or `{{name}}` (spaces allowed inside the double braces) is replaced by the variable's value;
  a dotted path (`{user.name}`, `{items.0}`) walks dict keys and list indices, nothing else: no attribute,
  no call, no expression. Strings are inserted as they are, numbers and booleans as JSON writes them, null
  as nothing, lists and objects as JSON.
- A variable that no scope has (or a path that does not resolve) is left as it was written, so literal
  braces in a prompt (JSON examples, code) survive rendering.
- `{#name}...{/name}` is a section: over a list it renders its body once per item, the item being `_it`
  and, when it is an object, its keys in scope too; any other truthy value renders the body once (an
  object's keys in scope, the value as `_it`); a falsy or absent value renders nothing.

Templates come from API callers, so everything is bounded: the template's length (MAX_TEMPLATE_CHARS),
how deep sections nest (MAX_DEPTH), the rendered text (MAX_OUTPUT_CHARS) and the work a render may do
(MAX_STEPS: a section over a long list nested in another multiplies it even when nothing is written).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MAX_TEMPLATE_CHARS = 64 * 1024
MAX_DEPTH = 16
"""Sections inside sections, at most."""
MAX_OUTPUT_CHARS = 1024 * 1024
MAX_STEPS = 1_000_000
"""Template pieces written plus section items visited, in one render."""
IT = "_it"

_PATH = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*"
_TAG = re.compile(
    rf"\{{\{{\s*(?P<dkind>[#/]?)\s*(?P<dpath>{_PATH})\s*\}}\}}|\{{(?P<kind>[#/]?)(?P<path>{_PATH})\}}"
)
_MISSING = object()


class TemplateError(ValueError):
    """The template cannot be parsed: a section left open, closed without opening, or nested too deep."""


class RenderLimitExceeded(ValueError):
    """Rendering would write more than MAX_OUTPUT_CHARS or take more than MAX_STEPS."""


@dataclass(frozen=True)
class _Variable:
    path: tuple[str, ...]
    written: str


@dataclass(frozen=True)
class _Section:
    path: tuple[str, ...]
    body: list[_Node] = field(default_factory=list)


_Node = str | _Variable | _Section


@dataclass(frozen=True)
class Template:
    nodes: list[_Node]

    def variables(self) -> list[str]:
        """The names the template takes from its caller, in order of first use: those of its variables
        and sections outside any section (inside one, a name may be the item's)."""
        names = dict.fromkeys(node.path[0] for node in self.nodes if not isinstance(node, str))
        return [name for name in names if name != IT]

    def render(self, variables: Mapping[str, Any]) -> str:
        """RenderLimitExceeded past MAX_OUTPUT_CHARS or MAX_STEPS."""
        writer = _Writer()
        writer.write_nodes(self.nodes, [variables])
        return "".join(writer.parts)


def parse(text: str) -> Template:
    """TemplateError for a template over MAX_TEMPLATE_CHARS or with unbalanced or too deeply nested
    sections."""
    if len(text) > MAX_TEMPLATE_CHARS:
        raise TemplateError(
            f"the template is {len(text)} characters; at most {MAX_TEMPLATE_CHARS} are allowed"
        )
    root: list[_Node] = []
    open_sections: list[_Section] = []
    position = 0
    for match in _TAG.finditer(text):
        body = open_sections[-1].body if open_sections else root
        if match.start() > position:
            body.append(text[position : match.start()])
        position = match.end()
        kind = match["dkind"] if match["dpath"] else match["kind"]
        path = tuple((match["dpath"] or match["path"]).split("."))
        if kind == "#":
            if len(open_sections) == MAX_DEPTH:
                raise TemplateError(f"sections nest at most {MAX_DEPTH} deep")
            section = _Section(path)
            body.append(section)
            open_sections.append(section)
        elif kind == "/":
            if not open_sections or open_sections[-1].path != path:
                expected = f"{{/{'.'.join(open_sections[-1].path)}}}" if open_sections else "no closing tag"
                raise TemplateError(
                    f"{match[0]!r} at character {match.start()} closes no open section (expected {expected})"
                )
            open_sections.pop()
        else:
            body.append(_Variable(path, match[0]))
    if open_sections:
        raise TemplateError(f"section {{#{'.'.join(open_sections[-1].path)}}} is never closed")
    if position < len(text):
        root.append(text[position:])
    return Template(root)


def _lookup(scopes: Sequence[Mapping[str, Any]], path: tuple[str, ...]) -> Any:
    """The value at `path` from the innermost scope that has its first name; _MISSING when none has it or
    the rest of the path does not resolve. Only dict keys and list indices are followed."""
    head, *rest = path
    for scope in reversed(scopes):
        if head in scope:
            value = scope[head]
            break
    else:
        return _MISSING
    for part in rest:
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False)


class _Writer:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self._size = 0
        self._steps = 0

    def _step(self) -> None:
        self._steps += 1
        if self._steps > MAX_STEPS:
            raise RenderLimitExceeded(
                f"rendering takes more than {MAX_STEPS} steps (sections over long lists, nested?)"
            )

    def _write(self, text: str) -> None:
        self._size += len(text)
        if self._size > MAX_OUTPUT_CHARS:
            raise RenderLimitExceeded(f"the rendered prompt would pass {MAX_OUTPUT_CHARS} characters")
        self.parts.append(text)

    def write_nodes(self, nodes: Sequence[_Node], scopes: list[Mapping[str, Any]]) -> None:
        for node in nodes:
            self._step()
            if isinstance(node, str):
                self._write(node)
            elif isinstance(node, _Variable):
                value = _lookup(scopes, node.path)
                self._write(node.written if value is _MISSING else _text(value))
            else:
                self._write_section(node, scopes)

    def _write_section(self, section: _Section, scopes: list[Mapping[str, Any]]) -> None:
        value = _lookup(scopes, section.path)
        if value is _MISSING or not value:
            return
        for item in value if isinstance(value, list) else [value]:
            self._step()
            inner = [*scopes, item, {IT: item}] if isinstance(item, Mapping) else [*scopes, {IT: item}]
            self.write_nodes(section.body, inner)
