"""YAML → plain data plus a `SourceMap`, refusing what PyYAML would silently accept.

The node tree is composed first so every key keeps its line and column, and so duplicate keys
(which PyYAML resolves by keeping the last one) can be reported instead of hiding a setting.
"""

from __future__ import annotations

from typing import Any

import yaml

from ._errors import SpecError, SpecIssue
from ._hints import yaml_kind
from ._source import DataPath, SourceMap, dotted

_MERGE_TAG = "tag:yaml.org,2002:merge"
_SKELETON_HINT = "a spec starts with `version: 1`, `id`, `base`, `task`, `agent` and `invariants`"


def read_yaml(text: str, file: str) -> tuple[dict[str, Any], SourceMap]:
    """The spec's top-level mapping and where each of its keys sits; `SpecError` otherwise."""
    try:
        loader = yaml.SafeLoader(text)
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


def _position(mark: yaml.Mark) -> tuple[int, int]:
    return mark.line + 1, mark.column + 1


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
