"""How often does the gate block by mistake, and how often does it catch a real drop? No Docker needed.

    python bench/verdict.py [--trials 2000] [--scenarios 30] [--replicas 5] [--seed 1]

Agents are simulated: each replica of a scenario passes with a known probability, drawn independently,
for a baseline run and a candidate run; both go through the gate's real decision (`gate.decide`) with the
default settings of `ks gate` (alpha, min-effect, correction, inconclusive mode and replica count come
from the gate's input table, so this prints what a user gets without tuning). Prints, per situation,
how often the gate blocked (exit code != 0), split by verdict.

The suite's base pass rates are a mix seen in practice: a third of the scenarios always pass, a third
pass 90% of the time, a third are flaky (50% to 80%); the first scenario is one that always passes.
`--flaky-only` makes every scenario 50% (the worst case for false alarms at a given replica count).
"""

from __future__ import annotations

import argparse
import functools
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence

from polarity_keystone.gate import INPUTS, Policy, SpecRun, decide, resolve
from polarity_keystone.results import InvariantResult, ReplicaResult, RunResults, ScenarioResult

Rates = list[float]


def defaults() -> tuple[Policy, int]:
    """The policy and replica count of `ks gate` with no inputs set."""
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


def simulate(rates: Rates, replicas: int, rng: random.Random, experiment_id: str) -> RunResults:
    """One run: each replica of a scenario passes with the scenario's rate, independently."""
    scenarios = [
        scenario(index, sum(rng.random() < rate for _ in range(replicas)), replicas)
        for index, rate in enumerate(rates)
    ]
    return RunResults.model_construct(
        ran_at="", spec_id="bench", experiment_id=experiment_id, seed=0, scenarios=scenarios, fingerprint={}
    )


def blocked_share(
    base: Rates, candidate: Rates, replicas: int, policy: Policy, trials: int, rng: random.Random
) -> Counter[str]:
    """Verdicts over `trials` gate runs; blocked ones are counted under their verdict."""
    verdicts: Counter[str] = Counter()
    for trial in range(trials):
        baseline = simulate(base, replicas, rng, f"base-{trial}")
        run = simulate(candidate, replicas, rng, f"cand-{trial}")
        verdict = decide([SpecRun("bench", run, baseline)], policy)
        verdicts[verdict.verdict if verdict.exit_code else "passed"] += 1
    return verdicts


def drop(rates: Rates, points: float, which: Callable[[int], bool]) -> Rates:
    return [max(0.0, rate - points) if which(i) else rate for i, rate in enumerate(rates)]


def row(label: str, counts: Counter[str], trials: int, started: float) -> str:
    blocked = trials - counts["passed"]
    detail = ", ".join(f"{name} {counts[name] / trials:.1%}" for name in sorted(counts) if name != "passed")
    return f"  {label:<44} blocked {blocked / trials:6.1%}   ({detail or 'never'})  [{time.perf_counter() - started:.1f}s]"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--scenarios", type=int, default=30)
    parser.add_argument("--replicas", type=int, help="replicas per scenario (default: the gate's default)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--flaky-only", action="store_true", help="every scenario passes 50% of the time")
    args = parser.parse_args(argv)
    policy, default_replicas = defaults()
    replicas = args.replicas or default_replicas
    rng = random.Random(args.seed)
    base = [0.5] * args.scenarios if args.flaky_only else mixed_rates(args.scenarios)
    settings = {
        item.name: item.default
        for item in INPUTS
        if item.name in ("alpha", "min-effect", "correction", "inconclusive")
    }
    print(f"gate defaults: {settings}, replicas {replicas} per scenario; {args.trials} trials each")
    print(
        f"suite of {args.scenarios} scenarios, base pass rates {'all 50%' if args.flaky_only else 'mixed (1/3 at 100%, 1/3 at 90%, 1/3 at 50-80%)'}"
    )
    cases: list[tuple[str, Rates, Rates]] = [
        ("unchanged (false blocks)", base, base),
        ("20-point drop in every scenario", base, drop(base, 0.2, lambda i: True)),
        ("20-point drop in a third of the scenarios", base, drop(base, 0.2, lambda i: i % 3 == 0)),
        ("20-point drop in the first scenario", base, drop(base, 0.2, lambda i: i == 0)),
        ("the first scenario broken (-> 0%)", base, drop(base, 1.0, lambda i: i == 0)),
    ]
    for label, before, after in cases:
        started = time.perf_counter()
        print(
            row(label, blocked_share(before, after, replicas, policy, args.trials, rng), args.trials, started)
        )
    print(f"single-scenario spec, {replicas} replicas:")
    for label, before, after in (
        ("unchanged at 90%", [0.9], [0.9]),
        ("20-point drop 90% -> 70%", [0.9], [0.7]),
        ("broken 100% -> 0%", [1.0], [0.0]),
    ):
        started = time.perf_counter()
        print(
            row(label, blocked_share(before, after, replicas, policy, args.trials, rng), args.trials, started)
        )


if __name__ == "__main__":
    main()
