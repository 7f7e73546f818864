"""Build RunResults for the gate's tests with the engine's own aggregation: a scenario is a string of
replica outcomes, `P` pass, `F` fail, `E` error (imported by the tests)."""

from __future__ import annotations

from typing import Any

from polarity_keystone.engine._aggregate import aggregate_run, aggregate_scenario
from polarity_keystone.results import (
    ForbiddenCheckResult,
    InvariantResult,
    ReplicaResult,
    Reproducer,
    RunResults,
)

SPEC = "spec"
FINGERPRINT = {"spec_id": SPEC, "spec_sha256": "a" * 64, "service_images": {}, "agent_digest": "sha256:1"}
_STATUS = {"P": "pass", "F": "fail", "E": "error"}


def replica(index: int, code: str, *, forbidden: str | None = None, scenario_id: str = "s") -> ReplicaResult:
    status = _STATUS[code]
    return ReplicaResult(
        replica=index,
        seed=1000 + index,
        status=status,
        wall_ms=1000,
        error="sandbox did not boot" if status == "error" else None,
        invariants=[]
        if status == "error"
        else [
            InvariantResult(name="task_done", passed=status == "pass", gate=True),
            InvariantResult(name="tidy_output", passed=True),
        ],
        forbidden_checks=[ForbiddenCheckResult(rule=forbidden, violated=True, details="wrote /etc/passwd")]
        if forbidden
        else [],
        reproducer=Reproducer(
            spec_file="spec.yaml",
            seed=1000 + index,
            scenario_id=scenario_id,
            command=f"ks replay spec.yaml --seed {1000 + index}",
        ),
    )


def run(
    scenarios: dict[str, str],
    *,
    spec_id: str = SPEC,
    experiment_id: str = "exp-candidate",
    fingerprint: dict[str, Any] | None = None,
    forbidden: dict[str, str] | None = None,
) -> RunResults:
    """`{"s1": "PPPF"}` -> a run with scenario s1 of 4 replicas; `forbidden={"s1": "rule"}` makes the
    first replica of s1 violate `rule`."""
    built = []
    for scenario_id, codes in scenarios.items():
        replicas = [
            replica(
                i,
                code,
                scenario_id=scenario_id,
                forbidden=(forbidden or {}).get(scenario_id) if i == 0 else None,
            )
            for i, code in enumerate(codes)
        ]
        built.append(aggregate_scenario(spec_id, scenario_id, {}, replicas))
    return aggregate_run(
        spec_id=spec_id,
        experiment_id=experiment_id,
        seed=1,
        scenarios=built,
        fingerprint=dict(FINGERPRINT if fingerprint is None else fingerprint, spec_id=spec_id),
        spec_file="spec.yaml",
        k=max(len(codes) for codes in scenarios.values()),
    )
