"""Rules that span several fields, checked once the spec has its shape.

Each of these would otherwise surface mid-run (a fixture naming a service that never starts, a
missing agent directory, a matrix axis overwriting `KEYSTONE_SEED`); catching them at load time
gives the author a line number instead of a failed sandbox.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from pathlib import Path

from ._errors import SpecIssue
from ._models import (
    CustomCheck,
    DirectoryFixture,
    GitRepoFixture,
    HttpMockAssertionsCheck,
    LlmAsJudgeCheck,
    S3Fixture,
    S3ObjectCheck,
    Spec,
    SqlCheck,
    SqlFixture,
    local_repository,
    service_name,
)
from ._paths import LocalPathError, PathKind, confine
from ._service_kinds import service_kind
from ._source import DataPath, SourceMap

_RESERVED_ENV_PREFIX = "KEYSTONE_"
"""Env vars Keystone sets for the agent; a matrix axis of that name would silently lose."""


_AGENT_ALIAS = "agent"
"""The agent container's name on the sandbox network."""


def semantic_issues(spec: Spec, source: SourceMap, root: Path | None) -> list[SpecIssue]:
    """`root` is where the spec's local paths must stay; None when it may not name local files."""
    return [
        *_duplicate_services(spec, source),
        *_undeclared_services(spec, source),
        *_unrecorded_mocks(spec, source),
        *_non_s3_services(spec, source),
        *_local_paths(spec, source, root),
        *_all_weights_zero(spec, source),
        *_reserved_axes(spec, source),
        *_undeclared_llm_keys(spec, source),
    ]


def _duplicate_services(spec: Spec, source: SourceMap) -> Iterator[SpecIssue]:
    first: dict[str, int] = {}
    for index, service in enumerate(spec.services):
        if service.name == _AGENT_ALIAS:
            yield source.issue(
                ("services", index, "name"),
                f"service name `{_AGENT_ALIAS}` is reserved for the agent's own container",
                "rename the service, e.g. `agent-api`",
            )
        elif service.name in first:
            yield source.issue(
                ("services", index, "name"),
                f"service name `{service.name}` is already used by services[{first[service.name]}]",
                "service names are DNS aliases on the sandbox network and must be unique",
            )
        else:
            first[service.name] = index


def _undeclared_services(spec: Spec, source: SourceMap) -> Iterator[SpecIssue]:
    declared = list(dict.fromkeys(service.name for service in spec.services))
    users: list[tuple[DataPath, str]] = [
        (("fixtures", index, "service"), fixture.service)
        for index, fixture in enumerate(spec.fixtures)
        if isinstance(fixture, SqlFixture | S3Fixture)
    ]
    users += [
        (("invariants", name, "check", "service"), invariant.check.service)
        for name, invariant in spec.invariants.items()
        if isinstance(invariant.check, SqlCheck | HttpMockAssertionsCheck | S3ObjectCheck)
    ]
    users += [(path, name) for path, name, _ in _mock_readers(spec)]
    users += [
        (("network", "dns_overrides", host), service_name(target))
        for host, target in spec.network.dns_overrides.items()
    ]
    users += [
        (("forbidden", "http_except", index), service_name(name))
        for index, name in enumerate(spec.forbidden.http_except or [])
    ]
    for path, name in users:
        if name not in declared:
            close = difflib.get_close_matches(name, declared, n=1, cutoff=0.6)
            if close:
                hint = f"did you mean `{close[0]}`?"
            elif declared:
                hint = f"declared services: {', '.join(declared)}"
            else:
                hint = 'declare it under `services:`, e.g. `- {name: db, image: "postgres:16"}`'
            yield source.issue(path, f"service `{name}` is not declared in `services`", hint)


def _unrecorded_mocks(spec: Spec, source: SourceMap) -> Iterator[SpecIssue]:
    """`http_mock_assertions` reads the requests a mock recorded: it needs an http_mock with `record`."""
    services = {service.name: (index, service) for index, service in enumerate(spec.services)}
    readers: list[tuple[DataPath, str, str]] = [
        (("invariants", name, "check", "service"), invariant.check.service, "http_mock_assertions")
        for name, invariant in spec.invariants.items()
        if isinstance(invariant.check, HttpMockAssertionsCheck)
    ]
    for path, name, reader in [*readers, *_mock_readers(spec)]:
        if name not in services:
            continue
        index, service = services[name]
        if service.type != "http_mock":
            yield source.issue(
                path,
                f"service `{service.name}` is not an http_mock service; {reader} reads the"
                " requests recorded by Keystone's built-in mock",
                f"give services[{index}] `type: http_mock` and `record: true`",
            )
        elif not service.record:
            yield source.issue(
                path,
                f"http_mock service `{service.name}` does not record requests, so there is nothing to check",
                f"add `record: true` to services[{index}]",
            )


