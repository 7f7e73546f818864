"""The gate's input table: flags, environment, defaults, validation."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

import pytest

from polarity_keystone.cli import main
from polarity_keystone.gate import INPUTS, GateConfig, GateInputError, add_arguments, resolve
from polarity_keystone.gate._inputs import parse_baseline


def parsed(*flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(flags))


def test_every_input_is_a_config_field_a_flag_and_a_keystone_variable() -> None:
    assert [item.field for item in INPUTS] == [f.name for f in fields(GateConfig)]
    assert all(item.env.startswith("KEYSTONE_") for item in INPUTS)
    assert len({item.env for item in INPUTS}) == len(INPUTS)
    flags = {action.option_strings[0] for action in argparse.ArgumentParser()._actions}
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    added = {action.option_strings[0] for action in parser._actions} - flags
    assert added == {item.flag for item in INPUTS}


def test_defaults_environment_and_flags_in_that_order() -> None:
    config = resolve(None, {})
    assert (config.replicas, config.alpha, config.correction, config.comment) == (5, 0.05, "holm", "update")
    assert config.specs == ("specs/*.yaml",) and config.fail_on == ("forbidden", "gate-invariant")
    assert config.junit == Path("keystone-junit.xml") and config.from_results is None
    environ = {"KEYSTONE_REPLICAS": "8", "KEYSTONE_SPECS": "a.yaml,\nb/*.yaml", "KEYSTONE_MIN_EFFECT": ""}
    from_env = resolve(None, environ)
    assert (from_env.replicas, from_env.specs, from_env.min_effect) == (8, ("a.yaml", "b/*.yaml"), 0.1)
    from_flags = resolve(
        parsed("--replicas", "spec", "--specs", "x.yaml", "y.yaml", "--allow-fingerprint-mismatch"), environ
    )
    assert (from_flags.replicas, from_flags.specs, from_flags.allow_fingerprint_mismatch) == (
        None,
        ("x.yaml", "y.yaml"),
        True,
    )
    assert resolve(parsed("--timeout", "90s", "--max-p95-wall", "1m"), {}).max_p95_wall == 60.0


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"KEYSTONE_REPLICAS": "0"}, "invalid replicas (--replicas / KEYSTONE_REPLICAS): must be at least 1"),
        ({"KEYSTONE_ALPHA": "1.5"}, "invalid alpha (--alpha / KEYSTONE_ALPHA): must be between 0 and 1"),
        ({"KEYSTONE_ALPHA": "nan"}, "invalid alpha (--alpha / KEYSTONE_ALPHA): expected a number"),
        (
            {"KEYSTONE_FAIL_ON": "forbidden,typo"},
            "unknown value(s) typo; choose from forbidden, gate-invariant, none",
        ),
        ({"KEYSTONE_COMMENT": "sometimes"}, "choose one of update, recreate, off"),
        ({"KEYSTONE_TIMEOUT": "soon"}, "invalid timeout (--timeout / KEYSTONE_TIMEOUT): invalid duration"),
        ({"KEYSTONE_BASELINE": "main"}, "expected none, experiment:<id>, branch:<name> or file:<path>"),
        (
            {"KEYSTONE_BASE_URL": "http://ks.test"},
            "invalid api-key (--api-key / KEYSTONE_API_KEY): a server-url needs",
        ),
        ({"KEYSTONE_BASE_URL": "ks.test", "KEYSTONE_API_KEY": "k"}, "expected an http(s) URL"),
        ({"KEYSTONE_FROM_RESULTS": "/nonexistent.json"}, "/nonexistent.json is not a file"),
    ],
)
def test_invalid_inputs_name_the_input_its_flag_and_its_variable(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(GateInputError) as caught:
        resolve(None, environ)
    assert message in str(caught.value)


def test_baseline_forms() -> None:
    assert parse_baseline("none") is None
    assert parse_baseline("experiment:exp-1") == ("experiment", "exp-1")
    assert parse_baseline("branch:release/2.0") == ("branch", "release/2.0")
    assert parse_baseline("file:out/base.json") == ("file", "out/base.json")


def test_ks_gate_exits_2_on_invalid_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # it reports that it could not run, in the working directory
    for name in ("GITHUB_ACTIONS", "GITLAB_CI", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"):
        monkeypatch.delenv(name, raising=False)  # a CI running these tests is not the gate's CI
    assert main(["gate", "--alpha", "2"]) == 2
    assert "invalid alpha (--alpha / KEYSTONE_ALPHA)" in capsys.readouterr().err
    assert "invalid alpha" in (tmp_path / "keystone-summary.md").read_text()
