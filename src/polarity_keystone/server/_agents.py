"""Agent snapshots of a project: an upload is checked (see `inspect_bundle`), its tarball stored as a blob
of the project, and the snapshot recorded as the next version of its name, or found to be one already.

A spec's `agent: {type: snapshot, name, tag | version}` is resolved in the caller's project when the
experiment is created, and the snapshot's id pinned in its options, so moving the tag later changes
nothing for it. A run unpacks the snapshot once per id under the data dir and runs it as a `cli` agent
(see `snapshot_command`).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shlex
import shutil
import tempfile
import threading
from pathlib import Path
from typing import IO, Any, Protocol

from ..engine import ResolvedAgent
from ..secrets import in_env
from ..spec import Spec, SpecError, SpecIssue
from ..store import AgentSnapshotRecord, NotFound, Store
from ._errors import InvalidRequest, PayloadTooLarge
from ._limits import describe_size
from ._models import AgentAuth, AgentSnapshotOut, AgentUpload
from ._snapshots import SnapshotLimits, extract_bundle, inspect_bundle

_CHUNK = 1024**2
PINNED = "agent_snapshot"
"""The experiment option holding the id of the snapshot its spec's agent resolved to."""
_TEMPLATE_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class _BlobReader(Protocol):
    def get(self, digest: str) -> bytes: ...


class ProjectBlobStore(Protocol):
    """What snapshots need of the server's blobs: a project's `put`, and the shared backend to read."""

    @property
    def backend(self) -> _BlobReader: ...

    def put(self, project_id: str, digest: str, data: bytes) -> None: ...


def _digest_and_size(bundle: IO[bytes]) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    while chunk := bundle.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


class AgentSnapshots:
    def __init__(self, store: Store, blobs: ProjectBlobStore, limits: SnapshotLimits, unpacked: Path) -> None:
        """`unpacked`: the directory the snapshots that runs use are unpacked in, one folder per id."""
        self._store = store
        self._blobs = blobs
        self.limits = limits
        self._unpacked = unpacked
        self._lock = threading.Lock()

    def upload(self, project_id: str, metadata: AgentUpload, bundle: IO[bytes]) -> AgentSnapshotRecord:
        """Check and keep the tarball `bundle` (a seekable file, e.g. the spooled upload)."""
        digest, size = _digest_and_size(bundle)
        if size > self.limits.max_bytes:
            raise PayloadTooLarge(
                f"the bundle is larger than this server's limit of {describe_size(self.limits.max_bytes)}"
            )
        bundle.seek(0)
        inspect_bundle(bundle, self.limits)
        bundle.seek(0)
        self._blobs.put(project_id, digest, bundle.read())
        return self._store.put_agent_snapshot(
            project_id,
            metadata.name,
            digest,
            size,
            entrypoint=metadata.entrypoint,
            runtime=metadata.runtime,
            auth=metadata.auth.model_dump(),
            tag=metadata.tag,
        )

    def pin(self, project_id: str, spec: Spec) -> dict[str, Any]:
        """The experiment options pinning the snapshot the spec's agent names (none for another agent):
        InvalidRequest when the project has no such snapshot, or the spec does not provide an environment
        variable the snapshot requires."""
        agent = spec.agent
        if agent.type != "snapshot" or agent.snapshot_name is None:
            return {}
        try:
            record = self._store.resolve_agent(
                project_id, agent.snapshot_name, version=agent.version, tag=agent.tag
            )
        except NotFound as exc:
            raise InvalidRequest(
                f"the spec's agent names a snapshot this project does not have: {exc}"
            ) from None
        provided = {
            *spec.agent.env,
            *spec.setup.env,
            *in_env(spec.secrets, {s.name: "" for s in spec.secrets}),
        }
        missing = [
            name for name in AgentAuth.model_validate(record.auth).required_env if name not in provided
        ]
        if missing:
            raise InvalidRequest(
                f"agent {record.name!r} version {record.version} needs the environment variable(s) "
                f"{', '.join(missing)}: give them in the spec's `agent.env` or `secrets`"
            )
        return {PINNED: record.id}

    def for_run(self, project_id: str, options: dict[str, Any]) -> ResolvedAgent | None:
        """The pinned snapshot of an experiment, unpacked and ready to run (None when none is pinned).
        SpecError (the run's input is invalid) when it was deleted since the experiment was created."""
        snapshot_id = options.get(PINNED)
        if snapshot_id is None:
            return None
        try:
            record = self._store.get_agent_snapshot(project_id, snapshot_id)
        except NotFound:
            message = f"agent snapshot {snapshot_id} was deleted after the experiment was created"
            raise SpecError([SpecIssue("spec", None, None, "agent", message)]) from None
        return ResolvedAgent(self._unpack(record), snapshot_command(record), f"sha256:{record.digest}")

    def _unpack(self, record: AgentSnapshotRecord) -> Path:
        """The snapshot's files, unpacked (safely, see `extract_bundle`) the first time a run needs them."""
        target = self._unpacked / record.id
        with self._lock:
            if target.is_dir():
                return target
            self._unpacked.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=self._unpacked, prefix=f".{record.id}."))
            try:
                extract_bundle(io.BytesIO(self._blobs.backend.get(record.digest)), staging, self.limits)
                os.replace(staging, target)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        return target


def _shell_text(template: str) -> str:
    """`template` as a double-quoted shell word in which `{{NAME}}` expands to the variable NAME."""
    quoted = re.sub(r'([\\"$`])', r"\\\1", template)
    return '"' + _TEMPLATE_VARIABLE.sub(r"${\1}", quoted) + '"'


def snapshot_command(record: AgentSnapshotRecord) -> str:
    """The shell command that runs a snapshot: its code (read-only at /opt/agent) copied to a fresh
    directory the agent may write, its config files written there from their templates with the run's
    environment, then its entrypoint, run from there."""
    lines = ["set -e", 'cd "$(mktemp -d)"', "cp -R /opt/agent/. ."]
    for config in AgentAuth.model_validate(record.auth).config_files:
        path = shlex.quote(config.path)
        lines.append(f'mkdir -p "$(dirname {path})"')
        lines.append(f"printf '%s' {_shell_text(config.template)} > {path}")
    lines.append(f"exec {shlex.join(record.entrypoint)}")
    return "\n".join(lines)


def snapshot_out(record: AgentSnapshotRecord, tag: str | None = None) -> AgentSnapshotOut:
    """The API's view of a snapshot; `tag` is the one an upload set (else the first of its tags)."""
    return AgentSnapshotOut(
        id=record.id,
        name=record.name,
        version=record.version,
        tag=tag or next(iter(record.tags), None),
        tags=list(record.tags),
        digest=f"sha256:{record.digest}",
        size_bytes=record.size_bytes,
        storage_path=f"/agents/{record.name}/v{record.version}",
        runtime=record.runtime,
        entrypoint=record.entrypoint,
        auth=AgentAuth.model_validate(record.auth),
        created_at=record.created_at,
    )
