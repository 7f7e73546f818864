"""The gate's inputs: ONE table, from which `ks gate`'s flags are built and against which action.yml and
the GitLab component are checked (tests/gate/test_gate_inputs.py), so the three never drift apart.

Every input has a hyphenated name (as in action.yml and the component), a flag `--<name>` and an
environment variable `KEYSTONE_<NAME>`. A flag wins over the variable, the variable over the default.
An empty variable counts as unset: CI systems pass inputs nobody set as empty strings.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

Kind = Literal["text", "list", "int", "float", "bool", "choice", "duration", "replicas"]

COMMENT_MODES = ("always", "on-failure", "on-change")
FAIL_ON = ("forbidden", "gate-invariant")
"""Absolute rules that block, besides a regression against the baseline and errors (which always block):
a forbidden rule violated in any replica, a gate invariant that failed in every replica of a scenario
(and in none of the baseline's)."""


@dataclass(frozen=True)
class GateInput:
    name: str
    kind: Kind
    default: str
    help: str
    choices: tuple[str, ...] = ()
    secret: bool = False
    """Read from the environment of the CI job, never written into a pipeline file: the GitLab component
    leaves it out of `spec: inputs` (set it as a masked CI/CD variable instead)."""
    env_name: str = ""

    @property
    def env(self) -> str:
        return self.env_name or "KEYSTONE_" + self.name.upper().replace("-", "_")

    @property
    def flag(self) -> str:
        return "--" + self.name

    @property
    def field(self) -> str:
        return self.name.replace("-", "_")


INPUTS: tuple[GateInput, ...] = (
    GateInput(
        "specs",
        "list",
        "specs/*.yaml",
        "spec files, eval files (.py) or globs, separated by spaces, commas or newlines",
    ),
    GateInput(
        "server-url",
        "text",
        "",
        "Keystone server URL; empty: an embedded server in the job (SQLite, the job's Docker engine)",
        env_name="KEYSTONE_BASE_URL",
    ),
    GateInput(
        "api-key", "text", "", "API key of the Keystone server (required with server-url)", secret=True
    ),
    GateInput(
        "dashboard-url",
        "text",
        "",
        "dashboard the comment and summary link each experiment to (default: server-url unless it is a "
        "loopback address; none with the embedded server)",
    ),
    GateInput(
        "replicas", "replicas", "5", "replicas per scenario, or 'spec' for each spec's parallelism.replicas"
    ),
    GateInput(
        "max-replicas",
        "int",
        "80",
        "adaptive replicas: scenarios still undecided get more replicas (doubling) up to this many; the "
        "baseline branch's own runs use this many (set it to replicas for a fixed count)",
    ),
    GateInput("concurrency", "int", "", "sandboxes at once per experiment (default: the server's)"),
    GateInput("seed", "int", "", "experiment seed, for a reproducible run (default: a fresh one)"),
    GateInput("timeout", "duration", "30m", "how long to wait for the experiments to finish"),
    GateInput(
        "follow",
        "choice",
        "stream",
        "follow progress with SSE (resumed on disconnect) or by polling",
        choices=("stream", "poll"),
    ),
    GateInput(
        "baseline",
        "text",
        "none",
        "what to compare with: none, experiment:<id>, branch:<name> (latest completed run of the spec on "
        "that branch) or file:<path> (results JSON of an earlier run)",
    ),
    GateInput(
        "allow-fingerprint-mismatch",
        "bool",
        "false",
        "with strict-baselines: compare anyway (without it, a changed baseline is always compared)",
    ),
    GateInput(
        "strict-baselines",
        "bool",
        "false",
        "exit 2 when the baseline ran a changed spec or other service images, instead of comparing "
        "scenario by scenario",
    ),
    GateInput(
        "changed-only",
        "bool",
        "false",
        "skip each spec whose spec file, agent dir and fixtures did not change since its baseline's commit "
        "(git diff; needs the full history: fetch-depth: 0); a skipped spec is reported unchanged",
    ),
    GateInput(
        "alpha", "float", "0.05", "significance level of a regression, after the multiple-testing correction"
    ),
    GateInput("min-effect", "float", "0.1", "smallest pass-rate drop (0-1) that counts as a regression"),
    GateInput(
        "correction",
        "choice",
        "holm",
        "multiple-testing correction across scenarios: holm (family-wise) "
        "or bh (Benjamini-Hochberg, false discovery rate)",
        choices=("holm", "bh"),
    ),
    GateInput("min-pass-rate", "float", "0", "fail when a spec's pass rate is below this (0-1; 0: off)"),
    GateInput("max-cost-per-run-usd", "float", "", "fail when a spec's mean cost per run exceeds this (USD)"),
    GateInput("max-p95-wall", "duration", "", "fail when a spec's p95 wall time exceeds this (e.g. 90s)"),
    GateInput(
        "fail-on",
        "list",
        ",".join(FAIL_ON),
        "absolute rules that block besides regressions and errors: forbidden, gate-invariant, or none",
        choices=(*FAIL_ON, "none"),
    ),
    GateInput(
        "inconclusive",
        "choice",
        "blocking",
        "blocking: exit 4 when replicas were too few to tell; non-blocking: exit 0 with a warning",
        choices=("blocking", "non-blocking"),
    ),
    GateInput(
        "comment",
        "choice",
        "update",
        "the PR/MR comment: update one sticky comment, recreate it, or off",
        choices=("update", "recreate", "off"),
    ),
    GateInput(
        "comment-mode",
        "choice",
        "always",
        "when to write the comment: always; on-failure (when not passed, and to update a comment "
        "already there); on-change (when the verdict differs from the comment's)",
        choices=COMMENT_MODES,
    ),
    GateInput(
        "comment-key",
        "text",
        "",
        "key of the job's sticky comment (default: workflow, job and matrix values on GitHub; the job "
        "name on GitLab)",
    ),
    GateInput(
        "comment-token",
        "text",
        "",
        "token for the PR/MR comment: a GitHub token, or a GitLab project access token (api scope)",
        secret=True,
    ),
    GateInput("pr-number", "int", "", "PR/MR number to comment on (default: from the CI environment)"),
    GateInput("run-key", "text", "", "unique id of this CI job attempt (default: from the CI environment)"),
    GateInput(
        "matrix",
        "text",
        "",
        "the job's matrix values as JSON (GitHub: the action passes toJSON(matrix)); they keep matrix legs' "
        "comments and experiments apart",
    ),
    GateInput("junit", "text", "keystone-junit.xml", "where to write the JUnit XML report"),
    GateInput("summary", "text", "keystone-summary.md", "where to write the Markdown summary"),
    GateInput("results-json", "text", "keystone-results.json", "where to write the gate's results JSON"),
    GateInput("dotenv", "text", "keystone.env", "where to write the outputs as a GitLab dotenv report"),
    GateInput(
        "from-results",
        "text",
        "",
        "report the verdict of an earlier gate's results JSON instead of running (fork-safe comments)",
    ),
)

BY_NAME = {item.name: item for item in INPUTS}
MAX_REPLICAS = 1000
"""The most replicas per scenario a Keystone server runs in one experiment."""


class GateInputError(ValueError):
    """Raised by `resolve` for an input that cannot be used; `ks gate` prints it and exits 2."""

    def __init__(self, message: str, input_name: str = "") -> None:
        super().__init__(message)
        self.input_name = input_name
        """The input at fault, when one is."""


@dataclass(frozen=True)
class GateConfig:
    """The inputs, parsed: one field per entry of INPUTS (the field name is the input name with
    underscores). None means unset where the input has no default."""

    specs: tuple[str, ...]
    server_url: str | None
    api_key: str | None
    dashboard_url: str | None
    replicas: int | None
    """None: each spec's own `parallelism.replicas`."""
    max_replicas: int
    concurrency: int | None
    seed: int | None
    timeout: float
    follow: str
    baseline: str
    allow_fingerprint_mismatch: bool
    strict_baselines: bool
    changed_only: bool
    alpha: float
    min_effect: float
    correction: str
    min_pass_rate: float
    max_cost_per_run_usd: float | None
    max_p95_wall: float | None
    fail_on: tuple[str, ...]
    inconclusive: str
    comment: str
    comment_mode: str
    comment_key: str | None
    comment_token: str | None
    pr_number: int | None
    run_key: str | None
    matrix: str | None
    junit: Path
    summary: Path
    results_json: Path
    dotenv: Path
    from_results: Path | None

    def dashboard(self) -> str | None:
        """Where the reports link each experiment (`<this>/ui/experiments/<id>`): `dashboard-url`, else the
        server's URL unless only this machine reaches it (loopback); `from-results` links only to a
        `dashboard-url`. None with the embedded server: it is gone once the job ends."""
        if self.dashboard_url and (self.server_url or self.from_results):
            return self.dashboard_url.rstrip("/")
        if not self.server_url:
            return None
        host = urlsplit(self.server_url).hostname or ""
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:  # a name
            loopback = False
        return None if loopback else self.server_url.rstrip("/")

    def secrets(self) -> list[str]:
        """Values of the secret inputs that are set: what reports must never contain."""
        return [value for item in INPUTS if item.secret and (value := getattr(self, item.field))]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per input; values stay text here and are parsed by `resolve`, like the environment's."""
    for item in INPUTS:
        default = f" (default: {item.default})" if item.default else ""
        help_text = f"{item.help}{default} [env {item.env}]"
        if item.kind == "bool":
            parser.add_argument(item.flag, nargs="?", const="true", metavar="true|false", help=help_text)
        elif item.kind == "list":
            parser.add_argument(
                item.flag, nargs="+", action="extend", metavar=item.field.upper(), help=help_text
            )
        else:
            metavar = "|".join(item.choices) if item.kind == "choice" else item.field.upper()
            parser.add_argument(item.flag, metavar=metavar, help=help_text)


def _split(text: str) -> tuple[str, ...]:
    return tuple(part for chunk in text.replace(",", " ").split() if (part := chunk.strip()))


def _number(text: str, convert: Callable[[str], Any], what: str) -> Any:
    try:
        value = convert(text)
    except ValueError:
        raise ValueError(f"expected {what}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"expected {what}")
    return value


def _parse(item: GateInput, text: str) -> Any:
    """The typed value of one input from its text; raises ValueError with what was expected."""
    if item.kind == "text":
        return text
    if item.kind == "list":
        values = _split(text)
        unknown = [value for value in values if item.choices and value not in item.choices]
        if unknown:
            raise ValueError(f"unknown value(s) {', '.join(unknown)}; choose from {', '.join(item.choices)}")
        return values
    if item.kind == "choice":
        if text not in item.choices:
            raise ValueError(f"choose one of {', '.join(item.choices)}")
        return text
    if item.kind == "bool":
        lowered = text.lower()
        if lowered not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError("expected true or false")
        return lowered in ("true", "1", "yes")
    if item.kind == "duration":
        from ..spec import parse_duration  # late: `ks`'s parser is built from this module, without specs

        return parse_duration(text)
    if item.kind == "replicas":
        if text == "spec":
            return None
        value = _number(text, int, "a whole number of replicas (at least 1) or 'spec'")
    elif item.kind == "int":
        value = _number(text, int, "a whole number (at least 1)")
    else:
        return _number(text, float, "a number")
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def _raw_value(item: GateInput, args: argparse.Namespace | None, environ: Mapping[str, str]) -> str:
    value = getattr(args, item.field, None) if args is not None else None
    from_flag = (" ".join(value) if isinstance(value, list) else str(value or "")).strip()
    return from_flag or environ.get(item.env, "").strip() or item.default


def resolve(
    args: argparse.Namespace | None, environ: Mapping[str, str], ignore: frozenset[str] = frozenset()
) -> GateConfig:
    """Flags, else environment, else defaults, parsed and checked; raises GateInputError naming the
    input, its flag and its variable. Inputs named in `ignore` take their defaults."""
    values: dict[str, Any] = {}
    for item in INPUTS:
        text = item.default if item.name in ignore else _raw_value(item, args, environ)
        if not text:
            values[item.field] = None
            continue
        try:
            values[item.field] = _parse(item, text)
        except ValueError as exc:
            raise GateInputError(
                f"invalid {item.name} ({item.flag} / {item.env}): {exc}; got {text!r}", item.name
            ) from None
    for name in ("junit", "summary", "results_json", "dotenv", "from_results"):
        values[name] = Path(values[name]) if values[name] else None
    config = GateConfig(**values)
    _check(config)
    return config


def _fail(name: str, message: str) -> GateInputError:
    item = BY_NAME[name]
    return GateInputError(f"invalid {name} ({item.flag} / {item.env}): {message}", name)


def resolve_to_report(args: argparse.Namespace | None, environ: Mapping[str, str]) -> GateConfig | None:
    """The inputs with each one that cannot be used at its default (an unusable `comment` at off): enough
    to report that the inputs cannot be used, where the reports and the comment go, never to run. None
    when even that fails."""
    ignored: set[str] = set()
    while True:
        try:
            config = resolve(args, environ, frozenset(ignored))
        except GateInputError as exc:
            if not exc.input_name or exc.input_name in ignored:
                return None
            ignored.add(exc.input_name)
            continue
        return dataclasses.replace(config, comment="off") if "comment" in ignored else config


BASELINE_KINDS = ("experiment", "branch", "file")


def parse_baseline(text: str) -> tuple[str, str] | None:
    """`none` -> None; `experiment:<id>`, `branch:<name>`, `file:<path>` -> (kind, value)."""
    if text == "none":
        return None
    kind, sep, value = text.partition(":")
    if not sep or kind not in BASELINE_KINDS or not value.strip():
        raise _fail("baseline", f"expected none, experiment:<id>, branch:<name> or file:<path>; got {text!r}")
    return kind, value.strip()


def matrix_values(text: str | None) -> list[str]:
    """The values of a matrix given as JSON (`toJSON(matrix)`: an object, or `null` without a matrix),
    in order; a value that is itself a list or mapping as compact JSON."""
    try:
        data = json.loads(text) if text else None
    except ValueError:
        raise _fail("matrix", f"expected a JSON object, got {text!r}") from None
    if data is None:
        return []
    if not isinstance(data, dict):
        raise _fail("matrix", f"expected a JSON object, got {text!r}")
    return [
        value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        for value in data.values()
    ]


def _check(config: GateConfig) -> None:
    """Rules that span inputs or ranges; everything the gate needs is known before anything runs."""
    if config.server_url and not config.api_key:
        raise _fail("api-key", "a server-url needs an API key (set KEYSTONE_API_KEY)")
    if config.server_url and not config.server_url.startswith(("http://", "https://")):
        raise _fail("server-url", f"expected an http(s) URL, got {config.server_url!r}")
    if config.dashboard_url and not config.dashboard_url.startswith(("http://", "https://")):
        raise _fail("dashboard-url", f"expected an http(s) URL, got {config.dashboard_url!r}")
    if config.max_replicas > MAX_REPLICAS:
        raise _fail("max-replicas", f"must be at most {MAX_REPLICAS}, got {config.max_replicas}")
    if config.replicas is not None and config.max_replicas < config.replicas:
        raise _fail(
            "max-replicas",
            f"must be at least replicas ({config.replicas}), got {config.max_replicas}; set it to "
            "replicas for a fixed count",
        )
    if not 0.0 < config.alpha < 1.0:
        raise _fail("alpha", f"must be between 0 and 1 (exclusive), got {config.alpha}")
    if not 0.0 < config.min_effect <= 1.0:
        raise _fail("min-effect", f"must be in (0, 1], got {config.min_effect}")
    if not 0.0 <= config.min_pass_rate <= 1.0:
        raise _fail("min-pass-rate", f"must be between 0 and 1, got {config.min_pass_rate}")
    if config.max_cost_per_run_usd is not None and config.max_cost_per_run_usd < 0:
        raise _fail("max-cost-per-run-usd", "must not be negative")
    parse_baseline(config.baseline)
    matrix_values(config.matrix)
    if config.from_results is not None and not config.from_results.is_file():
        raise _fail("from-results", f"{config.from_results} is not a file")
