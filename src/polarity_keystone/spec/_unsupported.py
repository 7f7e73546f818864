"""Spec features this Keystone version parses but cannot run yet, as one table.

They are errors, never silently ignored: a `forbidden` rule that is not enforced would let a run
pass that should fail. Shipping a feature means deleting its row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ._errors import SpecIssue
from ._models import Spec
from ._source import DataPath, SourceMap

_Finder = Callable[[Spec], Iterator[DataPath]]


@dataclass(frozen=True)
class _Feature:
    what: str
    """How the message names the feature, e.g. "`forbidden.sql`" or "agent type `paragon`"."""
    coming_with: str
    find: _Finder
    """Where a spec uses the feature (one path per use)."""
    fix: str = "remove it or run on a newer version"


def _given(*attributes: str) -> _Finder:
    """The key, if the spec gives it at all."""

    def find(spec: Spec) -> Iterator[DataPath]:
        value: Any = spec
        for attribute in attributes:
            value = getattr(value, attribute)
        if value is not None:
            yield attributes

    return find


def _agent_type(kind: str) -> _Finder:
    def find(spec: Spec) -> Iterator[DataPath]:
        if spec.agent.type == kind:
            yield ("agent", "type")

    return find


def _item_type(collection: str, kind: str) -> _Finder:
    """Each `fixtures[i].type` / `services[i].type` equal to `kind`."""

    def find(spec: Spec) -> Iterator[DataPath]:
        for index, item in enumerate(getattr(spec, collection)):
            if item.type == kind:
                yield (collection, index, "type")

    return find


def _check_type(kind: str) -> _Finder:
    def find(spec: Spec) -> Iterator[DataPath]:
        for name, invariant in spec.invariants.items():
            if invariant.check.type == kind:
                yield ("invariants", name, "check", "type")

    return find


_CLI_FIX = "use `type: cli` with a `command` that runs your agent, or run on a newer version"

_FEATURES: tuple[_Feature, ...] = (
    _Feature("agent type `paragon`", "the hosted Paragon agent", _agent_type("paragon"), _CLI_FIX),
    _Feature("`extends`", "spec inheritance", _given("extends")),
    _Feature("the `drift` fixture", "adversarial drift", _item_type("fixtures", "drift")),
)


def unsupported_features(spec: Spec, source: SourceMap | None = None) -> list[SpecIssue]:
    """One issue per use of a feature this version cannot run; lines come from `source` if given."""
    source = source or SourceMap("<spec>")
    return [
        source.issue(
            path,
            f"{feature.what} is not supported yet by this Keystone version"
            f" (coming with {feature.coming_with}); {feature.fix}",
        )
        for feature in _FEATURES
        for path in feature.find(spec)
    ]
