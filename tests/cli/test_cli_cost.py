"""`ks serve --pricing FILE` (default $KEYSTONE_PRICING_FILE): a file that is not a price table stops the
server before it starts, naming the file and what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from polarity_keystone import cli


def test_ks_serve_refuses_a_pricing_file_that_is_not_prices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite://{tmp_path / 'k.db'}"
    bad = tmp_path / "prices.yaml"
    bad.write_text("models:\n  gpt-4o: {input: 2.5}\n")

    assert cli.main(["serve", "--pricing", str(bad), "--store", store]) == 2
    assert "invalid --pricing" in capsys.readouterr().err

    monkeypatch.setenv("KEYSTONE_PRICING_FILE", str(tmp_path / "missing.json"))
    assert cli.main(["serve", "--store", store]) == 2
    err = capsys.readouterr().err
    assert "cannot read pricing file" in err
    assert "missing.json" in err


def test_runs_on_this_machine_refuse_a_pricing_file_that_is_not_prices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # the embedded server keeps its store under the working directory
    for name in ("KEYSTONE_BASE_URL", "KEYSTONE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KEYSTONE_PRICING_FILE", str(tmp_path / "missing.json"))
    spec = Path(__file__).parents[2] / "examples" / "hello-world" / "hello.yaml"

    assert cli.main(["eval", "run", str(spec)]) == 2
    assert "invalid $KEYSTONE_PRICING_FILE: cannot read pricing file" in capsys.readouterr().err
