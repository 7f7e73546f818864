"""How often does the gate block by mistake, how often does it catch a real drop, and how many replicas
does it spend? Fixed and adaptive replicas side by side. No Docker needed.

    python bench/verdict.py [--trials 400] [--scenarios 30] [--seed 1] [--workers N]

Agents are simulated: each replica of a scenario passes with a known probability, drawn independently.
Every trial goes through the gate's real decision (`gate.decide`, and `gate.decide_adaptively` for the
adaptive column) with the default settings of `ks gate` (alpha, min-effect, correction, inconclusive
mode, replicas and max-replicas come from the gate's input table, so this prints what a user gets
without tuning). Columns:

* fixed 5 / 5: the old defaults, 5 replicas per scenario against a baseline of 5;
* fixed N / B: a fixed design against a baseline of B = max-replicas (what the gate now runs on the
  baseline branch), N the smallest count with which one 90% scenario dropping to 70% is blocked 80% of
  the time (computed exactly, so this is the fixed design with the target power);
* adaptive: the default design, 5 replicas first, growing the undecided scenarios up to max-replicas,
  against the same baseline.

Each cell: how often the gate blocked (exit code != 0), and the candidate's mean replicas per scenario.
A second table does the same for eval files: Evals whose cases run once each.

The suite's base pass rates are a mix seen in practice: a third of the scenarios always pass, a third
pass 90% of the time, a third are flaky (50% to 80%); the first scenario is one that always passes.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import math
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace

from polarity_keystone.analysis import fisher_exact_one_sided
from polarity_keystone.gate import INPUTS, Policy, SpecRun, decide, decide_adaptively, resolve
from polarity_keystone.results import InvariantResult, ReplicaResult, RunResults, ScenarioResult

Rates = list[float]
TARGET_POWER = 0.8


def defaults() -> tuple[Policy, int]:
    """The policy and first replica count of `ks gate` with no inputs set."""
    config = resolve(None, {})
    assert config.replicas is not None, "the default replica count is a number"
    return Policy.from_config(config), config.replicas


def mixed_rates(scenarios: int) -> Rates:
    third = scenarios // 3
    flaky = scenarios - 2 * third
    return [1.0] * third + [0.9] * third + [0.5 + 0.3 * i / max(1, flaky - 1) for i in range(flaky)]


@functools.cache
def scenario(index: int, passed: int, replicas: int) -> ScenarioResult:
    """Scenario `index` with `passed` of `replicas` passing; a failing replica fails the gate invariant
    `task_done`, so the gate's absolute rules see it too. Cached: the gate only reads results, and
    building pydantic models dominates the run time otherwise."""
    runs = [
        ReplicaResult(
            replica=r,
            seed=r,
            status="pass" if r < passed else "fail",
            invariants=[InvariantResult(name="task_done", passed=r < passed, gate=True)],
        )
        for r in range(replicas)
    ]
    return ScenarioResult(
        scenario_id=f"scenario-{index}",
        spec_id="bench",
        status="pass" if passed == replicas else "fail" if passed == 0 else "flaky",
        replicas=runs,
        replicas_passed=passed,
        replicas_total=replicas,
    )


def results(scenarios: list[ScenarioResult], experiment_id: str) -> RunResults:
    return RunResults.model_construct(
        ran_at="", spec_id="bench", experiment_id=experiment_id, seed=0, scenarios=scenarios, fingerprint={}
    )


def passes(rate: float, replicas: int, rng: random.Random) -> int:
    return sum(rng.random() < rate for _ in range(replicas))


def simulate(rates: Rates, replicas: int, rng: random.Random, experiment_id: str) -> RunResults:
    """One run: each replica of a scenario passes with the scenario's rate, independently."""
    return results(
        [scenario(i, passes(rate, replicas, rng), replicas) for i, rate in enumerate(rates)], experiment_id
    )


@dataclass(frozen=True)
class Design:
    label: str
    replicas: int
    baseline_replicas: int
    adaptive: bool


@dataclass
class Tally:
    blocked: int = 0
    replicas: int = 0
    trials: int = 0

    def cell(self, scenarios: int) -> str:
        return f"{self.blocked / self.trials:6.1%} {self.replicas / self.trials / scenarios:5.1f}"


