"""Everything one server instance holds, built from its settings when the app is created."""

from __future__ import annotations

import threading

from fastapi import Request

from ..store import open_store
from ._blobs import LocalBlobStore
from ._bundle_cache import BundleCache, BundleLimits
from ._engine import LazyEngine
from ._events import EventBus
from ._ratelimit import RateLimiter
from ._runner import ExperimentRunner
from ._sandbox_manager import SandboxManager
from ._settings import ServerSettings
from ._spec_sources import SpecSources
from ._webhooks import WebhookSender


class ServerContext:
    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.store = open_store(settings.store_url)
        self.bus = EventBus(self.store)
        self.limiter = RateLimiter(settings.read_rate, settings.write_rate)
        self.engine = LazyEngine(settings.backend_factory, settings.secret_policy)
        self.blobs = LocalBlobStore(settings.data_path / "blobs")
        limits = BundleLimits(settings.max_bundle_bytes, settings.max_bundle_files)
        self.bundles = BundleCache(self.blobs, settings.data_path / "bundles", limits)
        self.specs = SpecSources(
            self.store,
            self.bus,
            self.bundles,
            allow_local_paths=settings.allow_local_paths,
            spec_root=settings.spec_root,
        )
        self.sandboxes = SandboxManager(self.store, self.bus, self.engine, settings.max_sandboxes_per_key)
        self.webhooks = WebhookSender(settings.webhook_url, settings.webhook_secret)
        self.runner = ExperimentRunner(
            self.store,
            self.bus,
            self.engine,
            self.sandboxes,
            self.specs,
            self.webhooks,
            max_concurrent=settings.max_concurrent_experiments,
            per_key=settings.per_key_concurrency,
        )
        self._closed = False
        self._lock = threading.Lock()

    def recover(self) -> None:
        """Start-up: end what a previous process left running (see ExperimentRunner.recover), in the
        store now and on the Docker engine in the background (see LazyEngine.start_in_background)."""
        self.runner.recover()
        self.sandboxes.recover()
        self.engine.start_in_background()

    def base_url(self, request: Request) -> str:
        """Where agents reach this server (their KEYSTONE_BASE_URL)."""
        return self.settings.public_url or str(request.base_url).rstrip("/")

    def close(self) -> None:
        """Stop experiments (they end `interrupted`), destroy live sandboxes, close the store; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.runner.close()
        self.sandboxes.close()
        self.engine.close()
        self.webhooks.close()
        self.store.close()
