"""`ks serve`: a shared Keystone server."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from rich.console import Console
from rich.markup import escape

from .. import exit_codes

if TYPE_CHECKING:
    from ..sandbox import DockerBackend
    from ..store import Store

err = Console(stderr=True, highlight=False, soft_wrap=True)

DEFAULT_PORT = 8000


def default_store_url() -> str:
    """KEYSTONE_STORE_URL, else SQLite in `.keystone/keystone.db` under the working directory."""
    return os.environ.get("KEYSTONE_STORE_URL") or f"sqlite://{Path('.keystone').resolve() / 'keystone.db'}"


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser("serve", help="run a Keystone server (REST API) for the SDK, CLI and CI gate")
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default: {DEFAULT_PORT}")
    store_option(serve)
    serve.add_argument(
        "--public-url", help="the URL agents in sandboxes reach this server at (default: the request's)"
    )
    serve.add_argument(
        "--spec-root",
        type=Path,
        metavar="DIR",
        help="the directory uploaded specs' local paths (agent.path, fixture files) resolve in, and may "
        "not leave; without it, specs with local paths are refused",
    )
    serve.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="NAME=SOURCE",
        help="allow a secret for every run, read on this machine: NAME=env:VAR, NAME=file:PATH or "
        "NAME=command:CMD (repeatable). Specs never choose what the server reads; without this, a run "
        "gets a secret only from its request",
    )
    serve.add_argument(
        "--runtime",
        default=os.environ.get("KEYSTONE_RUNTIME") or None,
        metavar="NAME",
        help="Docker runtime of every agent container, e.g. runsc for gVisor (registered by "
        "scripts/setup-docker), whatever a spec's resources.runtime says (default: $KEYSTONE_RUNTIME, else "
        "runc, or the spec's runtime)",
    )
    blob_store_options(serve)
    serve.add_argument(
        "--webhook-url",
        default=os.environ.get("KEYSTONE_WEBHOOK_URL") or None,
        metavar="URL",
        help="the operator's receiver of every completion event, signed with $KEYSTONE_WEBHOOK_SECRET "
        "(default: $KEYSTONE_WEBHOOK_URL)",
    )
    serve.add_argument(
        "--allow-private-webhooks",
        action="store_true",
        help="let webhook subscriptions (made by API callers) reach loopback and private networks: for "
        "servers whose every key holder may reach them anyway (on-prem, tests)",
    )
    serve.add_argument(
        "--max-body-mib",
        type=float,
        metavar="MIB",
        help="refuse request bodies larger than this with 413, before reading them (default: 8)",
    )
    serve.add_argument(
        "--warm-pool",
        type=int,
        default=2,
        metavar="N",
        help="ready sandboxes kept between experiments per project and spec (when its services can be "
        "reset), four times as many in all, so the next experiment's first replicas start at once; 0: "
        "none (default: 2)",
    )
    serve.add_argument(
        "--warm-pool-ttl",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="a kept sandbox not used within this long is destroyed (default: 600)",
    )
    serve.add_argument(
        "--executor",
        choices=("local", "ray"),
        default=os.environ.get("KEYSTONE_EXECUTOR") or "local",
        help="where replicas run: local, on this machine's Docker engine; ray, on the nodes of a Ray "
        "cluster, each with its own engine (needs the ray extra; default: $KEYSTONE_EXECUTOR, else local)",
    )
    serve.add_argument(
        "--ray-address",
        default=os.environ.get("KEYSTONE_RAY_ADDRESS") or None,
        metavar="ADDRESS",
        help="with --executor ray: the cluster's HOST:PORT, ray://HOST:PORT or auto (default: "
        "$KEYSTONE_RAY_ADDRESS, else a Ray of this machine alone)",
    )
    serve.add_argument(
        "--lease",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long this server's experiments and sandboxes stay its own after its last heartbeat "
        "(renewed every third of it); once it expires, another server on the same store ends them "
        "(default: 30)",
    )
    serve.add_argument(
        "--pricing",
        type=Path,
        metavar="FILE",
        help="model prices (JSON or YAML: {version, models: {NAME: {input, output, cached_input}}}, USD per "
        "million tokens) laid over the shipped table; runs are costed with them (default: "
        "$KEYSTONE_PRICING_FILE)",
    )


def blob_store_options(parser: argparse.ArgumentParser) -> None:
    """Where the server's blobs are: --data-dir, --blob-store, --blob-store-endpoint."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="where blobs and the spec bundles written from them are kept (default: beside the SQLite "
        "store, else ~/.keystone/server)",
    )
    parser.add_argument(
        "--blob-store",
        default=os.environ.get("KEYSTONE_BLOB_STORE_URL") or None,
        metavar="s3://BUCKET/PREFIX",
        help="keep blobs in an S3-compatible bucket that several servers share (needs the s3 extra; "
        "credentials from the AWS_* environment; default: $KEYSTONE_BLOB_STORE_URL, else --data-dir)",
    )
    parser.add_argument(
        "--blob-store-endpoint",
        default=os.environ.get("KEYSTONE_BLOB_STORE_ENDPOINT") or None,
        metavar="URL",
        help="the S3 API's URL when it is not AWS's (MinIO, R2; default: $KEYSTONE_BLOB_STORE_ENDPOINT)",
    )


