"""Turn a validated spec into what sandboxes boot from: images (resolved and baked once per run),
service plans, fixture steps, the agent's environment and the run fingerprint."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__
from ..sandbox import (
    ROOT,
    AgentUser,
    FixtureError,
    FixtureStep,
    ImageResolver,
    ResolvedImage,
    Sandbox,
    SandboxPlan,
)
from ..secrets import (
    LOCAL,
    Redactor,
    SecretPolicy,
    generated,
    in_env,
    interpolate,
    resolve_fixed,
    secret_files,
)
from ..services import S3Error, ServicePlan, SqlError, kind_of, postgres, s3
from ..spec import LoadedSpec, LocalPathError, PathKind, SpecError, confine, read_regular, tree
from ..spec._models import (
    DirectoryFixture,
    Fixture,
    GitRepoFixture,
    S3Fixture,
    Service,
    SqlFixture,
    local_repository,
)
from ._confine import confined_agent_image
from ._db_audit import audited, needs_db_audit
from ._execlog import logged_env, needs_command_log, with_command_log
from ._git_fixture import GitCheckout
from ._network import network_policy
from ._trace import TRACE_FILE

TASK_FILE = "/keystone/task.md"


def _digest_dir(path: Path) -> str:
    """What the agent directory holds, as the sandbox gets it: files by content, symlinks by target
    (never followed); a FIFO or device raises LocalPathError."""
    digest = hashlib.sha256()
    for entry in tree(path):
        if stat.S_ISREG(entry.mode):
            digest.update(entry.relative.encode() + b"\0" + read_regular(entry.path))
        elif stat.S_ISLNK(entry.mode):
            digest.update(entry.relative.encode() + b"\0->" + os.readlink(entry.path).encode())
    return "sha256:" + digest.hexdigest()


def _local(loaded: LoadedSpec, field: str, value: str, kind: PathKind) -> Path:
    """A spec path checked again where it is used (the files may have changed since validation);
    SpecError when it now leaves the spec's root or is no longer a regular file or directory."""
    try:
        return confine(loaded.spec_dir, value, kind)
    except LocalPathError as exc:
        raise exc.spec_error(_spec_file(loaded), field) from None


def _spec_file(loaded: LoadedSpec) -> str:
    return str(loaded.path or f"{loaded.spec.id}.yaml")


def _git_url(loaded: LoadedSpec, index: int, fixture: GitRepoFixture) -> str:
    """A remote URL as written; a local repository (relative to the spec) as a file:// URL, which git
    needs for `--depth` to apply."""
    local = local_repository(fixture.url)
    if local is None:
        return fixture.url
    return _local(loaded, f"fixtures[{index}].url", local, "directory").as_uri()


@dataclass
class PreparedSpec:
    loaded: LoadedSpec
    agent_image: ResolvedImage
    service_images: dict[str, ResolvedImage]
    agent_dir: Path | None
    notes: list[str] = field(default_factory=list)
    fingerprint: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    """Resolved secret values except the per-seed generated ones; never persisted."""
    git_checkouts: dict[int, GitCheckout] = field(default_factory=dict)
    """The `git_repo` fixtures by position, each cloned once for every replica."""
    gateway_image: str | None = None
    """Keystone's network gateway, which also keeps sandboxes away from the host (see sandbox/_isolation)."""
    agent_user: AgentUser = ROOT
    """Who the agent runs as (`agent.user`); its image has the user, /workspace and its home ready."""

    @property
    def spec(self) -> Any:
        return self.loaded.spec

    @property
    def fingerprint_id(self) -> str:
        """A short hash of the fingerprint, carried by replay commands."""
        canonical = json.dumps(self.fingerprint, sort_keys=True).encode()
        return hashlib.sha256(canonical).hexdigest()[:16]


