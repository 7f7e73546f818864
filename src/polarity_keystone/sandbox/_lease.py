"""Each engine process's reaper: the lease that keeps its sandboxes alive, and removes them once it is gone.

Before its first sandbox, a process starts a container of Keystone's `reaper` image on the engine, attached
to its stdin (`_attachment`); whatever ends the process, the reaper then removes the owner's labelled
containers, networks and volumes through the engine's socket and goes away (auto-remove).
While the reaper runs, the owner counts as alive for every other process's start-up reap; that, not the
hostname or pid in the owner label, is what tells a live owner from a dead one.

One reaper per process and owner, started on the first sandbox, not per sandbox.
"""

from __future__ import annotations

import atexit
import os
import threading

import docker
import docker.errors

from . import _labels as labels
from ._attachment import Attachment
from ._base import SandboxError
from ._images import ImageError, ImageResolver

SOCKET_VARIABLE = "KEYSTONE_ENGINE_SOCKET"
"""The engine's socket on the engine's machine, mounted into the reaper (default /var/run/docker.sock);
set it for an engine listening elsewhere (rootless Docker: $XDG_RUNTIME_DIR/docker.sock)."""
_DEFAULT_SOCKET = "/var/run/docker.sock"
_OWNER_VARIABLE = "KEYSTONE_REAPER_OWNER"


class Lease:
    """A running reaper for one owner and this process's attachment to its stdin."""

    def __init__(self, client: docker.DockerClient, owner: str) -> None:
        self.owner = owner
        self.container_id = _start_reaper(client, owner)
        try:
            self._attachment = Attachment(client, self.container_id)
        except docker.errors.DockerException as exc:
            raise SandboxError(f"Keystone's reaper container did not start: {exc}") from exc

    def held(self) -> bool:
        """Whether the reaper is still there."""
        return self._attachment.held()

    def release(self) -> None:
        """End the attachment, as the process's exit would: the reaper removes the owner's sandboxes."""
        self._attachment.release()


def _start_reaper(client: docker.DockerClient, owner: str) -> str:
    """Create (not start) the reaper of `owner`; its id."""
    try:
        image = ImageResolver(client).local("reaper").ref
        engine_socket = os.environ.get(SOCKET_VARIABLE) or _DEFAULT_SOCKET
        host_config = client.api.create_host_config(
            binds={engine_socket: {"bind": _DEFAULT_SOCKET, "mode": "rw"}},
            network_mode="none",
            auto_remove=True,
            read_only=True,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            mem_limit=64 * 1024 * 1024,
            pids_limit=16,
        )
        created = client.api.create_container(  # stdin open, not detached: docker-py sets StdinOnce
            image,
            stdin_open=True,
            detach=False,
            environment={_OWNER_VARIABLE: owner},
            labels={labels.MANAGED: "true", labels.OWNER: owner, labels.ROLE: labels.REAPER_ROLE},
            host_config=host_config,
        )
    except (ImageError, docker.errors.DockerException) as exc:
        raise SandboxError(f"Keystone's reaper container could not be created: {exc}") from exc
    return str(created["Id"])


_leases: dict[tuple[str, str, int], Lease] = {}
_lock = threading.Lock()


@atexit.register
def _release_all() -> None:
    """At a normal exit, as the kernel would at any other: the reapers remove what is left."""
    with _lock:
        for held in _leases.values():
            held.release()
        _leases.clear()


def hold(client: docker.DockerClient, owner: str) -> Lease:
    """The lease of `owner` on the engine `client` talks to, started on first use (and again if its reaper
    went away); raises SandboxError when the reaper cannot start."""
    key = (str(client.api.base_url), owner, os.getpid())
    with _lock:
        lease = _leases.get(key)
        if lease is None or not lease.held():
            if lease is not None:
                lease.release()
            lease = _leases[key] = Lease(client, owner)
        return lease
