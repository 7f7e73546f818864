"""action.yml, the GitLab component and `ks gate` agree with the one input table; the CI examples use them
as they are."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from polarity_keystone import PUBLISHED_IMAGES, __version__
from polarity_keystone.cli import build_parser
from polarity_keystone.gate import INPUTS, GateInput
from polarity_keystone.gate._outputs import OUTPUT_NAMES

ROOT = Path(__file__).resolve().parents[2]
COMPONENT_ONLY = {"stage", "image"}
"""Inputs of the GitLab component that configure the job rather than the gate."""
ACTION_DEFAULTS = {"comment-token": "${{ github.token }}", "matrix": "${{ toJSON(matrix) }}"}
"""Defaults only a GitHub workflow can express."""


def gitlab_type(item: GateInput) -> str:
    """Booleans and numbers with a default are typed, so `replicas: 5` unquoted creates the pipeline."""
    if item.kind == "bool":
        return "boolean"
    return "number" if item.kind in ("int", "float", "replicas") and item.default else "string"


def gitlab_default(item: GateInput) -> object:
    kind = gitlab_type(item)
    if kind == "boolean":
        return item.default == "true"
    return float(item.default) if kind == "number" else item.default


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def component(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(spec header, jobs): a component is two YAML documents."""
    header, jobs = yaml.safe_load_all(path.read_text())
    return header, jobs


def test_the_cli_has_a_flag_per_input() -> None:
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    gate = commands.choices["gate"]
    flags = {option for action in gate._actions for option in action.option_strings} - {"-h", "--help"}
    assert flags == {item.flag for item in INPUTS}


@pytest.mark.parametrize(
    ("path", "image"),
    [
        ("action.yml", f"docker://{PUBLISHED_IMAGES}:{__version__}"),
        ("from-source/action.yml", "../Dockerfile"),
    ],
)
def test_action_yml_mirrors_the_input_table(path: str, image: str) -> None:
    """The action runs the image released for this version; its twin for forks builds the Dockerfile
    and differs in nothing else a workflow sees."""
    action = load(ROOT / path)
    assert list(action["inputs"]) == [item.name for item in INPUTS]
    for item in INPUTS:
        declared = action["inputs"][item.name]
        assert declared["description"] == item.help, item.name
        assert declared.get("default", "") == ACTION_DEFAULTS.get(item.name, item.default), item.name
        assert declared["required"] is False
    runs = action["runs"]
    assert (runs["using"], runs["image"], runs["entrypoint"], runs["args"]) == (
        "docker",
        image,
        "ks",
        ["gate"],
    )
    assert runs["env"] == {item.env: f"${{{{ inputs.{item.name} }}}}" for item in INPUTS}
    assert list(action["outputs"]) == list(OUTPUT_NAMES)
    released = load(ROOT / "action.yml")
    assert {**action, "name": "", "runs": {**runs, "image": ""}} == {
        **released,
        "name": "",
        "runs": {**released["runs"], "image": ""},
    }


def test_the_gitlab_component_mirrors_the_input_table_where_gitlab_expects_it() -> None:
    published = ROOT / "gitlab-ci-component.yml"
    catalog = ROOT / "templates" / "keystone-gate.yml"  # a component project's templates/<name>.yml
    assert catalog.read_text() == published.read_text()
    header, jobs = component(catalog)
    inputs = header["spec"]["inputs"]
    public = [item for item in INPUTS if not item.secret]
    assert set(inputs) == {item.name for item in public} | COMPONENT_ONLY
    for item in public:
        declared = inputs[item.name]
        assert declared["type"] == gitlab_type(item), item.name
        assert declared["default"] == gitlab_default(item), item.name
        assert type(declared["default"]) is not str or declared["type"] == "string", item.name
        assert declared.get("options") == (list(item.choices) if item.kind == "choice" else None), item.name
        assert declared["description"] == item.help, item.name
    assert {inputs[name]["type"] for name in COMPONENT_ONLY} == {"string"}
    runner = catalog.read_text().split("spec:", 1)[0]
    assert "privileged" in runner and "docker:dind" in runner
    (job,) = jobs.values()
    variables = {k: v for k, v in job["variables"].items() if k.startswith("KEYSTONE_")}
    assert variables == {item.env: f"$[[ inputs.{item.name} ]]" for item in public}
    assert job["script"] == ["ks gate"]
    assert (job["stage"], job["image"]) == ("$[[ inputs.stage ]]", "$[[ inputs.image ]]")
    assert job["artifacts"]["when"] == "always"
    assert job["artifacts"]["reports"] == {"junit": "$[[ inputs.junit ]]", "dotenv": "$[[ inputs.dotenv ]]"}
    used = set(re.findall(r"\$\[\[ inputs\.([\w-]+) \]\]", catalog.read_text()))
    assert used <= set(inputs)


def test_the_dockerfile_builds_on_a_configurable_base_and_runs_ks() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "ARG BASE=python:3.12-slim\nFROM ${BASE}" in text
    assert 'CMD ["ks", "gate"]' in text
    assert 'pip install --no-cache-dir --require-hashes "$@" -r /src/requirements/gate.txt;' in text
    assert "package=/src;" in text  # the checkout; never by name (PyPI's is another project)
    assert re.search(r"pip install[^\n]*polarity-keystone", text) is None


def _uses(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        step
        for job in workflow["jobs"].values()
        for step in job["steps"]
        if "keystone-action" in step.get("uses", "")
    ]


def _spec_files(value: str) -> list[Path]:
    return [ROOT / name for name in value.split()]


def test_the_github_examples_use_real_inputs_and_example_specs() -> None:
    inputs = set(load(ROOT / "action.yml")["inputs"])
    folder = ROOT / "examples" / "ci" / "github"
    workflows = {path.name: load(path) for path in folder.rglob("*.yml")}
    assert set(workflows) == {"keystone-gate.yml", "keystone-eval.yml", "keystone-comment.yml"}
    for name, workflow in workflows.items():
        for step in _uses(workflow):
            assert set(step["with"]) <= inputs, name
            for spec in _spec_files(step["with"].get("specs", "")):
                assert spec.is_file(), spec
    comment_step = _uses(workflows["keystone-comment.yml"])[0]["with"]
    assert comment_step["from-results"] == "keystone-results.json"
    assert workflows["keystone-comment.yml"][True]["workflow_run"]["workflows"] == ["keystone-eval"]  # `on:`
    assert "pull-requests" not in workflows["keystone-eval.yml"]["permissions"]
    assert _uses(workflows["keystone-eval.yml"])[0]["with"]["comment"] is False  # YAML reads `off` as false


def test_the_gitlab_example_includes_the_component_with_real_inputs() -> None:
    pipeline = load(ROOT / "examples" / "ci" / "gitlab" / ".gitlab-ci.yml")
    (include,) = pipeline["include"]
    assert include["component"].endswith("/keystone-gate@1")
    header, _ = component(ROOT / "gitlab-ci-component.yml")
    assert set(include["inputs"]) <= set(header["spec"]["inputs"])
    for spec in _spec_files(include["inputs"]["specs"]):
        assert spec.is_file(), spec
