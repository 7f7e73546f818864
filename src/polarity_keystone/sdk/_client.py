"""`Keystone`, the client: one HTTP connection pool shared by its services."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from . import _config
from ._agents import AgentService
from ._alerts import AlertService
from ._datasets import DatasetService
from ._errors import KeystoneError
from ._evals import EvalService
from ._experiments import ExperimentService
from ._export import ExportService
from ._http import HttpClient
from ._instrument import observe
from ._models import Sandbox
from ._otel import set_otel_tracer
from ._prompts import PromptService
from ._retry import RetryPolicy
from ._sandboxes import SandboxService
from ._scoring import ScoringService
from ._specs import SpecService
from ._tracing import Tracer, reset_tracing, set_tracer
from ._webhooks import WebhookService

C = TypeVar("C")


class Keystone:
    """A client of one Keystone server.

    `api_key` and `base_url` fall back to KEYSTONE_API_KEY and KEYSTONE_BASE_URL. `timeout` is per
    request, in seconds; failed requests are retried up to `max_retries` times (connection errors, 429,
    5xx). `transport` replaces the network, e.g. with an in-process app in tests.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = _config.DEFAULT_TIMEOUT,
        *,
        max_retries: int = RetryPolicy.max_retries,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = _config.base_url(base_url).rstrip("/")
        self._api_key = _config.api_key(api_key)
        self._http = HttpClient(
            base_url=self.base_url,
            api_key=self._api_key,
            timeout=timeout,
            retry=RetryPolicy(max_retries=max_retries),
            transport=transport,
        )
        self.sandboxes = SandboxService(self._http)
        self.specs = SpecService(self._http)
        self.experiments = ExperimentService(self._http)
        self.webhooks = WebhookService(self._http)
        self.agents = AgentService(self._http)
        self.alerts = AlertService(self._http)
        self.export = ExportService(self._http)
        self.datasets = DatasetService(self._http)
        self.prompts = PromptService(self._http)
        self.scoring = ScoringService(self._http)
        self.evals = EvalService(self._http)
        self._on_close: list[Callable[[], None]] = []

    @classmethod
    def from_sandbox(cls) -> tuple[Keystone, Sandbox]:
        """Inside a sandbox: the client Keystone configured for the agent, and the agent's sandbox
        (with its services). Raises KeystoneError outside a sandbox (no KEYSTONE_SANDBOX_ID)."""
        sandbox_id = _config.sandbox_id()
        if sandbox_id is None:
            raise KeystoneError("KEYSTONE_SANDBOX_ID is not set: not running inside a Keystone sandbox")
        client = cls()
        try:
            return client, client.sandboxes.get(sandbox_id)
        except BaseException:
            client.close()
            raise

    @classmethod
    def local(cls, path: str | Path = ".keystone", *, timeout: float = _config.DEFAULT_TIMEOUT) -> Keystone:
        """Start an embedded server in this process (127.0.0.1, SQLite in `<path>/keystone.db`, local
        Docker) and return a client bound to it; closing the client stops the server."""
        from ._embedded import start_embedded_server  # imported late: it pulls in the server and engine

        server = start_embedded_server(Path(path))
        try:
            client = cls(api_key=server.api_key, base_url=server.base_url, timeout=timeout)
        except BaseException:
            server.stop()
            raise
        client._on_close.append(server.stop)
        return client

    def health(self) -> dict[str, Any]:
        """`GET /health`, e.g. {"status": "ok"}."""
        data = self._http.json("GET", "/health")
        return data if isinstance(data, dict) else {"status": data}

    def init_tracing(self, sandbox_id: str | None = None, *, otel_tracer: Any = None) -> bool:
        """Send `@traced` spans of this process to `sandbox_id` (default: KEYSTONE_SANDBOX_ID) through
        this client; with `otel_tracer` (an `opentelemetry.trace.Tracer`), every span and recorded LLM
        call is also an OTel span with `gen_ai.*` attributes. Returns False without a sandbox id or an
        API key: spans then go to the trace file (KEYSTONE_TRACE_FILE) if there is one, else nowhere."""
        if otel_tracer is not None:
            set_otel_tracer(otel_tracer)
        sandbox_id = sandbox_id or _config.sandbox_id()
        if not (sandbox_id and self._api_key):
            reset_tracing()
            return False
        set_tracer(Tracer(self.sandboxes, sandbox_id))
        return True

    def wrap(
        self, client: C, sandbox_id: str | None = None, *, tracing: bool = True, auto_instrument: bool = True
    ) -> C:
        """`client` (an `openai` or `anthropic` client, sync or async) reporting each LLM call as an
        `llm_call` event; with `tracing`, `init_tracing(sandbox_id)`; with `auto_instrument`, every client
        of every importable provider reports too. Wrapping twice records each call once."""
        self.observe(
            clients=[client], tracing=tracing, auto_instrument=auto_instrument, sandbox_id=sandbox_id
        )
        return client

    def observe(
        self,
        *,
        clients: Iterable[Any] | None = None,
        tracing: bool = True,
        auto_instrument: bool = True,
        sandbox_id: str | None = None,
    ) -> list[str]:
        """Wrap `clients`, start tracing and patch every importable provider in one call; the labels of
        what was applied (`anthropic-client`, `openai-client`, `tracing`, `openai`, `anthropic`)."""
        return observe(
            self.init_tracing,
            clients or (),
            tracing=tracing,
            auto_instrument=auto_instrument,
            sandbox_id=sandbox_id,
        )

    def close(self) -> None:
        self._http.close()
        while self._on_close:
            self._on_close.pop()()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Keystone(base_url={self.base_url!r})"
