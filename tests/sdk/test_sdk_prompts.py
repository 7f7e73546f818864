"""`ks.prompts` against the real server (on a socket, over SQLite and Postgres): versions and tags, get
by latest, version, tag and id, listing, rendering, deleting, and the server's refusals as the SDK's
errors; its model holds everything the server sends."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import Any

import pytest

from polarity_keystone import APIStatusError, BadRequestError, NotFoundError
from polarity_keystone.sdk import Prompt
from polarity_keystone.server import _prompts as wire
from polarity_keystone.types import Prompt as TypesPrompt
from tests.sdk.sdk_servers import KeystoneServer
from tests.sdk.test_sdk_models_match_server import mismatches

README = Path(__file__).parents[2] / "README.md"
TEMPLATE = "Dear {{customer.name}},\n{#orders}- order {id}: {total} EUR\n{/orders}Ref {ticket}"


def test_create_get_render_list_and_delete_against_a_served_server(socket_server: KeystoneServer) -> None:
    ks = socket_server.client()
    first = ks.prompts.create("support-reply", TEMPLATE, tag="prod", metadata={"team": "support"})
    assert isinstance(first, Prompt)
    assert (first.slug, first.version, first.tag, first.variables) == (
        "support-reply",
        1,
        "prod",
        ["customer", "orders", "ticket"],
    )
    assert first.id.startswith("prm_") and first.metadata == {"team": "support"}
    second = ks.prompts.create("support-reply", "Hi {name}", variables=["name", "mood"])
    assert (second.version, second.tag, second.variables) == (2, None, ["name", "mood"])

    assert ks.prompts.get("support-reply") == second
    assert ks.prompts.get("support-reply", version=1) == first
    assert ks.prompts.get("support-reply", tag="prod") == first
    assert ks.prompts.get_by_id(first.id) == first
    assert [p.version for p in ks.prompts.list_versions("support-reply")] == [2, 1]
    assert [(p.slug, p.version) for p in ks.prompts.list()] == [("support-reply", 2)]

    variables = {"customer": {"name": "Ada"}, "orders": [{"id": "o1", "total": 12.5}]}
    assert ks.prompts.render(first, variables) == "Dear Ada,\n- order o1: 12.5 EUR\nRef {ticket}"
    assert ks.prompts.render(second.id) == "Hi {name}"

    ks.prompts.delete(second)
    assert ks.prompts.get("support-reply") == first
    with pytest.raises(NotFoundError):
        ks.prompts.get("support-reply", version=2)
    assert ks.prompts.create("support-reply", "v3").version == 3


def test_refusals_are_the_sdks_errors(socket_server: KeystoneServer) -> None:
    ks = socket_server.client()
    with pytest.raises(BadRequestError, match="never closed"):
        ks.prompts.create("broken", "{#items}no end")
    with pytest.raises(NotFoundError):
        ks.prompts.get("missing")
    with pytest.raises(NotFoundError):
        ks.prompts.render("prm_missing", {})
    with pytest.raises(ValueError, match="not both"):
        ks.prompts.get("x", version=1, tag="t")

    huge = ks.prompts.create("huge", "{#rows}{big}{/rows}")
    with pytest.raises(APIStatusError) as refused:
        ks.prompts.render(huge, {"rows": list(range(11)), "big": "x" * 100_000})
    assert refused.value.status_code == 422


def test_the_sdk_model_holds_every_field_the_server_sends() -> None:
    assert mismatches(wire.PromptOut, Prompt) == []
    assert TypesPrompt is Prompt


def test_the_readme_snippet_prints_what_its_comments_say(
    socket_server: KeystoneServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    section = README.read_text().split("## Prompts\n", 1)[1]
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    expected = [line.rsplit("  # ", 1)[1] for line in snippet.splitlines() if line.startswith("print(")]
    monkeypatch.setenv("KEYSTONE_BASE_URL", socket_server.base_url)
    monkeypatch.setenv("KEYSTONE_API_KEY", socket_server.key)
    printed = io.StringIO()
    scope: dict[str, Any] = {}
    with contextlib.redirect_stdout(printed):
        exec(compile(snippet, str(README), "exec"), scope)
    scope["ks"].close()
    assert [line.rstrip() for line in printed.getvalue().splitlines()] == expected
    assert re.search(r"ks\.prompts\.create\(", snippet)