def prepare(
    loaded: LoadedSpec,
    resolver: ImageResolver,
    provided_secrets: Mapping[str, str] | None = None,
    policy: SecretPolicy = LOCAL,
) -> PreparedSpec:
    """Resolve secrets, clone git fixtures and build every image the spec needs; raises SecretError or
    SpecError (invalid input), FixtureError or ImageError (infrastructure) when something cannot be had.
    `provided_secrets` (sent by a client with its request) win over the spec's declared sources, which
    are read on this machine only if `policy` allows (the default: the local user's own run)."""
    spec = loaded.spec
    secrets = resolve_fixed(spec.secrets, provided_secrets, policy)
    base = resolver.resolve(spec.base)
    setup = spec.setup
    if spec.determinism.clock is not None:
        setup = setup.model_copy(update={"packages": [*setup.packages, "faketime"]})
    agent_image, agent_user = confined_agent_image(loaded, resolver, resolver.bake_setup(base, setup))
    if needs_command_log(spec):
        agent_image = with_command_log(resolver, agent_image)
    service_images = {s.name: _service_image(s, resolver) for s in spec.services}
    notes = [image.note for image in [base, *service_images.values()] if image.note]
    agent_dir = _local(loaded, "agent.path", spec.agent.path, "directory") if spec.agent.path else None
    checkouts = {
        index: GitCheckout(fixture, _git_url(loaded, index, fixture))
        for index, fixture in enumerate(spec.fixtures)
        if isinstance(fixture, GitRepoFixture)
    }
    fingerprint = {
        "keystone": __version__,
        "spec_id": spec.id,
        "spec_version": spec.version,
        "spec_sha256": loaded.sha256,
        "agent_image": agent_image.digest,
        "service_images": {name: image.digest for name, image in sorted(service_images.items())},
        "agent_digest": _digest_dir(agent_dir) if agent_dir else "",
        "git_commits": {str(index): checkout.commit for index, checkout in checkouts.items()},
    }
    prepared = PreparedSpec(
        loaded,
        agent_image,
        service_images,
        agent_dir,
        list(dict.fromkeys(notes)),
        fingerprint,
        secrets,
        checkouts,
        resolver.local("gateway").ref,
        agent_user,
    )
    # A dry run of one replica's plan surfaces every `{{ secrets.X }}` that cannot be filled now, as
    # invalid input, instead of as an error in each replica.
    plan_replica(prepared, run_id="check", scenario_id=spec.id, replica=0, seed=0, parameters={})
    return prepared


def _service_image(service: Service, resolver: ImageResolver) -> ResolvedImage:
    """The image a service runs: the one it names, or Keystone's own for a kind that needs none
    (`type: http_mock`, the built-in mock)."""
    kind = kind_of(service)
    if not service.image and kind.local_image:
        return resolver.local(kind.local_image)
    return resolver.resolve(service.image or "")


@dataclass
class ReplicaPlan:
    sandbox: SandboxPlan
    agent_env: dict[str, str]
    redact: Redactor
    services: dict[str, Service]
    """The spec's services with secrets filled into their env (credentials for fixtures and checks)."""


def plan_replica(
    prepared: PreparedSpec,
    *,
    run_id: str,
    scenario_id: str,
    replica: int,
    seed: int,
    parameters: dict[str, Any],
    keep: bool = False,
) -> ReplicaPlan:
    """Everything one replica's sandbox and agent need; secrets are resolved here (raises SecretError)."""
    spec = prepared.spec
    values = {**prepared.secrets, **generated(spec.secrets, seed)}
    services: dict[str, Service] = {}
    plans = []
    service_env: dict[str, str] = {}
    for declared in spec.services:
        env = {key: interpolate(value, values) for key, value in declared.env.items()}
        service = services[declared.name] = declared.model_copy(update={"env": env})
        if needs_db_audit(spec):
            service = services[declared.name] = audited(service)
        image, kind = prepared.service_images[service.name], kind_of(service)
        plans.append(
            ServicePlan(
                service,
                kind,
                image.ref,
                {**env, **kind.container_env(service)},
                local_image=bool(image.note) or not declared.image,
            )
        )
        service_env.update(kind.agent_env(service))
    agent_env = {
        **{key: interpolate(value, values) for key, value in spec.setup.env.items()},
        **service_env,
        **in_env(spec.secrets, values),
        **{key: interpolate(value, values) for key, value in spec.agent.env.items()},
        **{key: str(value) for key, value in parameters.items()},
        "KEYSTONE_TASK": spec.task.prompt,
        "KEYSTONE_TASK_FILE": TASK_FILE,
        "KEYSTONE_TRACE_FILE": TRACE_FILE,
        "KEYSTONE_SEED": str(seed),
        "KEYSTONE_REPLICA": str(replica),
        "KEYSTONE_SCENARIO_ID": scenario_id,
        "KEYSTONE_PARAMETERS": json.dumps(parameters, sort_keys=True),
        "PYTHONHASHSEED": str(seed % 4294967296),
        "WORKSPACE": "/workspace",
    }
    if needs_command_log(spec):
        agent_env = logged_env(agent_env)
    sandbox = SandboxPlan(
        spec_id=spec.id,
        run_id=run_id,
        image=prepared.agent_image.ref,
        services=plans,
        fixtures=_secret_file_steps(secret_files(spec.secrets, values, prepared.agent_user.home))
        + [
            prepared.git_checkouts[index].step()
            if index in prepared.git_checkouts
            else _fixture_step(prepared.loaded, index, services, fixture)
            for index, fixture in enumerate(spec.fixtures)
        ],
        env={key: interpolate(value, values) for key, value in spec.setup.env.items()},
        cpu=spec.resources.cpu,
        memory_bytes=spec.resources.memory,
        pids_limit=spec.resources.pids,
        disk_bytes=spec.resources.disk,
        runtime=spec.resources.runtime,
        agent_user=prepared.agent_user,
        timeout_s=spec.resources.timeout,
        egress_allowed=spec.network.egress.default == "allow",
        network=network_policy(spec),
        gateway_image=prepared.gateway_image,
        agent_dir=str(prepared.agent_dir) if prepared.agent_dir else None,
        keep=keep,
    )
    return ReplicaPlan(sandbox, agent_env, Redactor(values), services)


