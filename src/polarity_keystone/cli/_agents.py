"""`ks agents upload|list|get|delete`: agent snapshots on the Keystone server KEYSTONE_BASE_URL names
(with KEYSTONE_API_KEY), else on the embedded one under `.keystone/`. Snapshots print as JSON on stdout;
a request the server refuses (unknown snapshot, invalid bundle) exits 2 with its message."""

from __future__ import annotations

import argparse
import os
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from .. import exit_codes
from ._output import dump_json

if TYPE_CHECKING:
    from ..sdk import AgentSnapshot, Keystone

err = Console(stderr=True, highlight=False, soft_wrap=True)


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    agents = commands.add_parser("agents", help="agent snapshots on a Keystone server").add_subparsers(
        dest="agents_command", required=True
    )
    upload = agents.add_parser(
        "upload", help="upload a directory, a file or a .tar.gz as the next version of an agent"
    )
    upload.add_argument("name", help="the agent's name, e.g. email-agent")
    upload.add_argument(
        "path", type=Path, help="a directory (tarred without .git, caches, ...), a file or a .tar.gz"
    )
    upload.add_argument(
        "--entrypoint", required=True, help='the command that runs it, e.g. "python3 main.py"'
    )
    upload.add_argument("--runtime", help="e.g. python3.12")
    upload.add_argument("--tag", help="point this tag at the snapshot (moving it from another version)")
    upload.add_argument(
        "--required-env",
        action="append",
        default=[],
        metavar="VAR",
        help="an environment variable every run must give (repeatable)",
    )
    upload.add_argument(
        "--config-file",
        action="append",
        default=[],
        metavar="PATH=TEMPLATE",
        help="write PATH (in the agent's directory) from the local file TEMPLATE before it runs; "
        "{{VAR}} in it becomes the run's VAR (repeatable)",
    )
    listing = agents.add_parser("list", help="list agents (the latest version of each)")
    listing.add_argument(
        "--versions", metavar="NAME", help="list this agent's versions instead, newest first"
    )
    get = agents.add_parser(
        "get", help="one snapshot: an agent's latest, tagged or numbered version, or by id"
    )
    get.add_argument("name", help="the agent's name, or a snapshot id (snap_...)")
    which = get.add_mutually_exclusive_group()
    which.add_argument("--tag")
    which.add_argument("--version", type=int)
    delete = agents.add_parser("delete", help="delete a snapshot (its version number is never reused)")
    delete.add_argument("snapshot_id", help="snap_..., as `ks agents list` shows it")


def _served(action: Callable[[Keystone], str | None]) -> int:
    """Run `action` against the server, printing what it returns; a refused request exits 2."""
    from ..sdk import APIStatusError
    from ._served import connect

    with connect(os.environ.get("KEYSTONE_BASE_URL"), err) as ks:
        try:
            printed = action(ks)
        except APIStatusError as exc:
            if exc.status_code is None or exc.status_code >= 500:
                raise
            err.print(f"[red]refused:[/] {exc}")
            return exit_codes.INVALID_INPUT
    if printed is not None:
        print(printed)
    return exit_codes.PASSED


def _config_files(pairs: list[str]) -> list[dict[str, str]]:
    files = []
    for pair in pairs:
        path, separator, template = pair.partition("=")
        if not separator:
            raise argparse.ArgumentTypeError(f"--config-file {pair!r} is not PATH=TEMPLATE")
        files.append({"path": path, "template": Path(template).read_text(encoding="utf-8")})
    return files


def cmd_upload(args: argparse.Namespace) -> int:
    try:
        auth = {"required_env": args.required_env, "config_files": _config_files(args.config_file)}
    except (argparse.ArgumentTypeError, OSError) as exc:
        err.print(f"[red]invalid input:[/] {exc}")
        return exit_codes.INVALID_INPUT
    if not args.path.exists():
        err.print(f"[red]invalid input:[/] no file or directory {str(args.path)!r}")
        return exit_codes.INVALID_INPUT
    entrypoint = shlex.split(args.entrypoint)

    def upload(ks: Keystone) -> str:
        snapshot = ks.agents.upload(
            args.name, args.path, entrypoint, runtime=args.runtime, auth=auth, tag=args.tag
        )
        err.print(f"{snapshot.name} version {snapshot.version}: {snapshot.id}")
        return dump_json(snapshot)

    return _served(upload)


def cmd_list(args: argparse.Namespace) -> int:
    def listing(ks: Keystone) -> str:
        snapshots: list[AgentSnapshot] = []
        cursor: str | None = None
        while True:
            if args.versions:
                page, cursor = ks.agents.list_versions(args.versions, limit=100, cursor=cursor)
            else:
                page, cursor = ks.agents.list(limit=100, cursor=cursor)
            snapshots.extend(page)
            if cursor is None:
                break
        for snapshot in snapshots:
            tags = ",".join(snapshot.tags) or "-"
            err.print(f"{snapshot.name}\tv{snapshot.version}\t{tags}\t{snapshot.id}", markup=False)
        return dump_json(snapshots)

    return _served(listing)


def cmd_get(args: argparse.Namespace) -> int:
    def get(ks: Keystone) -> str:
        if args.name.startswith("snap_") and args.tag is None and args.version is None:
            return dump_json(ks.agents.get_by_id(args.name))
        return dump_json(ks.agents.get(args.name, tag=args.tag, version=args.version))

    return _served(get)


def cmd_delete(args: argparse.Namespace) -> int:
    def delete(ks: Keystone) -> None:
        ks.agents.delete(args.snapshot_id)
        err.print(f"deleted {args.snapshot_id}")

    return _served(delete)
