"""`ks.prompts`: the project's versioned prompt templates.

Each `create` with a slug makes its next version (1, 2, ...); `get` reads the latest, a version, or the
newest version created with a tag; `render` fills a version's template on the server:

    prompt = ks.prompts.create("support-reply", "Dear {customer.name}, {#orders}#{id} {/orders}", tag="prod")
    text = ks.prompts.render(prompt, {"customer": {"name": "Ada"}, "orders": [{"id": 1}]})
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from pydantic import Field

from ._http import HttpClient
from ._models import KeystoneModel


class Prompt(KeystoneModel):
    id: str
    """This version's id: what `render` and `delete` take."""
    slug: str
    version: int
    template: str
    tag: str | None = None
    """The tag this version was created with."""
    variables: list[str] = Field(default_factory=list)
    """The names the template takes."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime


class PromptService:
    def __init__(self, http: HttpClient) -> None:
        self._http = http

    def create(
        self,
        slug: str,
        template: str,
        *,
        tag: str | None = None,
        variables: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Prompt:
        """The next version of `slug` (version 1 for a new one). `tag` makes `get(slug, tag=...)` answer
        this version until a newer one is created with it; `variables` declares the names the template
        takes (default: those it uses). BadRequestError for a template that does not parse."""
        body: dict[str, Any] = {"slug": slug, "template": template, "metadata": dict(metadata or {})}
        if tag is not None:
            body["tag"] = tag
        if variables is not None:
            body["variables"] = list(variables)
        return Prompt.from_dict(self._http.json("POST", "/v1/prompts", json=body))

    def list(self, *, limit: int | None = None) -> builtins.list[Prompt]:
        """The latest version of each of the project's prompts, by slug (the first `limit`)."""
        return [Prompt.from_dict(item) for item in self._http.list_items("/v1/prompts", limit=limit)]

    def get(self, slug: str, *, version: int | None = None, tag: str | None = None) -> Prompt:
        """The latest version of `slug`, `version`, or the newest version created with `tag`."""
        if tag is not None and version is not None:
            raise ValueError("give version or tag, not both")
        where = "latest"
        if tag is not None:
            where = f"tags/{_part(tag)}"
        elif version is not None:
            where = f"versions/{version}"
        return Prompt.from_dict(self._http.json("GET", f"/v1/prompts/{_part(slug)}/{where}"))

    def get_by_id(self, prompt_id: str) -> Prompt:
        return Prompt.from_dict(self._http.json("GET", f"/v1/prompts/{_part(prompt_id)}"))

    def list_versions(self, slug: str, *, limit: int | None = None) -> builtins.list[Prompt]:
        """The versions of `slug`, newest first (the first `limit`)."""
        items = self._http.list_items(f"/v1/prompts/{_part(slug)}/versions", limit=limit)
        return [Prompt.from_dict(item) for item in items]

    def render(self, prompt: Prompt | str, variables: Mapping[str, Any] | None = None) -> str:
        """The version's template filled with `variables` (unknown names stay as written).
        APIStatusError with status_code 422 when the result would pass the server's size or work limit."""
        body = {"variables": dict(variables or {})}
        answer = self._http.json("POST", f"/v1/prompts/{_part(_id(prompt))}/render", json=body)
        rendered: str = answer["rendered"]
        return rendered

    def delete(self, prompt: Prompt | str) -> None:
        """Delete one version (its number is never given again; a tag on it falls back to the newest
        earlier version created with it)."""
        self._http.request("DELETE", f"/v1/prompts/{_part(_id(prompt))}")


def _id(prompt: Prompt | str) -> str:
    return prompt if isinstance(prompt, str) else prompt.id


def _part(value: str) -> str:
    return quote(value, safe="")
