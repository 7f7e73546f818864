"""`ks eval run` through a Keystone server: the one KEYSTONE_BASE_URL names, else an embedded one started
in this process (SQLite under `.keystone/`, local Docker). The same API and code path as the SDK and the
gate; the run is stored, so `GET /v1/experiments/<id>` serves it later.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console

from ..engine import RunOptions
from ..results import INVALID_INPUT_PREFIX, RunResults, name_spec_file
from ..sdk import BadRequestError, Keystone
from ..secrets import host_kind
from ..spec import LoadedSpec
from ._progress import ConsoleProgress

EMBEDDED_DIR = Path(".keystone")
WAIT_LIMIT_S = 24 * 3600.0
"""`ks eval run` waits as long as the run takes; the spec's own timeouts bound each replica."""


class ServedRunError(Exception):
    """The server could not run a spec: invalid input (exit 2) when its error says so, else an
    infrastructure error (exit 3)."""

    def __init__(self, message: str, *, invalid_input: bool) -> None:
        super().__init__(message)
        self.invalid_input = invalid_input


@contextmanager
def connect(base_url: str | None, err: Console) -> Iterator[Keystone]:
    ks = Keystone(base_url=base_url) if base_url else Keystone.local(EMBEDDED_DIR)
    err.print(f"[dim]Keystone server: {base_url or f'embedded ({ks.base_url}, store {EMBEDDED_DIR}/)'}[/]")
    try:
        yield ks
    finally:
        ks.close()


def run_spec(ks: Keystone, item: LoadedSpec, err: Console, options: RunOptions) -> RunResults:
    """Upload the spec with its local files (a bundle, whichever server it is), run it as an experiment
    and wait for the results, showing progress from the experiment's stream."""
    assert item.path is not None  # the CLI loads specs from files
    try:
        spec = ks.specs.create(item.text, source_dir=item.spec_dir)
        experiment = ks.experiments.create(
            f"ks eval run {item.spec.id}",
            spec.id,
            spec_path=item.path,
            replicas=options.replicas,
            concurrency=options.concurrency,
            seed=options.seed,
        )
    except BadRequestError as exc:  # e.g. a dataset the spec names that the server's project lacks
        raise ServedRunError(f"{item.path}: {exc.message}", invalid_input=True) from None
    err.print(f"[bold]{item.spec.id}[/] experiment {experiment.id}")
    used = host_sources_line(item)
    if used:
        err.print(f"[dim]{used}[/]")
    with ConsoleProgress(err, item.spec.id) as progress:
        results = ks.experiments.run_and_wait(experiment.id, timeout=WAIT_LIMIT_S, on_event=progress.on_event)
    if results.status != "completed":
        error = results.error or "no results"
        raise ServedRunError(
            f"experiment {experiment.id} {results.status}: {error}",
            invalid_input=error.startswith(INVALID_INPUT_PREFIX),
        )
    name_spec_file(results, item.path)
    return RunResults.model_validate(results.model_dump(include=set(RunResults.model_fields)))


def host_sources_line(item: LoadedSpec) -> str | None:
    """Which of the spec's secrets were read on this machine (by the SDK, for the request), by name and
    kind, never by value: `secrets from this machine: API_KEY (env), DB_PASS (command)`."""
    used = [(secret.name, kind) for secret in item.spec.secrets if (kind := host_kind(secret)) is not None]
    if not used:
        return None
    return "secrets from this machine: " + ", ".join(f"{name} ({kind})" for name, kind in used)


def run_all(loaded: Sequence[LoadedSpec], err: Console, options: RunOptions) -> list[RunResults]:
    base_url = os.environ.get("KEYSTONE_BASE_URL")
    with connect(base_url, err) as ks:
        return [run_spec(ks, item, err, options) for item in loaded]
