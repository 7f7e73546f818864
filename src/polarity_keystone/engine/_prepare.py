"""Turn a validated spec into what sandboxes boot from: images (resolved and baked once per run),
service plans, fixture steps, the agent's environment and the run fingerprint."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .._version import __version__
from ..analysis import Pricing, shipped_pricing
from ..sandbox import ROOT, AgentUser, ImageResolver, ResolvedImage, SandboxPlan
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
from ..services import kind_of, llm
from ..spec import (
    SEMANTIC_KEYS,
    LoadedSpec,
    Service,
    SpecError,
    SpecIssue,
    read_regular,
    semantic_fingerprint,
    tree,
)
from ._confine import confined_agent_image
from ._db_audit import audited, needs_db_audit
from ._execlog import logged_env, needs_command_log, with_command_log
from ._fixtures import PreparedFixture, prepare_fixture, secret_files_step
from ._network import network_policy
from ._parameters import parameters_text
from ._spec_paths import local_path, spec_file
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


@dataclass(frozen=True)
class ResolvedAgent:
    """The agent a spec names but does not hold (`type: snapshot`), as its server resolved it: the
    directory of its code (copied to /opt/agent), the command that runs it, and its content digest."""

    directory: Path
    command: str
    digest: str


def _with_agent(loaded: LoadedSpec, agent: ResolvedAgent | None) -> LoadedSpec:
    """The spec with a resolved agent run as a `cli` agent; SpecError for a snapshot agent nobody
    resolved (it needs a server that holds the snapshot)."""
    spec = loaded.spec
    if agent is not None:
        runnable = spec.agent.model_copy(update={"type": "cli", "command": agent.command, "path": None})
        return replace(loaded, spec=spec.model_copy(update={"agent": runnable}))
    if spec.agent.type == "snapshot":
        message = "a snapshot agent runs on a Keystone server that holds the snapshot"
        raise SpecError([SpecIssue(spec_file(loaded), None, None, "agent.type", message)])
    return loaded


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
    fixtures: list[PreparedFixture] = field(default_factory=list)
    """The spec's fixtures in order, each prepared once for every replica (a `git_repo` is cloned)."""
    gateway_image: str | None = None
    """Keystone's network gateway, which also keeps sandboxes away from the host (see sandbox/_isolation)."""
    agent_user: AgentUser = ROOT
    """Who the agent runs as (`agent.user`); its image has the user, /workspace and its home ready."""
    pricing: Pricing = field(default_factory=shipped_pricing)
    """The prices the replicas' LLM calls are costed at (a server passes its operator's table)."""
    server_port: int | None = None
    """The port of this host the agents may reach: the Keystone server that runs them (see
    `SandboxPlan.server_port`)."""

    @property
    def spec(self) -> Any:
        return self.loaded.spec

    @property
    def fingerprint_id(self) -> str:
        return fingerprint_id(self.fingerprint)

    def host_directories(self) -> list[Path]:
        """The directories of this host a replica reads while it boots and is checked: the spec's (its
        files, fixtures and checks resolve there; none for a spec that may name no file), the agent's
        code and what fixtures copy from (a git clone); none inside another."""
        spec_dir = self.loaded.spec_dir if self.loaded.local_files else None
        found = [spec_dir, self.agent_dir, *(fixture.directory for fixture in self.fixtures)]
        kept: list[Path] = []
        unique = dict.fromkeys(path.resolve() for path in found if path is not None)
        for directory in sorted(unique, key=lambda p: len(p.parts)):  # stable: spec's first at a depth
            if not any(directory.is_relative_to(outer) for outer in kept):
                kept.append(directory)
        return kept


def fingerprint_id(fingerprint: Mapping[str, Any]) -> str:
    """A short hash of a run fingerprint, carried by replay commands. The semantic spec hashes are left
    out: `spec_sha256` already pins the text they derive from, and ids of runs recorded before they
    existed stay valid."""
    exact = {key: value for key, value in fingerprint.items() if key not in SEMANTIC_KEYS}
    canonical = json.dumps(exact, sort_keys=True).encode()
    return hashlib.sha256(canonical).hexdigest()[:16]


