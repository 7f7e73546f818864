"""`ks projects` and `ks keys`: the operator's commands, run on the server's machine against its store
(the operator is trusted; remote admins use an admin key with `/v1/projects` and `/v1/keys`). A key is
printed once, when it is created; listings show its first characters only."""

from __future__ import annotations

import argparse
import contextlib
import secrets
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rich.console import Console

from .. import exit_codes
from ._server_commands import default_store_url, open_store_or_none, store_option

if TYPE_CHECKING:
    from ..store import ProjectRecord, Store

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    projects = commands.add_parser("projects", help="projects of a Keystone server").add_subparsers(
        dest="projects_command", required=True
    )
    create_project = projects.add_parser("create", help="create a project and print its id")
    create_project.add_argument("name", help="lowercase letters, digits, '.', '_' or '-', e.g. team-refunds")
    store_option(create_project)
    store_option(projects.add_parser("list", help="list projects"))

    keys = commands.add_parser("keys", help="API keys of a Keystone server").add_subparsers(
        dest="keys_command", required=True
    )
    create = keys.add_parser("create", help="create an API key and print it (shown once)")
    create.add_argument("name", help="who or what the key is for, e.g. ci-github")
    create.add_argument(
        "--project",
        metavar="PROJECT",
        help="the id or name of the project whose resources the key sees (default: the default project)",
    )
    create.add_argument(
        "--admin", action="store_true", help="the key may also create projects and keys (of any project)"
    )
    store_option(create)
    listing = keys.add_parser("list", help="list API keys (never the keys themselves)")
    listing.add_argument("--project", metavar="PROJECT", help="only this project's (id or name)")
    store_option(listing)
    revoke = keys.add_parser("revoke", help="revoke an API key: requests with it are refused from then on")
    revoke.add_argument("key_id", help="the key's id (key_...), as `ks keys list` shows it")
    store_option(revoke)


@contextlib.contextmanager
def _operator_store(args: argparse.Namespace) -> Iterator[Store | None]:
    """The server's store (None, after saying why, for an invalid URL), closed afterwards."""
    store = open_store_or_none(args.store or default_store_url())
    try:
        yield store
    finally:
        if store is not None:
            store.close()


def _project(store: Store, id_or_name: str) -> ProjectRecord | None:
    return next((p for p in store.list_projects() if id_or_name in (p.id, p.name)), None)


def _unknown_project(store: Store, id_or_name: str) -> int:
    known = ", ".join(p.name for p in store.list_projects())
    err.print(f"[red]no project {id_or_name!r}[/] (projects: {known}); create it with `ks projects create`")
    return exit_codes.INVALID_INPUT


def cmd_projects_create(args: argparse.Namespace) -> int:
    from ..server import project_name_problem
    from ..store import Conflict, ProjectRecord

    problem = project_name_problem(args.name)
    if problem:
        err.print(f"[red]invalid project name:[/] {problem}")
        return exit_codes.INVALID_INPUT
    with _operator_store(args) as store:
        if store is None:
            return exit_codes.INVALID_INPUT
        record = ProjectRecord(f"proj_{secrets.token_hex(8)}", args.name, datetime.now(UTC))
        try:
            store.add_project(record)
        except Conflict:
            err.print(f"[red]a project named {args.name!r} exists[/]")
            return exit_codes.INVALID_INPUT
    err.print(f"created project {record.name}; its id:")
    sys.stdout.write(record.id + "\n")
    return exit_codes.PASSED


def cmd_projects_list(args: argparse.Namespace) -> int:
    with _operator_store(args) as store:
        if store is None:
            return exit_codes.INVALID_INPUT
        for project in store.list_projects():
            out.print(f"{project.id}\t{project.name}\t{project.created_at:%Y-%m-%d}")
    return exit_codes.PASSED


def cmd_keys_create(args: argparse.Namespace) -> int:
    from ..server import create_api_key
    from ..store import DEFAULT_PROJECT

    id_or_name = args.project or DEFAULT_PROJECT
    with _operator_store(args) as store:
        if store is None:
            return exit_codes.INVALID_INPUT
        project = _project(store, id_or_name)
        if project is None:
            return _unknown_project(store, id_or_name)
        key, record = create_api_key(store, args.name, project.id, admin=args.admin)
    role = "admin key" if record.admin else "API key"
    err.print(f"created {role} {record.id} ({record.name}) of project {project.name}; shown only this once:")
    sys.stdout.write(key + "\n")
    return exit_codes.PASSED


def cmd_keys_list(args: argparse.Namespace) -> int:
    with _operator_store(args) as store:
        if store is None:
            return exit_codes.INVALID_INPUT
        project_id = None
        if args.project is not None:
            project = _project(store, args.project)
            if project is None:
                return _unknown_project(store, args.project)
            project_id = project.id
        for key in store.list_api_keys(project_id):
            if key.kind == "live":
                flags = ",".join(f for f, on in (("admin", key.admin), ("revoked", key.revoked)) if on)
                out.print(f"{key.id}\t{key.prefix}…\t{key.project_id}\t{key.name}\t{flags or '-'}")
    return exit_codes.PASSED


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from ..server import revoke_live_key
    from ..store import NotFound

    with _operator_store(args) as store:
        if store is None:
            return exit_codes.INVALID_INPUT
        try:
            revoke_live_key(store, args.key_id)
        except NotFound:
            err.print(f"[red]no API key {args.key_id!r}[/]; `ks keys list` shows them")
            return exit_codes.INVALID_INPUT
    err.print(f"revoked {args.key_id}")
    return exit_codes.PASSED
