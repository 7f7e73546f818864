"""Adaptive replicas for the gate: which design a run follows, and what each look asks for.

The first look is the experiments as created (`replicas` per scenario); every later look doubles the
replicas of the scenarios still undecided, up to `max-replicas` (see `analysis._sequential` for why
looking again does not inflate false blocks). A look ends the run when it blocks for good (a regression,
a broken threshold, an error), when no scenario asks for more, or at the last look.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

from ..analysis import SequentialDesign
from ._verdict import GateVerdict, Policy, SpecRun, decide

ENDS_THE_RUN = ("regressed", "threshold_failed", "error")
"""Verdicts no further replica can undo: the run stops growing at once."""


def design_for(runs: Sequence[SpecRun], max_replicas: int) -> SequentialDesign:
    """Looks from the fewest replicas any candidate scenario ran (its first look) up to `max_replicas`;
    a fixed design when nothing that can grow ran or is compared with a baseline."""
    counts = [
        scenario.replicas_total
        for run in runs
        if run.grows and run.candidate is not None and run.baseline is not None
        for scenario in run.candidate.scenarios
        if scenario.replicas_total
    ]
    if not counts:
        return SequentialDesign((max(1, max_replicas),))
    return SequentialDesign.doubling(min(counts), max_replicas)


def undecided(verdict: GateVerdict) -> dict[str, list[str]]:
    """Per spec, the scenarios whose look asked for more replicas (empty when the run ends here)."""
    if verdict.verdict in ENDS_THE_RUN:
        return {}
    wanted: dict[str, list[str]] = {}
    for spec in verdict.specs:
        for scenario in spec.scenarios:
            if scenario.outcome == "inconclusive":
                wanted.setdefault(spec.spec_id, []).append(scenario.scenario_id)
    return wanted


Grow = Callable[[list[SpecRun], Mapping[str, list[str]], int], str | None]
"""Grows the named scenarios of each spec (`{spec_id: [scenario_id]}`) to a replica count, replacing
those specs' runs in the list in place; returns None, or why it could not."""


def decide_adaptively(runs: list[SpecRun], policy: Policy, grow: Grow) -> tuple[list[SpecRun], GateVerdict]:
    """Decide look by look, growing the undecided scenarios between looks; returns the runs as they
    ended and the verdict of the last look, decided as final (a drop still leaning is no longer
    `inconclusive`). When growing fails, the design is cut short at the look it
    reached (a leaning drop is then `inconclusive`) and the specs concerned say why."""
    alpha = policy.alpha
    design = design_for(runs, policy.max_replicas)
    index = 0
    while True:
        look = design.look(index, alpha)
        verdict = decide(runs, policy, look)
        wanted = undecided(verdict) if look.kind == "interim" else {}
        if not wanted:
            if look.kind == "interim":  # the run ends here: nothing is undecided any more
                verdict = decide(runs, policy, design.final(index, alpha))
            return runs, verdict
        problem = grow(runs, wanted, design.looks[index + 1])
        if problem is not None:
            note = f"adaptive replicas stopped at {design.looks[index]} per scenario: {problem}"
            runs = [
                dataclasses.replace(run, notes=(*run.notes, note)) if run.spec_id in wanted else run
                for run in runs
            ]
            return runs, decide(runs, policy, design.look(index, alpha, cut_short=True))
        index += 1
