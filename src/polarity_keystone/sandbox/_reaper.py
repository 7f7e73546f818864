"""Removes the containers and networks of sandboxes nobody owns any more.

A sandbox is an orphan when its owner is gone or when its `keystone.expires-at` has passed. An owner lives
exactly as long as its reaper container runs (see `_lease`): the owner label's hostname and pid say nothing
here, since two processes in containers may share both. A sandbox kept on purpose (`--keep`) outlives its
owner and is removed only once it expires. A live owner's reaper is never removed, not even by
`everything` (a stopped one is), nor is a port keeper (`_isolation`), which ends with its process.
Engines reap at start-up; `ks cleanup` reaps on demand.
"""

from __future__ import annotations

import contextlib
import time

import docker
import docker.errors

from . import _labels as labels

STARTING_S = 60.0
"""How long a reaper created but not started yet counts as running. An owner creates its reaper, attaches to
it, then starts it: a reap in that moment (another server starting on the same engine) must not take the
owner for gone and remove the reaper, nor what the owner labels next. A reaper never started goes after."""


def _live_owners(client: docker.DockerClient) -> set[str]:
    """The owners whose reaper runs (or is starting): through the low-level API, so a client that narrows
    its listings to some sandboxes still sees every reaper."""
    reapers = client.api.containers(all=True, filters={"label": f"{labels.ROLE}={labels.REAPER_ROLE}"})
    now = time.time()
    return {
        (reaper.get("Labels") or {}).get(labels.OWNER, "")
        for reaper in reapers
        if reaper.get("State") == "running"
        or (reaper.get("State") == "created" and now - reaper.get("Created", 0) < STARTING_S)
    }


def _orphaned(resource_labels: dict[str, str], live_owners: set[str], everything: bool) -> bool:
    """Resources without a leased owner (one-off helpers, anything run from a Keystone image, which carries
    `keystone.managed`; an older Keystone's sandboxes) are never judged by their owner."""
    if resource_labels.get(labels.ROLE) == labels.PORT_KEEPER_ROLE:
        return False  # it removes its server's port rule when that process ends, and goes
    owner = resource_labels.get(labels.OWNER, "")
    owner_gone = labels.leased(owner) and owner not in live_owners
    if resource_labels.get(labels.ROLE) == labels.REAPER_ROLE:
        return owner_gone
    if everything or labels.expired(resource_labels):
        return True
    return owner_gone and resource_labels.get(labels.KEEP) != "true"


def reap(client: docker.DockerClient, *, everything: bool = False) -> list[str]:
    """Remove orphaned sandboxes (every Keystone sandbox with `everything`); returns the sandbox ids."""
    selector = {"label": f"{labels.MANAGED}=true"}
    # Sparse listing: no per-container inspect, which would race with sandboxes being destroyed.
    containers = client.containers.list(all=True, filters=selector, sparse=True)
    networks = client.networks.list(filters=selector)
    # The reapers are listed last: an owner starts its reaper before labelling anything, so every owner
    # of what was listed either shows its reaper now or is gone.
    live_owners = _live_owners(client)
    removed: set[str] = set()
    for container in containers:
        container_labels = container.attrs.get("Labels") or {}
        if _orphaned(container_labels, live_owners, everything):
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                container.remove(force=True, v=True)
            if container_labels.get(labels.ROLE) != labels.REAPER_ROLE:
                removed.add(container_labels.get(labels.SANDBOX, container.id or ""))
    for network in networks:
        network_labels = network.attrs.get("Labels") or {}
        if _orphaned(network_labels, live_owners, everything):
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                network.remove()
            removed.add(network_labels.get(labels.SANDBOX, network.name or ""))
    return sorted(removed)
