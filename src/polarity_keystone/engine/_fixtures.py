"""Fixtures as registered plug-ins, one per type of the spec's `fixtures` (like checks and forbidden
rules): each is prepared once per run (a `git_repo` is cloned then) and builds every replica's boot step.

Secret files are written by a step of their own, first, as the boot pipeline resolves secrets before
anything else; they come from `secrets`, not from `fixtures`, so no fixture type names them.
"""

from __future__ import annotations

import hashlib
import json
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._registry import Registry
from ..sandbox import FixtureError, FixtureStep, Sandbox
from ..services import S3Error, SqlError, postgres, s3
from ..spec import (
    DirectoryFixture,
    Fixture,
    GitRepoFixture,
    LoadedSpec,
    LocalPathError,
    S3Fixture,
    Service,
    SpecError,
    SqlFixture,
    local_repository,
    read_regular,
    tree,
)
from ._git_fixture import GitCheckout
from ._spec_paths import local_path, spec_file

StepBuilder = Callable[[Mapping[str, Service]], FixtureStep]
"""One replica's boot step, from the spec's services with that replica's secrets filled into their env."""


@dataclass(frozen=True)
class PreparedFixture:
    step: StepBuilder
    revision: str | None = None
    """The exact version of the fixture's content, pinned at preparation (a git commit); the run's
    fingerprint records it, so a replay of content that moved since is refused."""
    directory: Path | None = None
    """A directory of this host, outside the spec's, that the step copies from (a git clone)."""


FixtureType = Callable[[LoadedSpec, int, Any], PreparedFixture]
"""Prepares the spec's `fixtures[index]` for a run; raises FixtureError or SpecError when it cannot."""
_FIXTURES: Registry[FixtureType] = Registry()
register = _FIXTURES.register
supported_fixtures = _FIXTURES.names


def prepare_fixture(loaded: LoadedSpec, index: int, fixture: Fixture) -> PreparedFixture:
    """Prepare `fixture` (the spec's `fixtures[index]`) by the implementation its type registered."""
    prepare = _FIXTURES.get(fixture.type)
    if prepare is None:
        raise FixtureError(f"fixture type {fixture.type!r} is not supported yet")
    return prepare(loaded, index, fixture)


def digest(content: Any) -> str:
    """A digest of a fixture's content (text, or JSON-able pairs): `FixtureStep.content`."""
    text = content if isinstance(content, str) else json.dumps(content)
    return hashlib.sha256(text.encode()).hexdigest()


def secret_files_step(files: dict[str, str]) -> list[FixtureStep]:
    """The step that writes the secret files (path -> content, readable by the agent only), if any."""
    if not files:
        return []

    def write(sandbox: Sandbox) -> None:
        for path, content in files.items():
            sandbox.write_file(path, content.encode(), 0o600)

    return [FixtureStep(write, f"secret files {sorted(files)}", content=digest(sorted(files.items())))]


@register("sql")
def _sql(loaded: LoadedSpec, index: int, fixture: SqlFixture) -> PreparedFixture:
    def step(services: Mapping[str, Service]) -> FixtureStep:
        service = services[fixture.service]
        sql = fixture.sql if fixture.sql is not None else _sql_file(loaded, index, fixture.file or "")

        def apply_sql(sandbox: Sandbox) -> None:
            try:
                postgres.run_sql(sandbox, service, sql)
            except SqlError as exc:
                raise FixtureError(str(exc), psql_errors(exc.output)) from exc

        origin = fixture.file or "inline"
        label = f"sql fixture on {service.name} ({origin})"
        return FixtureStep(apply_sql, label, touches_workspace=False, content=digest(sql))

    return PreparedFixture(step)


def _sql_file(loaded: LoadedSpec, index: int, file: str) -> str:
    field = f"fixtures[{index}].file"
    try:
        return read_regular(local_path(loaded, field, file, "file")).decode("utf-8")
    except LocalPathError as exc:
        raise exc.spec_error(spec_file(loaded), field) from None
    except UnicodeDecodeError as exc:
        problem = LocalPathError(f"`{file}` is not UTF-8 (byte {exc.start})", "save the SQL file as UTF-8")
        raise problem.spec_error(spec_file(loaded), field) from None