def store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        default=None,
        metavar="URL",
        help="sqlite:///abs/path.db or postgresql://... "
        "(default: $KEYSTONE_STORE_URL, else .keystone/keystone.db)",
    )


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn  # imported late: the other commands need no web server

    from ..analysis import PRICING_FILE_ENV, PricingError, operator_pricing
    from ..engine import StockLimits
    from ..sandbox import SandboxError
    from ..server import ServerSettings, create_app

    operator_secrets = _operator_secrets(args.secret)
    if operator_secrets is None:
        return exit_codes.INVALID_INPUT
    store_url = args.store or default_store_url()
    store = open_store_or_none(store_url)
    if store is None:
        return exit_codes.INVALID_INPUT
    try:
        has_keys = any(key.kind == "live" and not key.revoked for key in store.list_api_keys())
    finally:
        store.close()
    if not has_keys:
        hint = f"ks keys create NAME --store {_shown(store_url)}"
        err.print(f"[yellow]no API key yet:[/] create one with `{hint}`")
    from_env = os.environ.get(PRICING_FILE_ENV)  # read here: the parser is built without the analysis package
    pricing_file = args.pricing or (Path(from_env) if from_env else None)
    try:
        pricing = operator_pricing(pricing_file)
    except PricingError as exc:
        err.print(f"[red]invalid --pricing:[/] {exc}")
        return exit_codes.INVALID_INPUT
    if args.spec_root is not None and not args.spec_root.is_dir():
        err.print(f"[red]invalid --spec-root:[/] {args.spec_root} is not a directory")
        return exit_codes.INVALID_INPUT
    try:
        settings = ServerSettings(
            store_url=store_url,
            public_url=args.public_url,
            operator_secrets=operator_secrets,
            spec_root=args.spec_root.resolve() if args.spec_root is not None else None,
            data_dir=args.data_dir.resolve() if args.data_dir is not None else None,
            blob_store_url=args.blob_store,
            blob_store_endpoint=args.blob_store_endpoint,
            webhook_url=args.webhook_url,
            webhook_secret=os.environ.get("KEYSTONE_WEBHOOK_SECRET") or None,
            session_secret=os.environ.get("KEYSTONE_SESSION_SECRET", "").encode() or None,
            webhook_allow_private_networks=args.allow_private_webhooks,
            pricing=pricing,
            warm_pool=StockLimits(args.warm_pool, total=4 * args.warm_pool, ttl_s=args.warm_pool_ttl),
            executor=args.executor,
            ray_address=args.ray_address if args.executor == "ray" else None,
            lease_s=args.lease,
        )
    except ValueError as exc:
        err.print(f"[red]invalid server settings:[/] {exc}")
        return exit_codes.INVALID_INPUT
    if operator_secrets:
        err.print(f"secrets allowed for every run: {', '.join(sorted(operator_secrets))}")
    if args.max_body_mib is not None:
        try:
            settings = dataclasses.replace(settings, max_body_bytes=int(args.max_body_mib * 1024**2))
        except ValueError as exc:
            err.print(f"[red]invalid --max-body-mib:[/] {exc}")
            return exit_codes.INVALID_INPUT
    if args.runtime:
        backend_factory = _runtime_backend(args.runtime)
        if backend_factory is None:
            return exit_codes.INVALID_INPUT
        settings = dataclasses.replace(settings, backend_factory=backend_factory)
        err.print(f"agent containers run under the {args.runtime} runtime")
    if not _sandbox_network_settings_read():
        return exit_codes.INVALID_INPUT
    err.print(f"Keystone server on http://{args.host}:{args.port} (store {_shown(store_url)})")
    base_url = (args.public_url or f"http://{args.host}:{args.port}").rstrip("/")
    err.print(f"dashboard: {base_url}/ui/ (sign in with an API key)")
    try:
        app = create_app(settings)
    except ValueError as exc:  # escaped: "polarity-keystone[ray]" is no markup
        err.print(f"[red]invalid server settings:[/] {escape(str(exc))}")
        return exit_codes.INVALID_INPUT
    except SandboxError as exc:
        err.print(f"[red]cannot start:[/] {escape(str(exc))}")
        return exit_codes.INFRASTRUCTURE
    if args.executor == "ray":
        err.print(f"replicas run on the Ray cluster at {args.ray_address or 'a Ray of this machine'}")
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return exit_codes.PASSED


