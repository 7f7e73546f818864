"""`setup.pip` takes exact pins only (the image is built once per requirement list, so a range would
freeze whichever version was newest at that build); anything else is an error at the entry's line."""

from __future__ import annotations

import pytest

from polarity_keystone.spec import SEMANTIC_KEY, SpecError, parse_spec, semantic_fingerprint

SPEC = """\
version: 1
id: pip-agent
base: "ubuntu:24.04"
task: {{prompt: Summarise the ticket}}
agent: {{type: cli, command: python3 agent.py}}
setup:
  packages: [python3]
  pip:
    - openai==1.109.1
    - {entry}
invariants:
  done: {{check: {{type: file_exists, path: summary.txt}}}}
"""


def pins(entry: str) -> list[str]:
    return parse_spec(SPEC.format(entry=entry)).spec.setup.pip


@pytest.mark.parametrize(
    "entry",
    [
        "psycopg[binary]==3.2.10",
        "psycopg[binary,pool]==3.2.10",
        "Typing_Extensions == 4.12.2",
        "torch==2.4.0+cpu",
    ],
)
def test_exact_pins_with_or_without_extras_are_accepted(entry: str) -> None:
    assert pins(entry) == ["openai==1.109.1", entry]


@pytest.mark.parametrize(
    ("entry", "example"),
    [
        ("openai", "openai==<version>"),
        ("openai>=1", "openai==<version>"),
        ("openai~=1.99", "openai==<version>"),
        ("openai==1.*", "openai==<version>"),
        ("\"openai==1.99.9; python_version >= '3.11'\"", "openai==<version>"),
        ("https://example.com/openai.whl", "openai==<version>"),
        ("psycopg[binary]", "psycopg==<version>"),
        ("psycopg[binary]>3", "psycopg==<version>"),
        ('"==1.0"', "openai==<version>"),
    ],
)
def test_anything_but_an_exact_pin_names_the_entry_and_the_fix(entry: str, example: str) -> None:
    with pytest.raises(SpecError) as raised:
        pins(entry)
    (issue,) = raised.value.issues
    written = entry.strip('"')
    assert (issue.line, issue.field) == (10, "setup.pip[1]")
    assert issue.message == f"{written!r} is not an exact pin: give one version, e.g. {example}"


def test_a_changed_pin_changes_the_fingerprint_of_the_setup() -> None:
    before = semantic_fingerprint(parse_spec(SPEC.format(entry="httpx==0.27.0")).spec)
    after = semantic_fingerprint(parse_spec(SPEC.format(entry="httpx==0.27.2")).spec)
    assert before[SEMANTIC_KEY] != after[SEMANTIC_KEY]
    changed = {
        key
        for key, value in before["spec_parts"]["sections"].items()
        if after["spec_parts"]["sections"][key] != value
    }
    assert changed == {"setup"}


def test_a_key_left_at_its_default_does_not_change_what_a_spec_means() -> None:
    """A spec written before `setup.pip` existed keeps its hash, so its baselines still compare."""
    bare = SPEC.replace("  pip:\n    - openai==1.109.1\n    - {entry}\n", "")
    written_out = bare.replace("  packages: [python3]\n", "  packages: [python3]\n  pip: []\n")
    hashes = {
        semantic_fingerprint(parse_spec(text.format()).spec)[SEMANTIC_KEY] for text in (bare, written_out)
    }
    assert len(hashes) == 1
