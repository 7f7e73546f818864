"""YAML → plain data plus a `SourceMap`, refusing what PyYAML would silently accept.

The node tree is composed first so every key keeps its line and column, and so duplicate keys
(which PyYAML resolves by keeping the last one) can be reported instead of hiding a setting.

Specs arrive from strangers (a pull request, an API upload), so the text is bounded before anything
else reads it: its size, its nesting depth and the number of nodes it would expand to once aliases are
followed (a "billion laughs" document is a few hundred bytes of aliases to aliases).
"""

from __future__ import annotations

from typing import Any

import yaml

from ._errors import SpecError, SpecIssue
from ._hints import yaml_kind
from ._source import DataPath, SourceMap, dotted

_MERGE_TAG = "tag:yaml.org,2002:merge"
_SKELETON_HINT = "a spec starts with `version: 1`, `id`, `base`, `task`, `agent` and `invariants`"

MAX_SPEC_BYTES = 1024 * 1024
"""A spec's text, in UTF-8 bytes; large data belongs in fixture files, not in the spec."""
MAX_DEPTH = 64
"""Nesting of mappings and lists, aliases followed; deeper documents are refused, never a RecursionError."""
MAX_NODES = 100_000
"""Scalars, mappings and lists the document expands to once every alias is followed."""


def read_yaml(text: str, file: str) -> tuple[dict[str, Any], SourceMap]:
    """The spec's top-level mapping and where each of its keys sits; `SpecError` otherwise."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_SPEC_BYTES:
        message = f"the spec is {_mib(size)} ({size} bytes); the limit is {_mib(MAX_SPEC_BYTES)}"
        hint = "move large data (SQL, objects, files) into fixture files next to the spec"
        raise SpecError([SpecIssue(file, None, None, "", message, hint)])
    try:
        loader = _BoundedLoader(text, file)
    except yaml.YAMLError as exc:  # the reader refuses control characters before any parsing
        raise SpecError([SpecIssue(file, None, None, "", f"invalid YAML: {exc}")]) from None
    try:
        node = loader.get_single_node()
        if node is None:
            raise SpecError([SpecIssue(file, None, None, "", "the spec is empty", _SKELETON_HINT)])
        positions: dict[DataPath, tuple[int, int]] = {(): _position(node.start_mark)}
        duplicates: list[SpecIssue] = []
        _index(loader, node, (), positions, duplicates, file, set())
        if duplicates:
            raise SpecError(duplicates)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        raise SpecError([_syntax_issue(exc, file)]) from None
    except yaml.YAMLError as exc:
        raise SpecError([SpecIssue(file, None, None, "", f"invalid YAML: {exc}")]) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        line, column = positions[()]
        message = f"the top level of a spec must be a mapping of `key: value` pairs, got {yaml_kind(data)}"
        raise SpecError([SpecIssue(file, line, column, "", message, _SKELETON_HINT)])
    return data, SourceMap(file, positions)


def _mib(size: int) -> str:
    return f"{size / 1024**2:.1f} MiB"


def _position(mark: yaml.Mark) -> tuple[int, int]:
    return mark.line + 1, mark.column + 1


class _BoundedLoader(yaml.SafeLoader):
    """A SafeLoader whose composer refuses documents deeper than MAX_DEPTH or larger than MAX_NODES.

    Every node records its expanded size and height as it is composed, so an alias costs what its
    anchor expands to, and the error names the line of the alias that crossed the bound.
    """

    def __init__(self, text: str, file: str) -> None:
        super().__init__(text)
        self._file = file
        self._depth = 0
        self._expanded = 0
        self._sizes: dict[int, tuple[int, int]] = {}
        """id(node) -> (nodes it expands to, its height), once it is complete."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        mark = event.start_mark
        if isinstance(event, yaml.AliasEvent):
            target = super().compose_node(parent, index)
            size = self._sizes.get(id(target))
            if size is None:
                raise self._refused(mark, f"alias *{event.anchor} refers to itself", None)
            self._count(size[0], self._depth + size[1], mark)
            return target
        self._count(1, self._depth + 1, mark)
        before = self._expanded
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node is not None:
            height = 1 + max((self._sizes[id(child)][1] for child in _children(node)), default=0)
            self._sizes[id(node)] = (self._expanded - before + 1, height)
        return node

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """A scalar Python cannot hold (a 5,000-digit integer, month 13) is a YAML error at its line, and
        so is one an explicit tag forces on text it doesn't fit (`!!float ""`, `!!timestamp x`), where
        PyYAML's constructors fail with an AttributeError or IndexError instead of a YAML error."""
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError, AttributeError, IndexError, TypeError) as exc:
            text = node.value if isinstance(node.value, str) else ""
            shown = text if len(text) <= 40 else text[:40] + "…"
            problem = f"cannot read {shown!r}: {str(exc)[:200]}"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from None

    def _count(self, nodes: int, depth: int, mark: yaml.Mark | None) -> None:
        self._expanded += nodes
        if depth > MAX_DEPTH:
            message = f"the spec nests deeper than {MAX_DEPTH} levels (aliases followed)"
            raise self._refused(mark, message, "flatten the structure; no spec field needs this depth")
        if self._expanded > MAX_NODES:
            message = f"the spec expands to more than {MAX_NODES} values (aliases followed)"
            hint = "a spec this large is a mistake or an alias bomb; write the data out in a fixture file"
            raise self._refused(mark, message, hint)

    def _refused(self, mark: yaml.Mark | None, message: str, hint: str | None) -> SpecError:
        line, column = _position(mark) if mark else (None, None)
        return SpecError([SpecIssue(self._file, line, column, "", message, hint)])


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    return []


def _index(
    loader: yaml.SafeLoader,
    node: yaml.Node,
    path: DataPath,
    positions: dict[DataPath, tuple[int, int]],
    duplicates: list[SpecIssue],
    file: str,
    seen: set[int],
) -> None:
    """Record the position of every key and item under `node`, and every duplicate key."""
    if id(node) in seen:  # an alias: already indexed where its anchor is (and may be recursive)
        return
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            positions[(*path, index)] = _position(item.start_mark)
            _index(loader, item, (*path, index), positions, duplicates, file, seen)
    elif isinstance(node, yaml.MappingNode):
        first_line: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            key = loader.construct_object(key_node)
            line, column = _position(key_node.start_mark)
            if key in first_line:
                duplicates.append(
                    SpecIssue(
                        file,
                        line,
                        column,
                        dotted((*path, key)),
                        f"duplicate key `{key}` (first set at line {first_line[key]})",
                        "YAML keeps only the last value; remove or rename one of them",
                    )
                )
                continue
            first_line[key] = line
            positions[(*path, key)] = (line, column)
            _index(loader, value_node, (*path, key), positions, duplicates, file, seen)


def _syntax_issue(exc: yaml.MarkedYAMLError, file: str) -> SpecIssue:
    mark = exc.problem_mark or exc.context_mark
    line, column = _position(mark) if mark else (None, None)
    problem, context = exc.problem or "", exc.context or ""
    if problem.startswith("but ") or not problem:  # "expected a single document, but found another"
        detail = ", ".join(part for part in (context, problem) if part)
    elif context and exc.context_mark:
        detail = f"{problem} ({context} at line {exc.context_mark.line + 1})"
    else:
        detail = problem
    hint = "indent with spaces; YAML does not allow tabs" if "'\\t'" in problem else None
    return SpecIssue(file, line, column, "", f"invalid YAML: {detail}", hint)
