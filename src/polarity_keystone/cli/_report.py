"""The readable end of a run: a table of scenarios and, for each replica that did not pass, why (with the
agent's exit code and last output lines) and how to replay it."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..results import ReplicaResult, RunResults, failure_evidence

_STYLE = {"pass": "green", "fail": "red", "flaky": "yellow", "error": "magenta"}


def _interval(low: float, high: float) -> str:
    return f"[{low:.0%}, {high:.0%}]"


def print_run(console: Console, results: RunResults) -> None:
    table = Table(
        title=f"{results.spec_id} · {results.experiment_id} · seed {results.seed}", title_justify="left"
    )
    for column in ("scenario", "status", "pass rate (95% CI)", "replicas", "composite", "mean wall"):
        table.add_column(column, justify="right" if column not in ("scenario", "status") else "left")
    for scenario in results.scenarios:
        walls = [r.wall_ms for r in scenario.replicas] or [0]
        style = _STYLE[scenario.status]
        table.add_row(
            escape(scenario.scenario_id),
            f"[{style}]{scenario.status}[/]",
            f"{scenario.pass_rate:.0%} {_interval(*scenario.pass_rate_ci)}",
            f"{scenario.replicas_passed}/{scenario.replicas_total}",
            f"{scenario.composite_score:.2f}",
            f"{sum(walls) / len(walls) / 1000:.1f}s",
        )
    console.print(table)
    for scenario in results.scenarios:
        for replica in scenario.replicas:
            if replica.status != "pass":
                print_replica_failure(console, scenario.scenario_id, replica)
    m = results.metrics
    console.print(
        f"{results.passed} passed, {results.failed} failed, {results.flaky} flaky, {results.errors} errors · "
        f"pass rate {m.pass_rate:.0%} {_interval(*m.pass_rate_ci)} · pass^{m.k} {m.pass_hat_k:.2f} · "
        f"mean wall {m.mean_wall_ms / 1000:.1f}s · p95 {m.p95_wall_ms / 1000:.1f}s · "
        f"forbidden violations {m.side_effect_violations}"
    )


def print_replica_failure(console: Console, scenario_id: str, replica: ReplicaResult) -> None:
    style = _STYLE[replica.status]
    console.print(
        f"\n[{style}]✗ {escape(scenario_id)} replica {replica.replica} ({replica.status})[/] "
        f"sandbox {replica.sandbox_id} seed {replica.seed}"
    )
    if replica.error:
        console.print(f"  error: {escape(replica.error)}")
    # Reasons already name failed gates and forbidden violations; add the other failing invariants.
    for reason in replica.reasons:
        console.print(f"  {escape(reason)}")
    for invariant in replica.invariants:
        if not invariant.passed and not invariant.gate:
            console.print(f"  invariant {escape(invariant.name)}: {escape(invariant.message)}")
    if evidence := failure_evidence(replica):
        head, _, output = evidence.partition("\n")
        console.print(f"  {escape(head)}")
        for line in output.splitlines():
            console.print(f"    [dim]{escape(line)}[/]", soft_wrap=True)
    for divergence in (event for event in replica.audit if event.get("type") == "llm_divergence"):
        where = divergence.get("path") or "(the call itself)"
        expected, got = (str(divergence.get(key))[:200] for key in ("expected", "got"))
        console.print(
            f"  model call {divergence.get('call')} diverged from the recording at `{escape(str(where))}`: "
            f"expected {escape(expected)}, got {escape(got)}",
            soft_wrap=True,
        )
    if replica.reproducer is not None:
        console.print(f"  replay: [bold]{escape(replica.reproducer.command)}[/]", soft_wrap=True)
        if any(replica.recordings.values()):
            console.print(
                "  [dim]add --recording RESULTS.json (this run's results, e.g. from `ks eval run -o`) to "
                "answer its model calls from the recording, with no network[/]",
                soft_wrap=True,
            )