def _secret_file_steps(files: dict[str, str]) -> list[FixtureStep]:
    """Secret files are written first, as boot step 1 of the pipeline (resolve secrets) prescribes."""
    if not files:
        return []

    def write(sandbox: Sandbox) -> None:
        for path, content in files.items():
            sandbox.write_file(path, content.encode(), 0o600)

    return [FixtureStep(write, f"secret files {sorted(files)}")]


def _fixture_step(
    loaded: LoadedSpec, index: int, services: dict[str, Service], fixture: Fixture
) -> FixtureStep:
    if isinstance(fixture, SqlFixture):
        service = services[fixture.service]
        sql = fixture.sql if fixture.sql is not None else _sql_file(loaded, index, fixture.file or "")

        def apply_sql(sandbox: Sandbox) -> None:
            try:
                postgres.run_sql(sandbox, service, sql)
            except SqlError as exc:
                raise FixtureError(str(exc), _psql_errors(exc.output)) from exc

        origin = fixture.file or "inline"
        return FixtureStep(apply_sql, f"sql fixture on {service.name} ({origin})", touches_workspace=False)
    if isinstance(fixture, DirectoryFixture):
        source = str(_local(loaded, f"fixtures[{index}].source", fixture.source, "directory"))

        def copy_directory(sandbox: Sandbox) -> None:
            sandbox.copy_in(source, fixture.path)

        return FixtureStep(copy_directory, f"directory fixture {fixture.source} -> {fixture.path}")
    if isinstance(fixture, S3Fixture):
        return _s3_fixture_step(loaded, index, services[fixture.service], fixture)
    raise FixtureError(f"fixture type {fixture.type!r} is not supported yet")


def _sql_file(loaded: LoadedSpec, index: int, file: str) -> str:
    field = f"fixtures[{index}].file"
    try:
        return read_regular(_local(loaded, field, file, "file")).decode("utf-8")
    except LocalPathError as exc:
        raise exc.spec_error(_spec_file(loaded), field) from None
    except UnicodeDecodeError as exc:
        problem = LocalPathError(f"`{file}` is not UTF-8 (byte {exc.start})", "save the SQL file as UTF-8")
        raise problem.spec_error(_spec_file(loaded), field) from None


_PSQL_MESSAGE = re.compile(r"^(?:psql:[^ ]*: )?(?:ERROR|FATAL|PANIC|DETAIL|HINT):")
"""psql's own diagnostics; its `LINE n:` context (and the caret under it) quote the script instead."""
_PSQL_LINE_CAP = 300


def _psql_errors(output: str) -> str:
    """What psql said about a failed fixture script, without the script's text: a file's content must
    never come back in an error (the file may not be the caller's to read)."""
    kept = [line[:_PSQL_LINE_CAP] for line in output.splitlines() if _PSQL_MESSAGE.match(line)]
    return "\n".join(kept[:10]) or "psql failed without an error message"


def _s3_fixture_step(loaded: LoadedSpec, index: int, service: Service, fixture: S3Fixture) -> FixtureStep:
    """Create the bucket and upload the inline objects, then the files of `source` under `prefix`
    (a symlink is uploaded as the file it points to, which must be inside the spec's root)."""
    field = f"fixtures[{index}].source"
    root = _local(loaded, field, fixture.source, "directory") if fixture.source is not None else None

    def upload(sandbox: Sandbox) -> None:
        objects = {key: content.encode() for key, content in fixture.objects.items()}
        if root is not None:
            try:
                for entry in tree(root):
                    if stat.S_ISREG(entry.mode):
                        objects[fixture.prefix + entry.relative] = read_regular(entry.path)
                    elif stat.S_ISLNK(entry.mode):
                        linked = _local(loaded, field, f"{fixture.source}/{entry.relative}", "file")
                        objects[fixture.prefix + entry.relative] = read_regular(linked)
            except (LocalPathError, SpecError) as exc:
                raise FixtureError(f"s3 fixture {fixture.source}: {exc}") from None
        try:
            s3.put_objects(sandbox, service, fixture.bucket, objects)
        except S3Error as exc:
            raise FixtureError(str(exc), exc.output) from exc

    origin = f"{fixture.source} -> " if fixture.source is not None else ""
    target = f"s3://{fixture.bucket}/{fixture.prefix}"
    return FixtureStep(upload, f"s3 fixture on {service.name} ({origin}{target})", touches_workspace=False)