def grower(rates: Rates, rng: random.Random) -> Callable[[list[SpecRun], Mapping[str, list[str]], int], None]:
    """The adaptive gate's `grow`: more simulated replicas for the scenarios it names."""

    def grow(runs: list[SpecRun], wanted: Mapping[str, list[str]], target: int) -> None:
        run = runs[0]
        assert run.candidate is not None
        named = set(wanted.get(run.spec_id, []))
        scenarios = []
        for i, current in enumerate(run.candidate.scenarios):
            if current.scenario_id in named:
                more = passes(rates[i], target - current.replicas_total, rng)
                current = scenario(i, current.replicas_passed + more, target)
            scenarios.append(current)
        runs[0] = replace(run, candidate=results(scenarios, run.candidate.experiment_id))

    return grow


def trial(
    design: Design, base: Rates, candidate: Rates, policy: Policy, rng: random.Random
) -> tuple[bool, int]:
    """(blocked, candidate replicas spent) of one gate run."""
    baseline = simulate(base, design.baseline_replicas, rng, "base")
    runs = [SpecRun("bench", simulate(candidate, design.replicas, rng, "cand"), baseline)]
    if design.adaptive:
        runs, verdict = decide_adaptively(runs, policy, grower(candidate, rng))
    else:
        verdict = decide(runs, policy)
    spent = runs[0].candidate
    assert spent is not None
    return verdict.exit_code != 0, sum(s.replicas_total for s in spent.scenarios)


def _binomial(n: int, p: float) -> list[float]:
    return [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]


def fixed_power(base_n: int, cand_n: int, base_rate: float, cand_rate: float, alpha: float) -> float:
    """Exact chance that Fisher's one-sided test at `alpha` calls the drop (one scenario)."""
    power = 0.0
    cand = _binomial(cand_n, cand_rate)
    for b, weight in enumerate(_binomial(base_n, base_rate)):
        if weight < 1e-12:
            continue
        power += weight * sum(
            mass for c, mass in enumerate(cand) if fisher_exact_one_sided(b, base_n, c, cand_n) <= alpha
        )
    return power


def fixed_n_with_target_power(base_n: int, alpha: float) -> int:
    """The smallest fixed count that blocks a lone 90% -> 70% scenario with the target power."""
    return next(n for n in range(5, 1001, 5) if fixed_power(base_n, n, 0.9, 0.7, alpha) >= TARGET_POWER)


