"""Finished experiments in a store, made from RunResults (no sandboxes): what compare reads."""

from __future__ import annotations

from datetime import UTC, datetime

from polarity_keystone.results import RunResults
from polarity_keystone.store import ExperimentRecord, Store


def store_finished(store: Store, results: RunResults) -> str:
    """Store `results` as the completed experiment `results.experiment_id`; returns that id."""
    now = datetime.now(UTC)
    store.add_experiment(
        ExperimentRecord(
            id=results.experiment_id,
            name=results.experiment_id,
            spec_id=results.spec_id,
            spec_version=1,
            status="completed",
            created_at=now,
            owner="key_x",
            options={
                "replicas": max(len(s.replicas) for s in results.scenarios),
                "scenarios": [{"scenario_id": s.scenario_id, "parameters": {}} for s in results.scenarios],
            },
            results=results.model_dump(mode="json"),
            finished_at=now,
        )
    )
    return results.experiment_id
