"""Removes the containers and networks of sandboxes nobody owns any more.

A sandbox is an orphan when the engine process that created it is gone (killed, crashed) or when
its `keystone.expires-at` has passed. A sandbox kept on purpose (`--keep`) outlives its engine and
is removed only once it expires. Engines reap at start-up; `ks cleanup` reaps on demand.
"""

from __future__ import annotations

import contextlib

import docker
import docker.errors

from . import _labels as labels


def _orphaned(resource_labels: dict[str, str], everything: bool) -> bool:
    if everything or labels.expired(resource_labels):
        return True
    kept = resource_labels.get(labels.KEEP) == "true"
    return not kept and not labels.owner_alive(resource_labels.get(labels.OWNER, ""))


def reap(client: docker.DockerClient, *, everything: bool = False) -> list[str]:
    """Remove orphaned sandboxes (every Keystone sandbox with `everything`); returns the sandbox ids."""
    selector = {"label": f"{labels.MANAGED}=true"}
    removed: set[str] = set()
    # Sparse listing: no per-container inspect, which would race with sandboxes being destroyed.
    for container in client.containers.list(all=True, filters=selector, sparse=True):
        container_labels = container.attrs.get("Labels") or {}
        if _orphaned(container_labels, everything):
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                container.remove(force=True, v=True)
            removed.add(container_labels.get(labels.SANDBOX, container.id or ""))
    for network in client.networks.list(filters=selector):
        network_labels = network.attrs.get("Labels") or {}
        if _orphaned(network_labels, everything):
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                network.remove()
            removed.add(network_labels.get(labels.SANDBOX, network.name or ""))
    return sorted(removed)