def _sandbox_network_settings_read() -> bool:
    """Whether the operator's sandbox network variables parse (after saying why not, or which ranges
    sandboxes are denied): the engine reads them on first use, and a server that would fail every
    sandbox must not start."""
    from ..sandbox import SandboxError, denied_from_environment, gateway_hosts_from_environment

    try:
        gateway_hosts_from_environment()
        denied = denied_from_environment()
    except SandboxError as exc:
        err.print(f"[red]invalid sandbox network settings:[/] {escape(str(exc))}")
        return False
    if denied:
        ranges = ", ".join(map(str, denied.denied))
        excepted = ", ".join(f"{address}:{port}" for address, port in denied.excepted)
        err.print(f"sandboxes are denied {ranges}" + (f" (except {excepted})" if excepted else ""))
    return True


def _runtime_backend(runtime: str) -> Callable[[], DockerBackend] | None:
    """A backend factory for `--runtime`, once the engine confirmed it has that runtime (else None,
    after saying why): a server that would fail every run must not start."""
    from ..sandbox import DockerBackend, SandboxError, connect, runtime_problem

    try:
        client = connect()
    except SandboxError as exc:
        err.print(f"[red]--runtime {runtime}:[/] {exc}")
        return None
    try:
        problem = runtime_problem(client, runtime)
    finally:
        client.close()
    if problem is not None:
        err.print(f"[red]invalid --runtime:[/] {problem}")
        return None
    return functools.partial(DockerBackend, runtime=runtime)


def _operator_secrets(values: list[str]) -> dict[str, str] | None:
    """`--secret NAME=SOURCE` flags as a mapping; None (after saying why) when one is malformed."""
    from ..secrets import parse_operator_secret

    allowed: dict[str, str] = {}
    for value in values:
        try:
            name, source = parse_operator_secret(value)
        except ValueError as exc:
            err.print(f"[red]invalid --secret:[/] {exc}")
            return None
        allowed[name] = source
    return allowed


def open_store_or_none(store_url: str) -> Store | None:
    from ..store import open_store

    try:
        return open_store(store_url)
    except ValueError as exc:
        err.print(f"[red]invalid --store:[/] {exc}")
        return None


def _shown(store_url: str) -> str:
    """The store URL without its password, fit for a terminal or a log."""
    parts = urlsplit(store_url)
    if parts.password is None:
        return store_url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
