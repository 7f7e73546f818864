"""Turn a validated spec into what sandboxes boot from: images (resolved and baked once per run),
service plans, fixture steps, the agent's environment and the run fingerprint."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__
from ..sandbox import FixtureError, FixtureStep, ImageResolver, ResolvedImage, Sandbox, SandboxPlan
from ..services import S3Error, ServicePlan, SqlError, kind_of, postgres, s3
from ..spec import LoadedSpec
from ..spec._models import DirectoryFixture, Fixture, GitRepoFixture, S3Fixture, Service, SqlFixture
from ._db_audit import audited, needs_db_audit
from ._execlog import logged_env, needs_command_log, with_command_log
from ._git_fixture import GitCheckout
from ._network import network_policy
from ._secrets import Redactor, generated, in_env, interpolate, resolve_fixed, secret_files
from ._trace import TRACE_FILE

TASK_FILE = "/keystone/task.md"


def _digest_dir(path: Path) -> str:
    digest = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        for name in sorted(files):
            file = Path(root) / name
            digest.update(str(file.relative_to(path)).encode() + b"\0" + file.read_bytes())
    return "sha256:" + digest.hexdigest()


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

    @property
    def spec(self) -> Any:
        return self.loaded.spec

    @property
    def fingerprint_id(self) -> str:
        """A short hash of the fingerprint, carried by replay commands."""
        canonical = json.dumps(self.fingerprint, sort_keys=True).encode()
        return hashlib.sha256(canonical).hexdigest()[:16]


def prepare(
    loaded: LoadedSpec, resolver: ImageResolver, provided_secrets: Mapping[str, str] | None = None
) -> PreparedSpec:
    """Resolve secrets, clone git fixtures and build every image the spec needs; raises SecretError
    (invalid input), FixtureError or ImageError (infrastructure) when something cannot be had.
    `provided_secrets` (sent by a client with its request) win over the spec's declared sources."""
    spec = loaded.spec
    secrets = resolve_fixed(spec.secrets, provided_secrets)
    base = resolver.resolve(spec.base)
    setup = spec.setup
    if spec.determinism.clock is not None:
        setup = setup.model_copy(update={"packages": [*setup.packages, "faketime"]})
    agent_image = resolver.bake_setup(base, setup)
    if needs_command_log(spec):
        agent_image = with_command_log(resolver, agent_image)
    service_images = {s.name: _service_image(s, resolver) for s in spec.services}
    notes = [image.note for image in [base, *service_images.values()] if image.note]
    agent_dir = (loaded.spec_dir / spec.agent.path).resolve() if spec.agent.path else None
    checkouts = {
        index: GitCheckout(fixture, loaded.spec_dir)
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
        fixtures=_secret_file_steps(secret_files(spec.secrets, values))
        + [
            prepared.git_checkouts[index].step()
            if index in prepared.git_checkouts
            else _fixture_step(prepared.loaded.spec_dir, services, fixture)
            for index, fixture in enumerate(spec.fixtures)
        ],
        env={key: interpolate(value, values) for key, value in spec.setup.env.items()},
        cpu=spec.resources.cpu,
        memory_bytes=spec.resources.memory,
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


def _fixture_step(spec_dir: Path, services: dict[str, Service], fixture: Fixture) -> FixtureStep:
    if isinstance(fixture, SqlFixture):
        service = services[fixture.service]
        sql = fixture.sql if fixture.sql is not None else (spec_dir / str(fixture.file)).read_text()

        def apply_sql(sandbox: Sandbox) -> None:
            try:
                postgres.run_sql(sandbox, service, sql)
            except SqlError as exc:
                raise FixtureError(str(exc), exc.output) from exc

        origin = fixture.file or "inline"
        return FixtureStep(apply_sql, f"sql fixture on {service.name} ({origin})", touches_workspace=False)
    if isinstance(fixture, DirectoryFixture):
        source = str((spec_dir / fixture.source).resolve())

        def copy_directory(sandbox: Sandbox) -> None:
            sandbox.copy_in(source, fixture.path)

        return FixtureStep(copy_directory, f"directory fixture {fixture.source} -> {fixture.path}")
    if isinstance(fixture, S3Fixture):
        return _s3_fixture_step(spec_dir, services[fixture.service], fixture)
    raise FixtureError(f"fixture type {fixture.type!r} is not supported yet")


def _s3_fixture_step(spec_dir: Path, service: Service, fixture: S3Fixture) -> FixtureStep:
    """Create the bucket and upload the inline objects, then the files of `source` under `prefix`."""

    def upload(sandbox: Sandbox) -> None:
        objects = {key: content.encode() for key, content in fixture.objects.items()}
        if fixture.source is not None:
            root = spec_dir / fixture.source
            for file in sorted(path for path in root.rglob("*") if path.is_file()):
                objects[fixture.prefix + file.relative_to(root).as_posix()] = file.read_bytes()
        try:
            s3.put_objects(sandbox, service, fixture.bucket, objects)
        except S3Error as exc:
            raise FixtureError(str(exc), exc.output) from exc

    origin = f"{fixture.source} -> " if fixture.source is not None else ""
    target = f"s3://{fixture.bucket}/{fixture.prefix}"
    return FixtureStep(upload, f"s3 fixture on {service.name} ({origin}{target})", touches_workspace=False)
