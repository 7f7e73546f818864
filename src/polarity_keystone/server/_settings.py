"""How one server runs: built by the caller (`ks serve`, the embedded mode, a test) and passed down,
never read from an import-time global."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import unquote

from ..analysis import Pricing, local_pricing, shipped_pricing
from ..engine import StockLimits
from ..sandbox import DockerBackend
from ..secrets import SecretPolicy, check_operator_secret
from ._blobs import s3_location
from ._ray_address import host_and_port


@dataclass(frozen=True)
class ServerSettings:
    store_url: str
    """`sqlite:///abs/path.db` (embedded default) or `postgresql://...` (shared server)."""
    auth_required: bool = True
    """False lets requests without a key through as the local user (embedded mode on 127.0.0.1);
    a key that is sent is still checked, so sandbox tokens keep their scope."""
    end_unfinished: bool = True
    """End what stopped servers left running on the store (experiments and sandboxes whose server's lease
    expired, see `_instance`): at start-up, then on every heartbeat. False leaves that to the other
    processes on the store (`ks ui`, a viewer beside `ks eval run`)."""
    lease_s: float = 30.0
    """How long this server's hold on its experiments and sandboxes outlives its last heartbeat (renewed
    every third of it): once it expires, another server on the same store ends them (see `_instance`).
    Longer rides out a slower database; shorter ends a dead server's experiments sooner."""
    spec_root: Path | None = None
    """Where a spec's relative paths resolve, and stay, when its upload brings no bundle of its files
    (an operator's own directory, `ks serve --spec-root`). None: a spec uploaded without a bundle may
    name no local path (the server's working directory is not a spec root)."""
    host_sources: bool = False
    """Embedded mode (the local user's own server): a spec's `env:`, `file:` and `command:` secret
    sources are read on this machine. False (a shared server): they are refused with 400 unless the
    request carries the value or `operator_secrets` names the secret."""
    operator_secrets: Mapping[str, str] = field(default_factory=dict)
    """Secret name -> source (`env:VAR`, `file:PATH`, `command:CMD`) the operator allows for every run
    (`ks serve --secret NAME=SOURCE`); never taken from a spec."""
    executor: Literal["local", "ray"] = "local"
    """Where experiments' replicas run: `local`, on this server's Docker engine; `ray`, on the nodes of
    the Ray cluster at `ray_address` (`ks serve --executor ray`; needs the `ray` extra). Images are still
    built on this server's engine, which nodes load them from (see cluster/_images.py)."""
    ray_address: str | None = None
    """With the `ray` executor: `auto`, `HOST:PORT` or `ray://HOST:PORT`. None starts a Ray of this
    machine alone."""
    backend_factory: Callable[[], DockerBackend] = DockerBackend
    """Called once, on the first request that needs sandboxes, so an API-only server needs no engine."""
    max_concurrent_experiments: int = 4
    """Experiments queued or running at once on this server; more are refused with 503."""
    per_key_concurrency: int = 2
    """Experiments queued or running at once per API key; more are refused with 503."""
    per_project_concurrency: int = 4
    """Experiments queued or running at once per project (all its keys); more are refused with 503."""
    max_sandboxes_per_key: int = 10
    """Live sandboxes per API key (`POST /v1/sandboxes`); more are refused with 503."""
    max_sandboxes_per_project: int = 20
    """Live sandboxes per project (all its keys); more are refused with 503."""
    read_rate: float = 100.0
    """Read requests (GET, HEAD) per second per key, with a burst of the same size."""
    write_rate: float = 10.0
    """Write requests per second per key, with a burst of the same size."""
    project_read_rate: float | None = None
    """Read requests per second per project (all its keys together), so one team's many keys cannot
    crowd out the others. None: four keys' worth (4 * read_rate)."""
    project_write_rate: float | None = None
    """Write requests per second per project. None: 4 * write_rate."""
    webhook_url: str | None = None
    """Receives `run.completed` when an experiment finishes, signed with `webhook_secret`."""
    webhook_secret: str | None = None
    webhook_allow_private_networks: bool = False
    """Whether webhook subscriptions (`POST /v1/webhooks`, made by API callers) may target loopback, private
    and link-local addresses. False on a shared server: a caller must not make it reach the operator's
    network (metadata endpoints, internal services). The embedded server's caller is the operator: True."""
    public_url: str | None = None
    """The base URL agents inside sandboxes reach this server at (their KEYSTONE_BASE_URL); the URL of
    the request that started the sandbox when None."""
    session_secret: bytes | None = None
    """Signs the dashboard's session cookies (KEYSTONE_SESSION_SECRET for `ks serve`): give several servers
    behind one URL the same one. None: a random secret kept in `data_dir` (`dashboard-session.key`)."""
    idempotency_wait_s: float = 300.0
    """How long a duplicate POST waits for the first one (same Idempotency-Key) to finish."""
    stream_timeout_s: float = 3600.0
    """An SSE stream closes after this long even without a terminal event."""
    data_dir: Path | None = None
    """Where uploaded blobs (`blobs/`, unless `blob_store_url` names a bucket) and the bundles written
    from them (`bundles/`) are kept. None: the SQLite store's directory, or ~/.keystone/server with
    another store."""
    blob_store_url: str | None = None
    """`s3://bucket/prefix`: blobs are kept in an S3-compatible bucket, which several servers can share
    (needs the `s3` extra; credentials from the usual AWS environment variables). None: in `data_dir`."""
    blob_store_endpoint: str | None = None
    """The S3 API's URL when it is not AWS's (MinIO, R2, moto)."""
    max_blob_bytes_per_project: int = 5 * 1024**3
    """The total size of one project's blobs; an upload past it is refused with 413. 0: no quota."""
    blob_gc_interval_s: float = 6 * 3600.0
    """How often the server collects garbage blobs (releasing what projects no longer use from their
    quota, deleting blobs no project owns); 0: never (`ks blobs gc` still does it on demand)."""
    blob_retention_days: float = 30.0
    """An experiment's bundle is kept this long after the experiment was created (replay and extend
    need it); a spec version's bundle is kept until the spec is deleted."""
    blob_gc_grace_s: float = 3600.0
    """An ownership claimed or used by an upload within this long is never released (the upload may
    not be recorded yet)."""
    max_bundle_bytes: int = 200 * 1024**2
    """The total size of the files of one spec bundle; a larger one is refused with 413."""
    max_bundle_files: int = 10_000
    """Files in one spec bundle; more are refused with 413."""
    max_body_bytes: int = 8 * 1024**2
    """A request body larger than this is refused with 413 before it is read (a spec upload is further
    capped at the spec loader's 1 MiB; a file written through the API counts with its base64 encoding)."""
    max_snapshot_bytes: int = 200 * 1024**2
    """An agent snapshot's tarball (`POST /v1/agents`, streamed to disk as it arrives); larger is 413."""
    max_snapshot_unpacked_bytes: int = 1024**3
    """What a snapshot's tarball may unpack to, tar headers included; more is 413 (gzip bombs)."""
    max_snapshot_members: int = 10_000
    """Files, directories and links in a snapshot's tarball; more are 413."""
    warm_pool: StockLimits = field(default_factory=lambda: StockLimits(per_plan=0))
    """Ready sandboxes kept between experiments, per project and sandbox plan (`ks serve --warm-pool`);
    off by default (per_plan 0): an idle server then holds no containers."""
    pricing: Pricing = field(default_factory=shipped_pricing)
    """The prices runs are costed at: the shipped table, with the operator's file over it (`ks serve
    --pricing`, KEYSTONE_PRICING_FILE); never chosen by a spec."""

    @classmethod
    def for_local_user(cls, store_url: str, *, auth_required: bool = True) -> ServerSettings:
        """The settings of the local user's own server on `store_url`: the embedded one, and `ks ui`'s (which
        needs no key: it listens on loopback only)."""
        return cls(
            store_url=store_url,
            auth_required=auth_required,
            host_sources=True,
            webhook_allow_private_networks=True,
            max_blob_bytes_per_project=0,  # the local user's own disk: no quota between them and their files
            pricing=local_pricing(),
        )

    @property
    def data_path(self) -> Path:
        if self.data_dir is not None:
            return self.data_dir
        if self.store_url.startswith("sqlite:///"):
            return Path(unquote(self.store_url.removeprefix("sqlite://"))).parent
        return Path.home() / ".keystone" / "server"

    @property
    def secret_policy(self) -> SecretPolicy:
        return SecretPolicy(self.host_sources, dict(self.operator_secrets))

    @property
    def project_rates(self) -> tuple[float, float]:
        """The read and write rates of each project's bucket."""
        read = self.project_read_rate if self.project_read_rate is not None else 4 * self.read_rate
        write = self.project_write_rate if self.project_write_rate is not None else 4 * self.write_rate
        return read, write

    def __post_init__(self) -> None:
        if self.webhook_url and not self.webhook_secret:
            raise ValueError("webhook_url needs webhook_secret: receivers must be able to verify signatures")
        for name in (
            "max_concurrent_experiments",
            "per_key_concurrency",
            "per_project_concurrency",
            "max_sandboxes_per_key",
            "max_sandboxes_per_project",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name, source in self.operator_secrets.items():
            check_operator_secret(name, source)
        for name in ("read_rate", "write_rate", "project_read_rate", "project_write_rate"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.max_body_bytes < 1024:
            raise ValueError("max_body_bytes must be at least 1024")
        if self.lease_s <= 0:
            raise ValueError("lease_s must be positive")
        for name in ("blob_gc_interval_s", "blob_retention_days", "blob_gc_grace_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.max_blob_bytes_per_project < 0:
            raise ValueError("max_blob_bytes_per_project must be 0 (no quota) or positive")
        if self.blob_store_url is not None:
            s3_location(self.blob_store_url)
        elif self.blob_store_endpoint is not None:
            raise ValueError("blob_store_endpoint needs blob_store_url (s3://bucket/prefix)")
        if self.executor not in ("local", "ray"):
            raise ValueError(f"executor must be 'local' or 'ray', not {self.executor!r}")
        if self.ray_address is not None and self.executor != "ray":
            raise ValueError("ray_address needs executor 'ray'")
        if self.ray_address is not None:
            host_and_port(self.ray_address)
