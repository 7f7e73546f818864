"""The server's handle on the sandbox engine. It connects in the background at start-up, so an API-only
server (or a test of the API) needs no Docker engine, and a server restarted after a crash removes what
the crashed one left running without waiting for a request that needs sandboxes."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable, Mapping

from ..analysis import Pricing
from ..engine import PreparedSpec, ResolvedAgent, prepare
from ..sandbox import DockerBackend, ImageResolver, SandboxError
from ..secrets import SecretPolicy
from ..spec import LoadedSpec

log = logging.getLogger("polarity_keystone.server")
STOP_WAIT_S = 10.0
"""How long `close` waits for a start-up still connecting or reaping."""


class LazyEngine:
    def __init__(
        self, backend_factory: Callable[[], DockerBackend], secret_policy: SecretPolicy, pricing: Pricing
    ) -> None:
        self._factory = backend_factory
        self._secret_policy = secret_policy
        self._pricing = pricing
        self._lock = threading.Lock()
        self._backend: DockerBackend | None = None
        self._resolver: ImageResolver | None = None
        self._starting: threading.Thread | None = None

    def start_in_background(self) -> None:
        """Connect and reap the sandboxes of stopped servers off the start-up path: the API answers at
        once, and without an engine the server still starts (it says so, and tries again on the first
        request that needs sandboxes)."""
        self._starting = threading.Thread(target=self._start, name="keystone-engine-start", daemon=True)
        self._starting.start()

    def _start(self) -> None:
        try:
            self.backend()
        except SandboxError as exc:
            log.warning("no sandboxes until a Docker engine answers: %s", exc)

    def backend(self) -> DockerBackend:
        """The backend, created (and the leftovers of stopped servers reaped) on first use; raises
        SandboxError when no engine answers."""
        with self._lock:
            if self._backend is None:
                backend = self._factory()
                removed = backend.reap()
                if removed:
                    log.warning(
                        "removed %d sandbox(es) a stopped Keystone process left running: %s",
                        len(removed),
                        ", ".join(removed),
                    )
                self._backend, self._resolver = backend, ImageResolver(backend.client)
            return self._backend

    def close(self) -> None:
        """Let a start-up under way finish, then close the connection to the engine."""
        if self._starting is not None:
            self._starting.join(STOP_WAIT_S)
        with self._lock:
            if self._backend is not None:
                with contextlib.suppress(SandboxError):  # a host that refuses the rule refuses its removal
                    self._backend.close_server_ports()
                self._backend.client.close()

    def prepare(
        self,
        loaded: LoadedSpec,
        secrets: Mapping[str, str],
        bundle: str | None = None,
        agent: ResolvedAgent | None = None,
    ) -> PreparedSpec:
        self.backend()
        assert self._resolver is not None
        prepared = prepare(loaded, self._resolver, secrets, self._secret_policy, bundle=bundle, agent=agent)
        return dataclasses.replace(prepared, pricing=self._pricing)

    def keystone_image(self, name: str) -> str:
        """Keystone's own image `name` on this server's engine, built if missing (cluster nodes load
        it from there: they start their reapers from it)."""
        self.backend()
        assert self._resolver is not None
        return self._resolver.local(name).ref

    @property
    def started(self) -> bool:
        return self._backend is not None
