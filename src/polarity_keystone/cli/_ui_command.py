"""`ks ui`: the dashboard of the local store (the one `ks eval run` and `Keystone.local()` write) in the
browser. It serves the embedded server's app on 127.0.0.1 only, where it needs no key, until Ctrl-C."""

from __future__ import annotations

import argparse
import dataclasses
import threading

from rich.console import Console

from .. import exit_codes
from ._server_commands import default_store_url, open_store_or_none, store_option
from ._signals import Interrupted

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ui = commands.add_parser(
        "ui",
        help="open the dashboard of the local store in the browser (on 127.0.0.1, no key needed)",
        description="Serve the dashboard of the local store on 127.0.0.1 (no sign-in: only this machine "
        "reaches it) and open it in the browser; Ctrl-C stops it.",
    )
    ui.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    ui.add_argument("--no-open", action="store_true", help="print the dashboard's URL, do not open a browser")
    store_option(ui)


def cmd_ui(args: argparse.Namespace) -> int:
    import webbrowser

    from ..server import ServerSettings, serve_in_thread

    store_url = args.store or default_store_url()
    store = open_store_or_none(store_url)
    if store is None:
        return exit_codes.INVALID_INPUT
    store.close()
    try:
        # A `ks eval run` may be running experiments on this store: leave them to it.
        settings = dataclasses.replace(
            ServerSettings.for_local_user(store_url, auth_required=False), end_unfinished=False
        )
        running = serve_in_thread(settings, port=args.port)
    except OSError as exc:
        err.print(f"[red]cannot listen on 127.0.0.1:{args.port}:[/] {exc.strerror or exc}")
        return exit_codes.INVALID_INPUT
    url = f"{running.url}/ui/"
    out.print(f"Keystone dashboard: {url}")
    err.print("[dim]only this machine reaches it; Ctrl-C stops it[/]")
    try:
        if not args.no_open:
            webbrowser.open(url)
        threading.Event().wait()  # until a signal raises Interrupted
    except Interrupted:
        pass
    finally:
        running.stop(timeout=2.0)  # within the signal's clean-up grace; open streams are cut
    return exit_codes.PASSED
