"""Everything one server instance holds, built from its settings when the app is created."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from fastapi import Request

from ..engine import SandboxStock
from ..store import ExperimentRecord, NotFound, SandboxRecord, open_store
from ._agents import AgentSnapshots
from ._alerts import SLACK_WEBHOOK_URL_ENV, AlertNotifier
from ._blob_gc import BlobCollector, GcPolicy, ScheduledCollection
from ._blobs import open_blob_store
from ._bundle_cache import BundleCache, BundleLimits
from ._cluster import connect_cluster
from ._engine import LazyEngine
from ._events import EventBus
from ._instance import Heartbeat
from ._known_keys import KnownKeys
from ._project_blobs import ProjectBlobs
from ._ratelimit import RateLimiter
from ._results import results_so_far
from ._results_cache import EncodedResults
from ._runner import ExperimentRunner
from ._sandbox_manager import SandboxManager
from ._sessions import SessionCodec
from ._settings import ServerSettings
from ._snapshots import SnapshotLimits
from ._spec_sources import SpecSources
from ._webhooks import WebhookSender

CompletionBody = Callable[["ServerContext", str, ExperimentRecord], dict[str, Any]]
"""The body of a completion webhook of the given type (given by the routes, which build the responses)."""


class ServerContext:
    def __init__(self, settings: ServerSettings, completion_body: CompletionBody) -> None:
        self.settings = settings
        self.store = open_store(settings.store_url)
        self.bus = EventBus(self.store)
        self.encoded_results = EncodedResults()
        self.known_keys = KnownKeys(self.store)
        self.sessions = SessionCodec(settings.session_secret, settings.data_path)
        self.limiter = RateLimiter(settings.read_rate, settings.write_rate)
        self.project_limiter = RateLimiter(*settings.project_rates)
        self.heartbeat = Heartbeat(self.store, settings.lease_s)
        self.engine = LazyEngine(settings.backend_factory, settings.secret_policy, settings.pricing)
        backend = open_blob_store(settings.blob_store_url, settings.blob_store_endpoint, settings.data_path)
        self.blobs = ProjectBlobs(self.store, backend, settings.max_blob_bytes_per_project)
        limits = BundleLimits(settings.max_bundle_bytes, settings.max_bundle_files)
        self.agents = AgentSnapshots(
            self.store,
            self.blobs,
            SnapshotLimits(
                settings.max_snapshot_bytes,
                settings.max_snapshot_unpacked_bytes,
                settings.max_snapshot_members,
            ),
            unpacked_snapshots := settings.data_path / "agents",
        )
        self.bundles = BundleCache(self.blobs, settings.data_path / "bundles", limits)
        self.specs = SpecSources(
            self.store,
            self.bus,
            self.bundles,
            spec_root=settings.spec_root,
        )
        self.sandboxes = SandboxManager(
            self.store,
            self.bus,
            self.engine,
            settings.max_sandboxes_per_key,
            settings.max_sandboxes_per_project,
            instance_id=self.heartbeat.instance_id,
        )
        self.webhooks = WebhookSender(
            self.store,
            lambda event_type, record: completion_body(self, event_type, record),
            operator_url=settings.webhook_url,
            operator_secret=settings.webhook_secret,
            allow_private=settings.webhook_allow_private_networks,
            instance_id=self.heartbeat.instance_id,
        )
        self.alerts = AlertNotifier(
            self.store,
            slack_webhook_url=os.environ.get(SLACK_WEBHOOK_URL_ENV) or None,
            allow_private=settings.webhook_allow_private_networks,
        )
        self.runner = ExperimentRunner(
            self.store,
            self.bus,
            self.engine,
            self.sandboxes,
            self.specs,
            self.webhooks,
            agents=self.agents,
            instance_id=self.heartbeat.instance_id,
            max_concurrent=settings.max_concurrent_experiments,
            per_key=settings.per_key_concurrency,
            per_project=settings.per_project_concurrency,
            stock=SandboxStock(self.engine.backend, settings.warm_pool)
            if settings.warm_pool.per_plan
            else None,
            on_finished=self.alerts.experiment_finished,
            cluster=connect_cluster(settings),
        )
        policy = GcPolicy(
            retention=timedelta(days=settings.blob_retention_days),
            grace=timedelta(seconds=settings.blob_gc_grace_s),
        )
        written_out = [self.bundles.root, unpacked_snapshots]
        self.blob_collector = BlobCollector(self.store, backend, written_out, policy)
        self._blob_gc = ScheduledCollection(self.blob_collector, settings.blob_gc_interval_s)
        if settings.blob_gc_interval_s:
            self._blob_gc.start()
        self._closed = False
        self._lock = threading.Lock()

    def recover(self) -> None:
        """Start-up: hold this server's lease on the store and end what stopped servers left there (see
        `_instance`, then again on every heartbeat), and reap their sandboxes on the Docker engine in the
        background (see LazyEngine.start_in_background)."""
        ends = (self.runner.sweep, self.sandboxes.sweep, self.webhooks.sweep)
        sweeps = ends if self.settings.end_unfinished else ()
        self.heartbeat.start(sweeps)
        self.engine.start_in_background()

    def experiment(
        self, project_id: str, experiment_id: str, *, with_results: bool = True
    ) -> ExperimentRecord:
        """The experiment, if it belongs to the project; another project's is as unknown as a missing one
        (NotFound), so its id says nothing about whether it exists. Without results, its `results` is
        None (see `Store.get_experiment_head`)."""
        read = self.store.get_experiment if with_results else self.store.get_experiment_head
        record = read(experiment_id)
        if record.project_id != project_id:
            raise NotFound(f"no experiment {experiment_id!r}")
        return record

    def results(self, record: ExperimentRecord) -> dict[str, Any]:
        """The experiment's RunResults JSON: the final one once stored, else built from its replicas so far
        (see `results_so_far`)."""
        replicas = [] if record.results is not None else self.store.replicas(record.id)
        return results_so_far(record, replicas)

    def sandbox(self, project_id: str, sandbox_id: str) -> SandboxRecord:
        """The sandbox, if it belongs to the project (NotFound otherwise, as for `experiment`)."""
        record = self.store.get_sandbox(sandbox_id)
        if record.project_id != project_id:
            raise NotFound(f"no sandbox {sandbox_id!r}")
        return record

    def base_url(self, request: Request) -> str:
        """Where agents reach this server (their KEYSTONE_BASE_URL)."""
        return self.settings.public_url or str(request.base_url).rstrip("/")

    def close(self) -> None:
        """Stop experiments (they end `interrupted`), destroy live sandboxes, end this server's lease, close
        the store; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.runner.close()
        self.sandboxes.close()
        self.heartbeat.close()
        self.engine.close()
        self.webhooks.close()
        self.alerts.close()
        self._blob_gc.close()
        self.store.close()
