"""`ks blobs gc`: the operator's garbage collection of a server's blobs, run on the server's machine against
its store and blob store (the server also collects on its own, every `blob_gc_interval_s`)."""

from __future__ import annotations

import argparse

from rich.console import Console

from .. import exit_codes
from ._server_commands import blob_store_options, default_store_url, open_store_or_none, store_option

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    blobs = commands.add_parser("blobs", help="blobs of a Keystone server").add_subparsers(
        dest="blobs_command", required=True
    )
    gc = blobs.add_parser(
        "gc",
        help="release the blobs projects no longer use from their quotas, delete those no project owns, "
        "and print what was released and deleted",
    )
    store_option(gc)
    blob_store_options(gc)
    gc.add_argument("--dry-run", action="store_true", help="only print what would be released and deleted")
    gc.add_argument(
        "--retention-days",
        type=float,
        default=30.0,
        metavar="DAYS",
        help="keep the bundles of experiments created this recently (default: 30)",
    )
    gc.add_argument(
        "--grace-minutes",
        type=float,
        default=60.0,
        metavar="MINUTES",
        help="never release a blob an upload claimed or named this recently: it may not be recorded yet "
        "(default: 60)",
    )


def cmd_gc(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from ..server import BlobCollector, GcPolicy, ServerSettings, open_blob_store

    store_url = args.store or default_store_url()
    try:
        settings = ServerSettings(
            store_url,
            data_dir=args.data_dir,
            blob_store_url=args.blob_store,
            blob_store_endpoint=args.blob_store_endpoint,
        )
    except ValueError as exc:
        err.print(f"[red]invalid blob store:[/] {exc}")
        return exit_codes.INVALID_INPUT
    store = open_store_or_none(store_url)
    if store is None:
        return exit_codes.INVALID_INPUT
    try:
        backend = open_blob_store(settings.blob_store_url, settings.blob_store_endpoint, settings.data_path)
        policy = GcPolicy(timedelta(days=args.retention_days), timedelta(minutes=args.grace_minutes))
        written_out = [settings.data_path / "bundles", settings.data_path / "agents"]
        collector = BlobCollector(store, backend, written_out, policy)
        report = collector.collect(dry_run=args.dry_run)
    finally:
        store.close()
    if report.skipped:
        err.print("[red]another garbage collection is at work on this store[/]; try again later")
        return exit_codes.INFRASTRUCTURE
    would = "would " if report.dry_run else ""
    for release in report.released:
        out.print(f"{release.project_id}: {would}release {release.blobs} blob(s), {release.bytes} bytes")
    out.print(
        f"{would}delete {report.deleted_blobs} blob(s), {report.deleted_bytes} bytes, from the blob store"
    )
    out.print(f"{would}remove {report.removed_dirs} bundle or unpacked snapshot directory(ies)")
    err.print(f"took {report.seconds:.2f}s" + (" (dry run: nothing changed)" if report.dry_run else ""))
    return exit_codes.PASSED
