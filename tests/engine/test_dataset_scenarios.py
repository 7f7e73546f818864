"""Scenarios from a dataset in the engine: only a server resolves them; nested parameters read as JSON."""

from __future__ import annotations

from typing import Any

import pytest

from polarity_keystone.engine import parameter_text, scenarios_of
from polarity_keystone.spec import DatasetScenarios, Parallelism, SpecError


def test_a_dataset_spec_run_without_a_server_is_refused_saying_so() -> None:
    parallelism = Parallelism(dataset=DatasetScenarios(id="ds_abc"))

    with pytest.raises(SpecError) as raised:
        scenarios_of(parallelism, "spec")

    issue = raised.value.issues[0]
    assert issue.field == "parallelism.dataset"
    assert "ds_abc" in issue.message
    assert issue.suggestion is not None and "server" in issue.suggestion


def test_the_resolved_records_are_the_scenarios_and_the_version_is_pinned() -> None:
    parallelism = Parallelism(dataset=DatasetScenarios(id="ds_abc", tags=["smoke"]))
    cells: list[tuple[str, dict[str, Any]]] = [
        ("spec[rec_1]", {"q": "a"}),
        ("spec[rec_2]", {"q": "b", "expected": [1]}),
    ]

    planned = parallelism.planned(cells, 3)

    assert scenarios_of(planned, "spec") == cells
    assert planned.dataset == DatasetScenarios(id="ds_abc", version=3, tags=["smoke"])
    assert parallelism.planned_scenarios is None  # the spec's own parallelism is left as it was
    copied = planned.model_copy(update={"replicas": 2})
    assert scenarios_of(copied, "spec") == cells


def test_nested_parameters_are_json_and_scalars_read_as_before() -> None:
    assert parameter_text({"b": 1, "a": [True, None]}) == '{"a": [true, null], "b": 1}'
    assert parameter_text(["x"]) == '["x"]'
    assert parameter_text(True) == "True"
    assert parameter_text(3) == "3"
    assert parameter_text("plain") == "plain"
