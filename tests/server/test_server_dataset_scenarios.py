"""A spec's scenarios taken from a dataset (`parallelism.dataset`): resolved when the experiment is
created, one scenario per record of the pinned version, the record's `input` fields and `expected` as
its task parameters; another project's dataset reads as missing."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from polarity_keystone.server import create_api_key
from polarity_keystone.store import ProjectRecord
from tests.server.server_api import Api, MakeApi, wait_until_finished
from tests.stores import ENGINE_ON_ONE_STORE

RECORDS: list[dict[str, Any]] = [
    {"input": {"word": "alpha-1"}, "expected": "one"},
    {"input": {"word": "alpha-2", "meta": {"k": [1, 2]}}},
    {"input": "alpha-3", "tags": ["odd"]},
]


def _spec(dataset: str, **source: Any) -> str:
    options = "".join(f", {key}: {value}" for key, value in source.items())
    return textwrap.dedent(
        f"""\
        version: 1
        id: words
        base: "debian:bookworm-slim"
        task: {{prompt: "write the word"}}
        agent:
          type: cli
          command: 'echo "$word$input" > word.txt; echo "word=$word$input expected=$expected meta=$meta"'
        invariants:
          wrote: {{check: {{type: file_content, path: word.txt, contains: alpha}}}}
        parallelism: {{dataset: {{id: {dataset}{options}}}}}
        """
    )


def _dataset(client: httpx.Client, records: list[dict[str, Any]]) -> str:
    dataset: str = client.post("/v1/datasets", json={"name": "words"}).json()["id"]
    assert client.post(f"/v1/datasets/{dataset}/records", json={"records": records}).status_code == 201
    return dataset


def _create(api: Api, client: httpx.Client | None = None) -> httpx.Response:
    return (client or api.client).post("/v1/experiments", json={"name": "words", "spec_id": "words"})


def test_each_record_is_a_scenario_of_the_version_pinned_at_creation(api: Api) -> None:
    dataset = _dataset(api.client, RECORDS)
    ids = [r["id"] for r in api.client.get(f"/v1/datasets/{dataset}/records").json()]
    assert api.upload(_spec(dataset)).status_code == 201

    created = _create(api)
    api.client.post(f"/v1/datasets/{dataset}/records", json={"records": [{"input": {"word": "later"}}]})
    options = api.context.store.get_experiment(created.json()["id"]).options

    assert created.status_code == 201, created.text
    assert created.json()["progress"]["total"] == 3
    assert options["dataset"] == {"id": dataset, "version": 2, "tags": [], "limit": None}
    assert options["scenarios"] == [
        {"scenario_id": f"words[{ids[0]}]", "parameters": {"word": "alpha-1", "expected": "one"}},
        {"scenario_id": f"words[{ids[1]}]", "parameters": {"word": "alpha-2", "meta": {"k": [1, 2]}}},
        {"scenario_id": f"words[{ids[2]}]", "parameters": {"input": "alpha-3"}},
    ]


def test_tags_limit_and_version_choose_the_records(api: Api) -> None:
    dataset = _dataset(api.client, RECORDS)
    api.client.post(f"/v1/datasets/{dataset}/records", json={"records": [{"input": "late", "tags": ["odd"]}]})

    def planned(**source: Any) -> list[dict[str, Any]]:
        assert api.upload(_spec(dataset, **source)).status_code == 201
        created = _create(api)
        assert created.status_code == 201, created.text
        parameters: list[dict[str, Any]] = [
            cell["parameters"]
            for cell in api.context.store.get_experiment(created.json()["id"]).options["scenarios"]
        ]
        return parameters

    assert planned(tags="[odd]") == [{"input": "alpha-3"}, {"input": "late"}]
    assert planned(tags="[odd]", version=2) == [{"input": "alpha-3"}]
    assert planned(limit=1) == [{"word": "alpha-1", "expected": "one"}]


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([{"input": {"bad-name": 1}}], "must be identifiers"),
        ([{"input": {"KEYSTONE_SEED": 1}}], "not starting with KEYSTONE_"),
        ([{"input": {"expected": 1}, "expected": 2}], "rename the input's field"),
        ([{"input": "x" * 40_000}], "bytes of task parameters"),
        ([{"input": "x", "tags": ["other"]}], "has no records with tags ['odd']"),
    ],
)
def test_records_that_make_no_scenario_are_refused_naming_the_fix(
    api: Api, records: list[dict[str, Any]], message: str
) -> None:
    dataset = _dataset(api.client, records)
    tags = {"tags": "[odd]"} if "tags" in message else {}
    assert api.upload(_spec(dataset, **tags)).status_code == 201

    refused = _create(api)

    assert refused.status_code == 400, refused.text
    assert message in refused.json()["message"] and dataset in refused.json()["message"]


def test_another_projects_dataset_reads_as_missing(api: Api) -> None:
    store = api.context.store
    store.add_project(ProjectRecord("proj_b", "proj-b", datetime.now(UTC)))
    other = api.as_key(create_api_key(store, "b", "proj_b")[0])
    theirs = _dataset(other, RECORDS)
    assert api.upload(_spec(theirs)).status_code == 201

    refused = _create(api)
    missing = api.upload(_spec("ds_nothing"))

    assert refused.status_code == 400
    assert refused.json()["message"] == (
        f"parallelism.dataset: dataset {theirs!r} does not exist in this project"
    )
    assert missing.status_code == 201
    assert "'ds_nothing' does not exist" in _create(api).json()["message"]


def _served_spec(make_api: MakeApi) -> tuple[Api, str]:
    """A server that runs sandboxes, holding the spec over a dataset of RECORDS; and the dataset's id."""
    api = make_api(socket=True)
    dataset = _dataset(api.client, RECORDS)
    assert api.upload(_spec(dataset)).status_code == 201
    return api, dataset