def prepare(
    loaded: LoadedSpec,
    resolver: ImageResolver,
    provided_secrets: Mapping[str, str] | None = None,
    policy: SecretPolicy = LOCAL,
    *,
    bundle: str | None = None,
    agent: ResolvedAgent | None = None,
) -> PreparedSpec:
    """Resolve secrets, build every image the spec needs and prepare its fixtures (clone git
    repositories); raises SecretError or SpecError (invalid input), FixtureError or ImageError
    (infrastructure) when something cannot be had.
    `provided_secrets` (sent by a client with its request) win over the spec's declared sources, which
    are read on this machine only if `policy` allows (the default: the local user's own run).
    `bundle`: the digest of the uploaded files the spec was loaded from, pinned by the fingerprint (only
    when there is one, so fingerprints of runs from a spec directory stay what they were).
    `agent`: the code and command of a `type: snapshot` agent, which the server resolved."""
    loaded = _with_agent(loaded, agent)
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
    agent_dir = local_path(loaded, "agent.path", spec.agent.path, "directory") if spec.agent.path else None
    if agent is not None:
        agent_dir = agent.directory
    fixtures = [prepare_fixture(loaded, index, fixture) for index, fixture in enumerate(spec.fixtures)]
    fingerprint = {
        "keystone": __version__,
        "spec_id": spec.id,
        "spec_version": spec.version,
        "spec_sha256": loaded.sha256,
        **semantic_fingerprint(spec),
        "agent_image": agent_image.digest,
        "service_images": {name: image.digest for name, image in sorted(service_images.items())},
        "agent_digest": agent.digest if agent else _digest_dir(agent_dir) if agent_dir else "",
        # Named for the one fixture type that pins a revision today; renaming it would change every
        # run's fingerprint, so replays of earlier runs would be refused.
        "git_commits": {
            str(index): fixture.revision
            for index, fixture in enumerate(fixtures)
            if fixture.revision is not None
        },
    }
    if bundle is not None:
        fingerprint["bundle"] = bundle
    prepared = PreparedSpec(
        loaded,
        agent_image,
        service_images,
        agent_dir,
        list(dict.fromkeys(notes)),
        fingerprint,
        secrets,
        fixtures,
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
    replaying: bool = False,
) -> ReplicaPlan:
    """Everything one replica's sandbox and agent need; secrets are resolved here (raises SecretError).
    `replaying`: the model services (`type: llm`) answer from a recording, not in their spec's mode."""
    spec = prepared.spec
    values = {**prepared.secrets, **generated(spec.secrets, seed)}
    services: dict[str, Service] = {}
    plans = []
    service_env: dict[str, str] = {}
    for declared in spec.services:
        if replaying and declared.llm is not None:
            declared = llm.as_replay(declared)
        templates = {**declared.env, **kind_of(declared).secret_env(declared)}
        env = {key: interpolate(value, values) for key, value in templates.items()}
        service = services[declared.name] = declared.model_copy(update={"env": env})
        if needs_db_audit(spec):
            service = services[declared.name] = audited(service)
        image, kind = prepared.service_images[service.name], kind_of(service)
        plans.append(kind.container(service, image.ref, local_image=bool(image.note) or not declared.image))
        service_env.update(kind.agent_env(service))
    agent_env = {
        **{key: interpolate(value, values) for key, value in spec.setup.env.items()},
        **service_env,
        **in_env(spec.secrets, values),
        **{key: interpolate(value, values) for key, value in spec.agent.env.items()},
        **parameters_text(parameters),
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
        fixtures=secret_files_step(secret_files(spec.secrets, values, prepared.agent_user.home))
        + [fixture.step(services) for fixture in prepared.fixtures],
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
        server_port=prepared.server_port,
    )
    return ReplicaPlan(sandbox, agent_env, Redactor(values), services)