_PSQL_MESSAGE = re.compile(r"^(?:psql:[^ ]*: )?(?:ERROR|FATAL|PANIC|DETAIL|HINT):")
"""psql's own diagnostics; its `LINE n:` context (and the caret under it) quote the script instead."""
_PSQL_LINE_CAP = 300


def psql_errors(output: str) -> str:
    """What psql said about a failed fixture script, without the script's text: a file's content must
    never come back in an error (the file may not be the caller's to read)."""
    kept = [line[:_PSQL_LINE_CAP] for line in output.splitlines() if _PSQL_MESSAGE.match(line)]
    return "\n".join(kept[:10]) or "psql failed without an error message"


@register("directory")
def _directory(loaded: LoadedSpec, index: int, fixture: DirectoryFixture) -> PreparedFixture:
    def step(services: Mapping[str, Service]) -> FixtureStep:
        source = str(local_path(loaded, f"fixtures[{index}].source", fixture.source, "directory"))

        def copy_directory(sandbox: Sandbox) -> None:
            sandbox.copy_in(source, fixture.path)

        return FixtureStep(copy_directory, f"directory fixture {fixture.source} -> {fixture.path}")

    return PreparedFixture(step)


@register("git_repo")
def _git_repo(loaded: LoadedSpec, index: int, fixture: GitRepoFixture) -> PreparedFixture:
    """Cloned once here, on the host, and copied into every replica's sandbox."""
    checkout = GitCheckout(fixture, _git_url(loaded, index, fixture))
    return PreparedFixture(lambda services: checkout.step(), checkout.commit, checkout.directory)


def _git_url(loaded: LoadedSpec, index: int, fixture: GitRepoFixture) -> str:
    """A remote URL as written; a local repository (relative to the spec) as a file:// URL, which git
    needs for `--depth` to apply."""
    local = local_repository(fixture.url)
    if local is None:
        return fixture.url
    return local_path(loaded, f"fixtures[{index}].url", local, "directory").as_uri()


@register("s3")
def _s3(loaded: LoadedSpec, index: int, fixture: S3Fixture) -> PreparedFixture:
    def step(services: Mapping[str, Service]) -> FixtureStep:
        return _s3_step(loaded, index, services[fixture.service], fixture)

    return PreparedFixture(step)


def _s3_step(loaded: LoadedSpec, index: int, service: Service, fixture: S3Fixture) -> FixtureStep:
    """Create the bucket and upload the inline objects, then the files of `source` under `prefix`
    (a symlink is uploaded as the file it points to, which must be inside the spec's root)."""
    field = f"fixtures[{index}].source"
    root = local_path(loaded, field, fixture.source, "directory") if fixture.source is not None else None

    def upload(sandbox: Sandbox) -> None:
        objects = {key: content.encode() for key, content in fixture.objects.items()}
        if root is not None:
            try:
                for entry in tree(root):
                    if stat.S_ISREG(entry.mode):
                        objects[fixture.prefix + entry.relative] = read_regular(entry.path)
                    elif stat.S_ISLNK(entry.mode):
                        linked = local_path(loaded, field, f"{fixture.source}/{entry.relative}", "file")
                        objects[fixture.prefix + entry.relative] = read_regular(linked)
            except (LocalPathError, SpecError) as exc:
                raise FixtureError(f"s3 fixture {fixture.source}: {exc}") from None
        try:
            s3.put_objects(sandbox, service, fixture.bucket, objects)
        except S3Error as exc:
            raise FixtureError(str(exc), exc.output) from exc

    origin = f"{fixture.source} -> " if fixture.source is not None else ""
    target = f"s3://{fixture.bucket}/{fixture.prefix}"
    label = f"s3 fixture on {service.name} ({origin}{target})"
    content = digest(sorted(fixture.objects.items())) if root is None else ""
    return FixtureStep(upload, label, touches_workspace=False, content=content)