def _non_s3_services(spec: Spec, source: SourceMap) -> Iterator[SpecIssue]:
    """`s3` fixtures and `s3_object` checks talk to the S3 API: their service must be an s3 service."""
    services = {service.name: (index, service) for index, service in enumerate(spec.services)}
    users: list[tuple[DataPath, str, str]] = [
        (("fixtures", index, "service"), fixture.service, "an s3 fixture")
        for index, fixture in enumerate(spec.fixtures)
        if isinstance(fixture, S3Fixture)
    ]
    users += [
        (("invariants", name, "check", "service"), invariant.check.service, "an s3_object check")
        for name, invariant in spec.invariants.items()
        if isinstance(invariant.check, S3ObjectCheck)
    ]
    for path, name, user in users:
        if name in services and service_kind(services[name][1]) != "s3":
            index = services[name][0]
            yield source.issue(
                path,
                f"service `{name}` is not an s3 service; {user} needs one",
                f"give services[{index}] `type: s3` (Keystone's local S3 server) or an S3 image such as"
                " minio/minio",
            )


def _mock_readers(spec: Spec) -> Iterator[tuple[DataPath, str, str]]:
    """`llm_as_judge` checks whose `input_from` reads an http_mock's last request."""
    for name, invariant in spec.invariants.items():
        check = invariant.check
        if isinstance(check, LlmAsJudgeCheck) and check.input_service is not None:
            yield ("invariants", name, "check", "input_from"), check.input_service, "llm_as_judge"


def _local_paths(spec: Spec, source: SourceMap, root: Path | None) -> Iterator[SpecIssue]:
    """Local files and directories the spec ships into the sandbox: inside the spec's root (see
    `confine`); `root` None refuses them all, as a shared server without a spec root does."""
    for path, value, kind in local_paths(spec):
        try:
            confine(root, value, kind)
        except LocalPathError as exc:
            yield source.issue(path, exc.message, exc.hint)


def local_paths(spec: Spec) -> Iterator[tuple[DataPath, str, PathKind]]:
    """Every path in `spec` that names something on the machine running it, with its field."""
    if spec.agent.path is not None:
        yield ("agent", "path"), spec.agent.path, "directory"
    for index, fixture in enumerate(spec.fixtures):
        if isinstance(fixture, SqlFixture) and fixture.file is not None:
            yield ("fixtures", index, "file"), fixture.file, "file"
        elif isinstance(fixture, DirectoryFixture | S3Fixture) and fixture.source is not None:
            yield ("fixtures", index, "source"), fixture.source, "directory"
        elif isinstance(fixture, GitRepoFixture) and (local := local_repository(fixture.url)) is not None:
            yield ("fixtures", index, "url"), local, "directory"
    for name, invariant in spec.invariants.items():
        if isinstance(invariant.check, CustomCheck) and invariant.check.script is not None:
            yield ("invariants", name, "check", "script"), invariant.check.script, "file"


def _all_weights_zero(spec: Spec, source: SourceMap) -> Iterator[SpecIssue]:
    if spec.invariants and all(invariant.weight == 0 for invariant in spec.invariants.values()):
        yield source.issue(
            ("invariants",),
            "every invariant has weight 0, so the composite score is undefined",
            "give at least one invariant a positive weight (the default is 1.0)",
        )


def _reserved_axes(spec: Spec, source: SourceMap) -> Iterator[SpecIssue]:
    for axis in spec.parallelism.matrix:
        if axis.startswith(_RESERVED_ENV_PREFIX):
            yield source.issue(
                ("parallelism", "matrix", axis),
                f"matrix axis `{axis}` collides with the env vars Keystone sets ({_RESERVED_ENV_PREFIX}*)",
                "rename the axis; it is exported to the agent as an env var of the same name",
            )


def _undeclared_llm_keys(spec: Spec, source: SourceMap) -> Iterator[SpecIssue]:
    """An `llm` service's `api_keys` name secrets the spec declares."""
    declared = [secret.name for secret in spec.secrets]
    for index, service in enumerate(spec.services):
        for provider, name in (service.llm.api_keys if service.llm else {}).items():
            if name not in declared:
                close = difflib.get_close_matches(name, declared, n=1)
                hint = f"did you mean `{close[0]}`?" if close else f"declare it: `secrets: [{name}]`"
                yield source.issue(
                    ("services", index, "llm", "api_keys", provider),
                    f"secret `{name}` is not declared in `secrets`",
                    hint,
                )
