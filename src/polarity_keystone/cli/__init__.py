"""The `ks` command line: `eval run`, `spec validate`, `replay`, `cleanup`, `images build`, `gate`.

A command imports what it works with inside itself: building the parser (all `ks --help` and a mistyped
flag need) loads argparse, rich and the flags' definitions, never the engine, the server, Docker or httpx.
tests/cli/test_cli_imports.py holds every command module to that.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from .. import exit_codes
from .._version import __version__
from ..gate import add_arguments as add_gate_arguments
from . import _admin_commands, _agents, _blob_commands, _server_commands, _ui_command
from ._signals import Interrupted, interrupted_by_signals

if TYPE_CHECKING:
    from ..engine import RunOptions
    from ..results import RunResults
    from ..sandbox import DockerBackend
    from ..spec import LoadedSpec

err = Console(stderr=True, highlight=False, soft_wrap=True)
"""Soft wrap: spec errors and replay commands stay on one line, copyable, in any terminal or CI log."""


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _param(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ks", description="Keystone: eval runtime for AI agents.")
    parser.add_argument("--version", action="version", version=f"ks {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    eval_ = commands.add_parser("eval", help="run specs").add_subparsers(dest="eval_command", required=True)
    run = eval_.add_parser(
        "run",
        help="run spec files in fresh Docker sandboxes and score them; run eval files (FILE.py: their "
        "Eval(...) calls), recorded as experiments",
    )
    run.add_argument("specs", nargs="+", type=Path, metavar="SPEC")
    run.add_argument(
        "--replicas", type=_positive, help="replicas per scenario (default: parallelism.replicas)"
    )
    run.add_argument(
        "--concurrency", type=_positive, help="sandboxes at once (default: 4, capped by the spec)"
    )
    run.add_argument("--seed", type=int, help="experiment seed; replica seeds derive from it")
    run.add_argument("--json", action="store_true", help="print RunResults JSON on stdout")
    run.add_argument("--output", "-o", type=Path, help="write RunResults JSON to this file")
    run.add_argument("--keep", action="store_true", help="leave sandboxes running after the run")

    spec = commands.add_parser("spec", help="work with spec files").add_subparsers(
        dest="spec_command", required=True
    )
    validate = spec.add_parser("validate", help="check spec files; errors name file, line and field")
    validate.add_argument("specs", nargs="+", type=Path, metavar="SPEC")

    rep = commands.add_parser(
        "replay", help="re-create a failing replica's sandbox from its seed and re-run it"
    )
    rep.add_argument("spec", type=Path, metavar="SPEC")
    rep.add_argument("--seed", type=int, required=True)
    rep.add_argument("--replica", type=int, default=0)
    rep.add_argument("--param", type=_param, action="append", default=[], metavar="KEY=VALUE")
    rep.add_argument("--fingerprint", help="the failing run's fingerprint; a mismatch refuses to replay")
    rep.add_argument("--force", action="store_true", help="replay even if the spec or images changed")
    rep.add_argument(
        "--recording",
        type=Path,
        metavar="RESULTS",
        help="the failing run's results JSON: its model calls are answered from what it recorded, offline",
    )
    rep.add_argument("--keep", action="store_true", help="leave the sandbox up and print how to get a shell")
    rep.add_argument("--json", action="store_true", help="print the replica result as JSON on stdout")

    cleanup = commands.add_parser("cleanup", help="remove leftover sandboxes (containers and networks)")
    cleanup.add_argument("--all", action="store_true", help="remove every Keystone sandbox, not only orphans")

    images = commands.add_parser("images", help="Keystone's local images").add_subparsers(
        dest="images_command", required=True
    )
    images.add_parser(
        "build", help="build Keystone's own images (base, services, gateway, reaper), cached by content hash"
    )
    _server_commands.add_parsers(commands)
    _ui_command.add_parser(commands)
    _admin_commands.add_parsers(commands)
    _agents.add_parsers(commands)
    _blob_commands.add_parsers(commands)
    add_gate_arguments(
        commands.add_parser(
            "gate",
            help="CI gate: run specs, compare with a baseline, report, exit 0/1/2/3/4",
            description="Every flag also reads its KEYSTONE_* environment variable (flag wins). Exit "
            "codes: 0 passed, 1 regressed or threshold failed, 2 invalid input, 3 infrastructure error, "
            "4 inconclusive.",
        )
    )
    return parser


def cmd_gate(args: argparse.Namespace) -> int:
    from ..gate import GateInputError, report_invalid_inputs, resolve, run_gate

    try:
        config = resolve(args, os.environ)
    except GateInputError as exc:
        return report_invalid_inputs(args, os.environ, exc, err, sys.stdout)
    return run_gate(config, os.environ, err, sys.stdout)


def _backend() -> DockerBackend:
    from ..sandbox import DockerBackend

    backend = DockerBackend()
    backend.reap()
    return backend


def cmd_validate(args: argparse.Namespace) -> int:
    from ..spec import load_specs

    loaded = load_specs(args.specs)
    for item in loaded:
        err.print(f"[green]ok[/] {item.path}")
    return exit_codes.PASSED


def cmd_eval_run(args: argparse.Namespace) -> int:
    from ..engine import RunOptions
    from ..spec import load_specs
    from . import _eval_files, _served
    from ._output import dump_json, write_json
    from ._report import print_run

    eval_files = [path for path in args.specs if path.suffix == ".py"]
    loaded = load_specs([path for path in args.specs if path.suffix != ".py"])
    options = RunOptions(replicas=args.replicas, concurrency=args.concurrency, seed=args.seed, keep=args.keep)
    runs: list[RunResults] = []
    if loaded:
        runs = _run_direct(loaded, options) if args.keep else _served.run_all(loaded, err, options)
    for results in runs:
        print_run(err, results)
    code = exit_codes.for_statuses(s.status for run in runs for s in run.scenarios)
    if eval_files:  # after the specs, on the server they run on; each Eval's RunResults joins the output
        eval_code, recorded = _eval_files.run_files(eval_files, err)
        runs, code = [*runs, *recorded], max(code, eval_code)
    document = runs[0] if len(runs) == 1 else runs
    if args.output:
        write_json(args.output, document)
        err.print(f"results written to {args.output}")
    if args.json:
        sys.stdout.write(dump_json(document) + "\n")
    return code


def _run_direct(loaded: Sequence[LoadedSpec], options: RunOptions) -> list[RunResults]:
    """`--keep` runs on the engine in this process: kept sandboxes are a local debugging aid, outside the
    server's lifecycle (it destroys every replica's sandbox)."""
    from ..analysis import local_pricing
    from ..engine import prepare, run_experiment
    from ..sandbox import ImageResolver
    from ._progress import ConsoleProgress

    backend = _backend()
    resolver = ImageResolver(backend.client)
    runs = []
    for item in loaded:
        err.print(f"[bold]{item.spec.id}[/] preparing images…")
        prepared = dataclasses.replace(prepare(item, resolver), pricing=local_pricing())
        with ConsoleProgress(err, item.spec.id) as progress:
            runs.append(run_experiment(prepared, backend, options, progress))
    return runs


def cmd_replay(args: argparse.Namespace) -> int:
    from ..analysis import local_pricing
    from ..engine import FingerprintMismatch, prepare, replay
    from ..sandbox import ImageResolver
    from ..spec import collect_bundle, format_duration, load_specs
    from . import _replay_changes
    from ._output import dump_json
    from ._recordings import RecordingError, load_recordings
    from ._report import print_replica_failure

    loaded = load_specs([args.spec])
    try:
        recordings = (
            load_recordings(args.recording, seed=args.seed, replica=args.replica) if args.recording else None
        )
    except RecordingError as exc:
        err.print(f"[red]cannot replay the model calls:[/] {exc}", markup=True)
        return exit_codes.INVALID_INPUT
    backend = _backend()
    files = collect_bundle(loaded[0])  # a served run pinned its files' bundle digest: so does the replay
    bundle = files.digest if files.manifest else None
    prepared = prepare(loaded[0], ImageResolver(backend.client), bundle=bundle)
    prepared = dataclasses.replace(prepared, pricing=local_pricing())
    try:
        result = replay(
            prepared,
            backend,
            seed=args.seed,
            replica=args.replica,
            parameters=dict(args.param),
            fingerprint=args.fingerprint,
            force=args.force,
            keep=args.keep,
            recordings=recordings,
        )
    except FingerprintMismatch as exc:
        err.print(f"[red]refusing to replay:[/] {exc}")
        if bundle is not None:
            then = args.fingerprint if args.fingerprint != prepared.fingerprint_id else None
            err.print(_replay_changes.files_note(prepared.spec.id, then, files), markup=False)
        return exit_codes.INVALID_INPUT
    if result.status == "pass":
        err.print(f"[green]✓ replica passed[/] (seed {result.seed}, sandbox {result.sandbox_id})")
    else:
        print_replica_failure(err, prepared.spec.id, result)
    if args.keep and result.sandbox_id:
        err.print(
            f"\nsandbox {result.sandbox_id} is still running. Get a shell in it:\n"
            f"  docker exec -it -w /workspace keystone-{result.sandbox_id}-agent bash\n"
            f"It is removed when resources.timeout ({format_duration(prepared.spec.resources.timeout)}) "
            "runs out, or now with: ks cleanup --all"
        )
        if prepared.spec.network.ingress.allow:
            err.print(f"Its ingress ports on this machine: docker port keystone-{result.sandbox_id}-gateway")
    if args.json:
        sys.stdout.write(dump_json(result) + "\n")
    return exit_codes.for_statuses([result.status])


def cmd_cleanup(args: argparse.Namespace) -> int:
    from ..sandbox import DockerBackend

    removed = DockerBackend().reap(everything=args.all)
    err.print(f"removed {len(removed)} sandbox(es)" + (": " + ", ".join(removed) if removed else ""))
    return exit_codes.PASSED


def cmd_images_build(args: argparse.Namespace) -> int:
    from ..sandbox import DockerBackend, ImageResolver

    resolver = ImageResolver(DockerBackend().client)
    for name in ("base", "postgres", "redis", "http_mock", "llm_proxy", "s3", "gateway", "execlog", "reaper"):
        image = resolver.local(name)
        err.print(f"{name}: {image.ref}")
    return exit_codes.PASSED


_COMMANDS = {
    ("eval", "run"): cmd_eval_run,
    ("spec", "validate"): cmd_validate,
    ("replay", None): cmd_replay,
    ("cleanup", None): cmd_cleanup,
    ("images", "build"): cmd_images_build,
    ("serve", None): _server_commands.cmd_serve,
    ("ui", None): _ui_command.cmd_ui,
    ("projects", "create"): _admin_commands.cmd_projects_create,
    ("projects", "list"): _admin_commands.cmd_projects_list,
    ("keys", "create"): _admin_commands.cmd_keys_create,
    ("keys", "list"): _admin_commands.cmd_keys_list,
    ("keys", "revoke"): _admin_commands.cmd_keys_revoke,
    ("gate", None): cmd_gate,
    ("agents", "upload"): _agents.cmd_upload,
    ("agents", "list"): _agents.cmd_list,
    ("agents", "get"): _agents.cmd_get,
    ("agents", "delete"): _agents.cmd_delete,
    ("blobs", "gc"): _blob_commands.cmd_gc,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad flags already; keep --help / --version at 0
        return int(exc.code or 0)
    sub = getattr(args, f"{args.command}_command", None)
    handler = _COMMANDS[(args.command, sub)]
    try:
        with interrupted_by_signals():
            return handler(args)
    except Interrupted as exc:
        err.print(f"interrupted ({exc}); this process's sandboxes are removed as it exits")
        return exc.exit_code
    except Exception as exc:
        code = _reported(exc)
        if code is None:
            raise
        return code


def _reported(exc: Exception) -> int | None:
    """The exit code of a failure a command let through, once said on stderr; None for anything else (a
    bug: its traceback shows). Each family is imported just before its check, cheapest first: a command
    that raised one loaded its package already, and `ks spec validate` with a bad spec must not load
    Docker only to learn its error was no sandbox's."""
    from ..secrets import SecretError
    from ..spec import SpecError

    if isinstance(exc, SecretError):
        err.print(f"[red]invalid secrets:[/] {exc}")
        return exit_codes.INVALID_INPUT
    if isinstance(exc, SpecError):  # every issue of every file (or found while preparing: a path swapped)
        err.print(str(exc), markup=False, highlight=False)
        return exit_codes.INVALID_INPUT
    from ..analysis import PRICING_FILE_ENV, PricingError

    if isinstance(exc, PricingError):
        err.print(f"[red]invalid ${PRICING_FILE_ENV}:[/] {exc}")
        return exit_codes.INVALID_INPUT
    from ..sandbox import FixtureError, ImageError, SandboxError
    from ..sdk import KeystoneError
    from ._served import ServedRunError

    if isinstance(exc, ServedRunError):
        err.print(f"[red]{'invalid input' if exc.invalid_input else 'infrastructure error'}:[/] {exc}")
        return exit_codes.INVALID_INPUT if exc.invalid_input else exit_codes.INFRASTRUCTURE
    if isinstance(exc, SandboxError | ImageError | KeystoneError):
        err.print(f"[red]infrastructure error:[/] {exc}")
        return exit_codes.INFRASTRUCTURE
    if isinstance(exc, FixtureError):
        err.print(f"[red]fixture could not be prepared:[/] {exc}\n{exc.output}")
        return exit_codes.INFRASTRUCTURE
    return None


def run() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
