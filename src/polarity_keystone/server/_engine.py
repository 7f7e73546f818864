"""The server's handle on the sandbox engine, created on first use so an API-only server (or a test of
the API) needs no Docker engine."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from ..engine import PreparedSpec, SecretPolicy, prepare
from ..sandbox import DockerBackend, ImageResolver
from ..spec import LoadedSpec


class LazyEngine:
    def __init__(self, backend_factory: Callable[[], DockerBackend], secret_policy: SecretPolicy) -> None:
        self._factory = backend_factory
        self._secret_policy = secret_policy
        self._lock = threading.Lock()
        self._backend: DockerBackend | None = None
        self._resolver: ImageResolver | None = None

    def backend(self) -> DockerBackend:
        """The backend, created (and the leftovers of crashed servers reaped) on first use; raises
        SandboxError when no engine answers."""
        with self._lock:
            if self._backend is None:
                backend = self._factory()
                backend.reap()
                self._backend, self._resolver = backend, ImageResolver(backend.client)
            return self._backend

    def prepare(self, loaded: LoadedSpec, secrets: Mapping[str, str]) -> PreparedSpec:
        self.backend()
        assert self._resolver is not None
        return prepare(loaded, self._resolver, secrets, self._secret_policy)

    @property
    def started(self) -> bool:
        return self._backend is not None
