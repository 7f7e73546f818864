"""The images a node's Docker engine needs for a replica, loaded once per node.

The server resolves and builds every image a spec needs on its own engine (`prepare`), so the refs and
digests in a run's fingerprint are the server's. A node has the same images when it loads them from an
image source, a Docker engine that holds them (`KEYSTONE_IMAGE_SOURCE`: the server's engine, over
`unix://`, `tcp://` or `ssh://`): `docker save` there, `docker load` here, streamed, which keeps each
image's id, so the node runs exactly what the fingerprint names. Without a source the node pulls.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable

import docker
import docker.errors

from ..sandbox import SandboxError

IMAGE_SOURCE_ENV = "KEYSTONE_IMAGE_SOURCE"


class NodeImages:
    """The images on one node's engine; safe to share between the threads of the node's replicas."""

    def __init__(self, client: docker.DockerClient, source_url: str | None = None) -> None:
        self._client = client
        self._source_url = source_url if source_url is not None else os.environ.get(IMAGE_SOURCE_ENV)
        self._source: docker.DockerClient | None = None
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._here: set[str] = set()
        """Refs found or loaded on the engine already: not asked about again for every replica."""

    def ensure(self, refs: Iterable[str]) -> None:
        """Every ref present on the node's engine; SandboxError naming the first that cannot be had."""
        for ref in dict.fromkeys(refs):
            with self._lock:
                if ref in self._here:
                    continue
                lock = self._locks.setdefault(ref, threading.Lock())
            with lock:  # replicas of one spec arriving together load each image once
                if not self._present(ref):
                    self._fetch(ref)
            with self._lock:
                self._here.add(ref)

    def _present(self, ref: str) -> bool:
        try:
            self._client.images.get(ref)
        except docker.errors.ImageNotFound:
            return False
        except docker.errors.DockerException as exc:
            raise SandboxError(f"the node's Docker engine did not answer: {exc}") from exc
        return True

    def _fetch(self, ref: str) -> None:
        try:
            if self._source_url:
                source = self._source_client()
                self._client.api.load_image(source.api.get_image(ref))
            else:
                self._client.images.pull(ref)
        except docker.errors.DockerException as exc:
            where = f"the image source {self._source_url}" if self._source_url else "its registry"
            raise SandboxError(
                f"image {ref} is not on this node and could not be had from {where}: {exc}"
            ) from exc
        if not self._present(ref):
            raise SandboxError(f"image {ref} did not arrive on this node from {self._source_url}")

    def _source_client(self) -> docker.DockerClient:
        if self._source is None:
            self._source = docker.DockerClient(base_url=self._source_url, timeout=600)
        return self._source