@pytest.mark.docker
@ENGINE_ON_ONE_STORE
def test_a_run_gives_each_scenario_its_records_parameters(make_api: MakeApi) -> None:
    api, dataset = _served_spec(make_api)
    experiment_id = _create(api).json()["id"]
    api.client.post(f"/v1/datasets/{dataset}/records", json={"records": [{"input": {"word": "beta"}}]})

    assert api.client.post(f"/v1/experiments/{experiment_id}/run").status_code == 202
    results = wait_until_finished(api, experiment_id)

    assert results["status"] == "completed", results.get("error")
    scenarios = results["scenarios"]
    outputs = [s["replicas"][0]["agent_output"].strip() for s in scenarios]
    assert outputs == [
        "word=alpha-1 expected=one meta=",
        'word=alpha-2 expected= meta={"k": [1, 2]}',
        "word=alpha-3 expected= meta=",
    ]  # the record added after creation is not run: the version was pinned
    assert [s["status"] for s in scenarios] == ["pass"] * 3
    assert [s["parameters"] for s in scenarios][2] == {"input": "alpha-3"}


@pytest.mark.docker
@ENGINE_ON_ONE_STORE
def test_a_run_picks_the_record_its_inputs_name(make_api: MakeApi) -> None:
    api, dataset = _served_spec(make_api)
    inputs = {"meta": {"k": [1, 2]}, "word": "alpha-2"}

    unknown = api.client.post("/v1/runs", json={"spec_id": "words", "inputs": {"word": "gamma"}})
    run = api.client.post("/v1/runs", json={"spec_id": "words", "inputs": inputs})
    results = wait_until_finished(api, run.json()["id"])

    assert unknown.status_code == 400 and dataset in unknown.json()["message"]
    assert results["status"] == "completed", results.get("error")
    [scenario] = results["scenarios"]
    assert scenario["replicas"][0]["agent_output"].strip() == 'word=alpha-2 expected= meta={"k": [1, 2]}'
