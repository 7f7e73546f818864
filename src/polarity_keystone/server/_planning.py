"""New experiments: what `POST /v1/experiments`, `/v1/runs` and `/v1/replicas` record before a run.

The plan is fixed at creation: the spec version, its scenarios (matrix cells, or the records of a
pinned dataset version), replicas and the seed, so results
read back later (even partial ones) are computed against the same plan.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..engine import new_experiment_seed, parameter_text, scenarios_of
from ..secrets import require_available
from ..store import ExperimentRecord
from ._context import ServerContext
from ._dataset_scenarios import dataset_scenarios
from ._deps import Principal
from ._errors import InvalidRequest

ID_PREFIX = {"run": "run_", "replica_suite": "rep_"}


@dataclass
class Plan:
    name: str
    spec_id: str
    spec_version: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    replicas: int | None = None
    """Default: the spec's `parallelism.replicas`."""
    concurrency: int | None = None
    seed: int | None = None
    kind: str | None = None
    """`run` or `replica_suite` for the experiments behind the seed's runs and replica suites."""
    inputs: dict[str, Any] | None = None
    """Keep only the matrix cell with these parameters (a run runs one cell)."""
    replica_seed: int | None = None
    """A run's own seed (replayed exactly)."""


def record_experiment(context: ServerContext, caller: Principal, plan: Plan) -> ExperimentRecord:
    """Store a `created` experiment for `plan` and hold its secrets for the run. Raises NotFound for an
    unknown spec, SpecError if it no longer validates, SecretError for a secret the server may not
    read (see SecretPolicy), InvalidRequest for inputs that are no cell."""
    spec = context.store.get_spec(caller.project_id, plan.spec_id, plan.spec_version)
    bundle = context.specs.bundle(spec)
    loaded = context.specs.load(spec.project_id, spec.id, spec.version, bundle)
    require_available(loaded.spec.secrets, plan.secrets, context.settings.secret_policy)
    parallelism = loaded.spec.parallelism
    if parallelism.dataset is not None:  # pinned: extending the experiment runs the same records
        version, resolved = dataset_scenarios(context.store, caller.project_id, parallelism.dataset, spec.id)
        parallelism = parallelism.planned(resolved, version)
    cells = scenarios_of(parallelism, loaded.spec.id)
    if plan.inputs is not None:
        wanted = {key: parameter_text(value) for key, value in plan.inputs.items()}
        cells = [cell for cell in cells if {k: parameter_text(v) for k, v in cell[1].items()} == wanted]
        if not cells:
            if parallelism.dataset is not None:
                raise InvalidRequest(
                    f"inputs {plan.inputs} are the parameters of no record of dataset "
                    f"{parallelism.dataset.id!r} (version {parallelism.dataset.version})"
                )
            axes = ", ".join(sorted(loaded.spec.parallelism.matrix)) or "none"
            raise InvalidRequest(f"inputs {plan.inputs} are not a cell of the spec's matrix (axes: {axes})")
    if plan.kind == "run":
        cells = cells[:1]  # the cell `inputs` named, or the first
    replicas = plan.replicas or loaded.spec.parallelism.replicas
    options: dict[str, Any] = {
        "replicas": replicas,
        "concurrency": plan.concurrency,
        "seed": plan.seed if plan.seed is not None else new_experiment_seed(),
        "scenarios": [{"scenario_id": sid, "parameters": parameters} for sid, parameters in cells],
        "bundle": bundle,
        "secret_names": sorted(plan.secrets),
        **context.agents.pin(caller.project_id, loaded.spec),
    }
    if parallelism.dataset is not None:
        options["dataset"] = parallelism.dataset.model_dump()
    if plan.kind is not None:
        options["kind"] = plan.kind
    if plan.replica_seed is not None:
        options["replica_seed"] = plan.replica_seed
    zero = {"done": 0, "passed": 0, "failed": 0, "errors": 0}
    record = ExperimentRecord(
        id=ID_PREFIX.get(plan.kind or "", "exp-") + secrets.token_hex(6),
        name=plan.name,
        spec_id=spec.id,
        spec_version=spec.version,
        status="created",
        created_at=datetime.now(UTC),
        owner=caller.id,
        metadata=plan.metadata,
        options=options,
        progress={"total": replicas * len(cells), **zero, "status": "created"},
        project_id=caller.project_id,
    )
    context.store.add_experiment(record)
    context.runner.hold_secrets(record.id, plan.secrets)
    return record
