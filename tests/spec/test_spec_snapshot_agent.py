"""`agent: {type: snapshot, name, tag | version}`: which snapshot a spec runs (resolved by the server)."""

from __future__ import annotations

import pytest

from polarity_keystone.spec import SpecError, parse_spec, unsupported_features
from tests.spec.test_spec_errors import edited


def with_agent(agent: str) -> str:
    return edited("agent:\n  type: cli\n  command: python3 agent.py\n", f"agent: {{{agent}}}\n")


@pytest.mark.parametrize(
    ("agent", "name", "tag", "version"),
    [
        ("type: snapshot, name: email-agent", "email-agent", None, None),
        ("type: snapshot, snapshot: email-agent, tag: v2.1", "email-agent", "v2.1", None),
        ("type: snapshot, name: email-agent, version: 3", "email-agent", None, 3),
    ],
)
def test_a_snapshot_agent_names_its_snapshot(
    agent: str, name: str, tag: str | None, version: int | None
) -> None:
    spec = parse_spec(with_agent(agent)).spec

    assert (spec.agent.snapshot_name, spec.agent.tag, spec.agent.version) == (name, tag, version)
    assert unsupported_features(spec) == []


@pytest.mark.parametrize(
    ("agent", "words"),
    [
        ("type: snapshot", "needs a `name`"),
        ("type: snapshot, name: a, tag: v1, version: 1", "not both"),
        ("type: snapshot, name: a, snapshot: b", "give one"),
        ("type: snapshot, name: ../a", "name"),
    ],
)
def test_a_snapshot_agent_that_names_no_single_snapshot_is_an_error(agent: str, words: str) -> None:
    with pytest.raises(SpecError, match=words):
        parse_spec(with_agent(agent))
