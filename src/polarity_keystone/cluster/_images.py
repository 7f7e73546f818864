"""The images a node's Docker engine needs for a replica, loaded once per node.

The server resolves and builds every image a spec needs on its own engine (`prepare`), so the refs and
digests in a run's fingerprint are the server's. A node has the same images when it loads them from an
image source, a Docker engine that holds them (`KEYSTONE_IMAGE_SOURCE`: the server's engine, over
`unix://`, `tcp://` or `ssh://`): `docker save` there, `docker load` here, streamed, which keeps each
image's id, so the node runs exactly what the fingerprint names. Without a source the node pulls.

An engine's API is root on its machine, so a `tcp://` source should be TLS with client certificates, as
`dockerd --tlsverify` (and the `docker:dind` image, in /certs) serves it: KEYSTONE_IMAGE_SOURCE_CERT_PATH
names the directory of the node's client certificate, in Docker's layout (ca.pem, cert.pem, key.pem).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.tls

from ..sandbox import SandboxError

IMAGE_SOURCE_ENV = "KEYSTONE_IMAGE_SOURCE"
CERT_PATH_ENV = "KEYSTONE_IMAGE_SOURCE_CERT_PATH"
CERT_FILES = ("ca.pem", "cert.pem", "key.pem")


class NodeImages:
    """The images on one node's engine; safe to share between the threads of the node's replicas."""

    def __init__(
        self, client: docker.DockerClient, source_url: str | None = None, cert_path: str | None = None
    ) -> None:
        """`source_url` (default $KEYSTONE_IMAGE_SOURCE): where images come from, None to pull;
        `cert_path` (default $KEYSTONE_IMAGE_SOURCE_CERT_PATH): the client certificate for a TLS source."""
        self._client = client
        self._source_url = source_url if source_url is not None else os.environ.get(IMAGE_SOURCE_ENV)
        self._cert_path = cert_path if cert_path is not None else os.environ.get(CERT_PATH_ENV)
        self._source: _SourceAPI | None = None
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
                self._client.api.load_image(self._source_client().get_image(ref))
            else:
                self._client.images.pull(ref)
        except (docker.errors.DockerException, OSError) as exc:  # OSError: no answer, TLS refused
            where = f"the image source {self._source_url}" if self._source_url else "its registry"
            raise SandboxError(
                f"image {ref} is not on this node and could not be had from {where}: {exc}"
            ) from exc
        if not self._present(ref):
            raise SandboxError(f"image {ref} did not arrive on this node from {self._source_url}")

    def _source_client(self) -> _SourceAPI:
        if self._source is None:
            self._source = _SourceAPI(base_url=self._source_url, timeout=600, tls=self._tls())
        return self._source

    def _tls(self) -> docker.tls.TLSConfig | bool:
        """TLS with the node's client certificate, the source's verified against the CA (for a tcp://
        source with a cert path; none otherwise); SandboxError naming what is missing."""
        if not self._cert_path:
            return False
        if not (self._source_url or "").startswith("tcp://"):
            raise SandboxError(
                f"{CERT_PATH_ENV} is set, but the image source {self._source_url} is not tcp://: TLS is "
                "for a source over TCP (a socket or ssh:// needs no certificate)"
            )
        ca, cert, key = (Path(self._cert_path) / name for name in CERT_FILES)
        missing = [str(path) for path in (ca, cert, key) if not path.is_file()]
        if missing:
            raise SandboxError(
                f"{CERT_PATH_ENV}={self._cert_path} lacks {', '.join(missing)}: it holds the node's client "
                "certificate in Docker's layout (ca.pem, cert.pem, key.pem; docker:dind writes them to "
                "/certs/client)"
            )
        return docker.tls.TLSConfig(client_cert=(str(cert), str(key)), ca_cert=str(ca), verify=True)


class _SourceAPI(docker.APIClient):  # type: ignore[misc]
    """The image source's API, its certificate checked against the authority given: requests lets
    REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE replace a session's CA (psf/requests#3829)."""

    def merge_environment_settings(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        settings: dict[str, Any] = super().merge_environment_settings(*args, **kwargs)
        settings["verify"] = self.verify
        return settings
