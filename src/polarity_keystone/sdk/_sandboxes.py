"""`ks.sandboxes`: boot a sandbox from a spec or an image, work in it, read what changed, report traces."""

from __future__ import annotations

import base64
import builtins
from collections.abc import Generator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ._http import HttpClient
from ._models import CommandResult, Sandbox, SandboxTrace, StateDiff, StateSnapshot, TraceEvent
from ._secrets import request_secrets
from ._sse import StreamEvent

WORKSPACE = "/workspace"


class SandboxService:
    def __init__(self, http: HttpClient) -> None:
        self._http = http

    def create(
        self,
        spec_id: str | None = None,
        timeout: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        image: str | None = None,
        services: Sequence[str] = (),
        seed: str | int | None = None,
        secrets: Mapping[str, str] | None = None,
        spec_path: str | Path | None = None,
        idempotency_key: str | None = None,
    ) -> Sandbox:
        """Boot a sandbox and return it once ready: the one a spec declares (`spec_id`), or an image with
        services beside it (`image="debian:bookworm-slim", services=["postgres", "redis"]`). A `seed`
        (`seed_...`, as sandboxes and runs report it) reproduces an earlier sandbox. With `spec_path`,
        the secrets the spec declares are resolved here and sent along; explicit `secrets` win on a name
        collision."""
        given = {"spec_id": spec_id, "image": image, "timeout": timeout, "seed": seed}
        body: dict[str, Any] = {key: value for key, value in given.items() if value is not None}
        if services:
            body["services"] = list(services)
        if metadata is not None:
            body["metadata"] = dict(metadata)
        forwarded = request_secrets(secrets, spec_path)
        if forwarded is not None:
            body["secrets"] = forwarded
        data = self._http.json("POST", "/v1/sandboxes", json=body, idempotency_key=idempotency_key)
        return Sandbox.from_dict(data)

    def get(self, sandbox_id: str) -> Sandbox:
        return Sandbox.from_dict(self._http.json("GET", _path(sandbox_id)))

    def list(self, *, limit: int | None = None) -> list[Sandbox]:
        """The live sandboxes (the first `limit`), oldest first, fetching page after page."""
        return [Sandbox.from_dict(item) for item in self._http.list_items("/v1/sandboxes", limit=limit)]

    def iter_all(self) -> Iterator[Sandbox]:
        """Every live sandbox, fetching each page only when the iteration reaches it."""
        return (Sandbox.from_dict(item) for item in self._http.iter_items("/v1/sandboxes"))

    def destroy(self, sandbox_id: str) -> None:
        self._http.request("DELETE", _path(sandbox_id))

    def run_command(
        self, sandbox_id: str, command: str, timeout: str | None = None, *, background: bool = False
    ) -> CommandResult:
        body: dict[str, Any] = {"command": command, "background": background}
        if timeout is not None:
            body["timeout"] = timeout
        return CommandResult.from_dict(self._http.json("POST", _path(sandbox_id, "commands"), json=body))

    def read_file(self, sandbox_id: str, path: str) -> bytes:
        """The file's raw bytes; decode them if you know the file is text."""
        return self._http.request("GET", _file_path(sandbox_id, path)).content

    def write_file(self, sandbox_id: str, path: str, content: str | bytes) -> None:
        """Write text, or bytes (sent base64-encoded), to `path` (relative to /workspace)."""
        body = {"path": path, "content": content}
        if isinstance(content, bytes):
            body.update(content=base64.b64encode(content).decode("ascii"), encoding="base64")
        self._http.request("POST", _path(sandbox_id, "files"), json=body)

    def delete_file(self, sandbox_id: str, path: str) -> None:
        self._http.request("DELETE", _file_path(sandbox_id, path))

    def state(self, sandbox_id: str) -> StateSnapshot:
        return StateSnapshot.from_dict(self._http.json("GET", _path(sandbox_id, "state")))

    def diff(self, sandbox_id: str) -> StateDiff:
        """What changed in the workspace since the sandbox became ready."""
        return StateDiff.from_dict(self._http.json("GET", _path(sandbox_id, "diff")))

    def extend_timeout(self, sandbox_id: str, timeout: str) -> Sandbox:
        """Reset the sandbox's auto-destroy timer to `timeout` (e.g. "10m") from now."""
        data = self._http.json("POST", _path(sandbox_id, "timeout"), json={"timeout": timeout})
        return Sandbox.from_dict(data)

    def ingest_trace(self, sandbox_id: str, events: Sequence[TraceEvent | Mapping[str, Any]]) -> int:
        """Report what the agent did (tool calls, LLM calls) to the sandbox's trace; returns how many
        events the server accepted."""
        payload = [
            e.model_dump(mode="json", exclude_none=True) if isinstance(e, TraceEvent) else dict(e)
            for e in events
        ]
        data = self._http.json("POST", _path(sandbox_id, "trace"), json={"events": payload})
        return int(data.get("accepted", len(payload))) if isinstance(data, dict) else len(payload)

    def check(
        self, sandbox_id: str, invariants: Mapping[str, Mapping[str, Any]]
    ) -> builtins.list[dict[str, Any]]:
        """Run spec invariants (`{key: {check: {type, ...}}}` or `{key: {type, ...}}`, at most 20) against
        the live sandbox, with the server's checks; one result (`name`, `passed`, `score`, `message`,
        `evidence`...) per key, in order. What a sandbox scorer's `to_invariant()` returns fits as is."""
        body = {"invariants": {key: dict(value) for key, value in invariants.items()}}
        data = self._http.json("POST", _path(sandbox_id, "checks"), json=body)
        return [dict(result) for result in data["results"]]

    def get_trace(self, sandbox_id: str) -> SandboxTrace:
        return SandboxTrace.from_dict(self._http.json("GET", _path(sandbox_id, "trace")))

    def events(
        self, sandbox_id: str, *, last_event_id: str | None = None
    ) -> Generator[StreamEvent, None, None]:
        """The sandbox's lifecycle events (SSE) until it is destroyed; resumes after `last_event_id`."""
        return self._http.stream(_path(sandbox_id, "events"), last_event_id=last_event_id)


def _path(sandbox_id: str, *rest: str) -> str:
    return "/".join(["/v1/sandboxes", quote(sandbox_id, safe=""), *rest])


def _file_path(sandbox_id: str, path: str) -> str:
    """The file's URL, saying exactly what the caller said: `/workspace/x` is `x` (as on the server);
    a leading slash and `.`/`..` segments are percent-encoded, so no client or proxy normalises them
    away and the server sees (and refuses) a path outside the workspace."""
    segments = [
        part.replace(".", "%2E") if part in (".", "..") else quote(part, safe="")
        for part in path.removeprefix(WORKSPACE + "/").split("/")
    ]
    encoded = "/".join(segments)
    return _path(sandbox_id, "files", "%2F" + encoded[1:] if encoded.startswith("/") else encoded)
