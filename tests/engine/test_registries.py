"""Every kind the spec's models declare (check types, forbidden rules, fixture types, service types) has
a registered implementation; the kinds are read from the models, so a new member of a union with no
implementation fails here, unless the spec loader refuses it as not supported yet."""

from __future__ import annotations

import typing
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from polarity_keystone.engine import supported_fixtures
from polarity_keystone.scoring import supported_checks, supported_rules
from polarity_keystone.services import KINDS, kind_of
from polarity_keystone.spec import (
    KNOWN_IMAGES,
    Forbidden,
    Invariant,
    Service,
    Spec,
    SpecError,
    parse_spec,
    service_kind,
)

SPEC_WITH_FIXTURE = """
version: 1
id: registries
base: debian:bookworm-slim
task: {{prompt: x}}
agent: {{type: cli, command: "true"}}
fixtures: [{{type: {kind}}}]
invariants: {{ok: {{check: {{type: command_exit, command: "true"}}}}}}
"""


def _literals(annotation: Any) -> set[str]:
    """The strings of a Literal annotation."""
    assert typing.get_origin(annotation) is Literal, annotation
    return {value for value in typing.get_args(annotation) if isinstance(value, str)}


def _union_types(annotation: Any) -> set[str]:
    """The `type` of every model in a (possibly listed, possibly Annotated) discriminated union."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _literals(annotation.model_fields["type"].annotation)
    return {kind for member in typing.get_args(annotation) for kind in _union_types(member)}


def test_the_readers_find_the_declared_unions() -> None:
    assert {"sql", "file_exists", "llm_as_judge"} <= _union_types(Invariant.model_fields["check"].annotation)
    assert {"sql", "git_repo", "drift"} <= _union_types(Spec.model_fields["fixtures"].annotation)


def test_every_check_type_has_a_registered_check() -> None:
    declared = _union_types(Invariant.model_fields["check"].annotation)
    assert declared - set(supported_checks()) == set()


def test_every_forbidden_rule_has_a_registered_rule() -> None:
    declared = {field.alias or name for name, field in Forbidden.model_fields.items()}
    assert declared - set(supported_rules()) == set()


def test_every_fixture_type_is_registered_or_refused_as_not_supported_yet() -> None:
    declared = _union_types(Spec.model_fields["fixtures"].annotation)
    missing = declared - set(supported_fixtures())
    for kind in sorted(missing):
        with pytest.raises(SpecError) as refused:
            parse_spec(SPEC_WITH_FIXTURE.format(kind=kind))
        assert "not supported yet" in str(refused.value), f"fixture type {kind!r} has no implementation"


def test_every_service_type_has_a_registered_kind() -> None:
    declared = _literals(Service.model_fields["type"].annotation) - {""}
    assert declared - set(KINDS.names()) == set()
    assert set(KNOWN_IMAGES) <= declared


def test_a_service_is_looked_up_by_the_kind_the_spec_gives_it() -> None:
    for declared, expected in [
        (Service(name="a", image="postgres:16"), "postgres"),
        (Service(name="b", image="docker.io/library/redis:7@sha256:00"), "redis"),
        (Service(name="c", image="minio/minio"), "s3"),
        (Service(name="d", image="example/api:1"), "generic"),
        (Service(name="e", image="example/api:1", type="redis"), "redis"),
        (Service(name="f", type="http_mock"), "http_mock"),
    ]:
        assert service_kind(declared) == expected
        assert kind_of(declared).name == expected