def drop(rates: Rates, points: float, which: Callable[[int], bool]) -> Rates:
    return [max(0.0, rate - points) if which(i) else rate for i, rate in enumerate(rates)]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=400, help="trials per cell (x4 for one scenario)")
    parser.add_argument("--scenarios", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    policy, first = defaults()
    most = policy.max_replicas
    fixed_n = fixed_n_with_target_power(most, policy.alpha)
    designs = [
        Design(f"fixed {first} / {first}", first, first, adaptive=False),
        Design(f"fixed {fixed_n} / {most}", fixed_n, most, adaptive=False),
        Design(f"adaptive {first}..{most} / {most}", first, most, adaptive=True),
    ]
    settings = {
        item.name: item.default
        for item in INPUTS
        if item.name in ("alpha", "min-effect", "correction", "inconclusive", "replicas", "max-replicas")
    }
    print(f"gate defaults: {settings}; {args.trials} trials per cell")
    print("each cell: blocked share, candidate replicas per scenario (baseline replicas after the slash)")
    mixed = mixed_rates(args.scenarios)
    suite = f"suite of {args.scenarios}"
    cases: list[tuple[str, Rates, Rates]] = [
        (f"{suite}, mixed rates, unchanged", mixed, mixed),
        (f"{suite}, all 50%, unchanged", [0.5] * args.scenarios, [0.5] * args.scenarios),
        (f"{suite}, all 90%, unchanged", [0.9] * args.scenarios, [0.9] * args.scenarios),
        (f"{suite}, mixed, -20 points in every scenario", mixed, drop(mixed, 0.2, lambda i: True)),
        (f"{suite}, mixed, -20 points in a third", mixed, drop(mixed, 0.2, lambda i: i % 3 == 0)),
        (f"{suite}, mixed, first scenario broken", mixed, drop(mixed, 1.0, lambda i: i == 0)),
        (f"{suite}, mixed, first scenario 100% -> 70%", mixed, drop(mixed, 0.3, lambda i: i == 0)),
        ("one scenario, 90% unchanged", [0.9], [0.9]),
        ("one scenario, 50% unchanged", [0.5], [0.5]),
        ("one scenario, 90% -> 70%", [0.9], [0.7]),
        ("one scenario, 100% -> 0%", [1.0], [0.0]),
    ]
    print(f"  {'':<48}" + "".join(f"{d.label:>22}" for d in designs) + "  adaptive / fixed N replicas")
    cells = [
        (label, before, after, design, args.trials if len(before) > 1 else args.trials * 4, args.seed + i)
        for i, (label, before, after) in enumerate(cases)
        for design in designs
    ]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        tallies = list(pool.map(run_cell, cells, itertools.repeat(policy)))
    for i, (label, before, _) in enumerate(cases):
        row = tallies[i * len(designs) : (i + 1) * len(designs)]
        share = row[2].replicas / row[1].replicas
        print(
            f"  {label:<48}" + "".join(f"{tally.cell(len(before)):>22}" for tally in row) + f"  {share:8.0%}"
        )
    print(f"({time.perf_counter() - started:.0f}s)")
    evals_table(policy, args.trials, args.seed)


EVAL_CASES: list[tuple[str, int, int, float, float]] = [
    ("1 Eval of 50 cases, 95% -> 75%", 1, 50, 0.95, 0.75),
    ("1 Eval of 20 cases, 100% -> 70%", 1, 20, 1.0, 0.7),
    ("5 Evals of 50 cases, the first 95% -> 75%", 5, 50, 0.95, 0.75),
    ("10 Evals of 50 cases, all 90% unchanged", 10, 50, 0.9, 0.9),
]
"""(label, Evals, cases per Eval, pass rate of a case in the baseline, in the first Eval's candidate)."""


def eval_run(name: str, rate: float, cases: int, rng: random.Random, experiment_id: str) -> RunResults:
    """One run of an Eval: each case is a one-replica scenario passing with `rate`."""
    scenarios = [
        scenario(i, passes(rate, 1, rng), 1).model_copy(update={"spec_id": name}) for i in range(cases)
    ]
    return results(scenarios, experiment_id)


def evals_table(policy: Policy, trials: int, seed: int) -> None:
    """Eval files: each case runs once, so only an Eval's cases together can show a drop. Columns: how
    often the gate blocked, named the first Eval regressed, and named another (unchanged) one."""
    print(f"\nEvals (one replica a case, never grown); {trials} trials per row")
    print(f"  {'':<48}{'blocked':>10}{'first named':>14}{'other named':>14}")
    rng = random.Random(seed)
    policy = replace(policy, fail_on=frozenset())  # an Eval's scorers are no gate invariants
    for label, count, cases, base_rate, cand_rate in EVAL_CASES:
        blocked = first = other = 0
        for _ in range(trials):
            runs = [
                SpecRun(
                    f"eval-{e}",
                    eval_run(f"eval-{e}", cand_rate if e == 0 else base_rate, cases, rng, f"cand-{e}"),
                    eval_run(f"eval-{e}", base_rate, cases, rng, f"base-{e}"),
                    grows=False,
                )
                for e in range(count)
            ]
            verdict = decide(runs, policy)
            blocked += verdict.exit_code != 0
            first += verdict.specs[0].outcome == "regressed"
            other += any(spec.outcome == "regressed" for spec in verdict.specs[1:])
        print(f"  {label:<48}{blocked / trials:>10.1%}{first / trials:>14.1%}{other / trials:>14.1%}")


def run_cell(cell: tuple[str, Rates, Rates, Design, int, int], policy: Policy) -> Tally:
    _, before, after, design, trials, seed = cell
    rng = random.Random(seed)
    tally = Tally()
    for _ in range(trials):
        blocked, spent = trial(design, before, after, policy, rng)
        tally.blocked += blocked
        tally.replicas += spent
        tally.trials += 1
    return tally


if __name__ == "__main__":
    main()
