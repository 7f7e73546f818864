"""A local GitHub + GitLab for the comment tests: the REST endpoints the gate uses, in memory, served by
uvicorn on a real socket, recording every request (imported by the tests).

GitHub: `GET /user` (a PAT's login; 403 for the Actions token, as on github.com), issue comments of a PR
(list with `Link` pagination, create, edit, delete). GitLab under `/api/v4`: `GET /user`, merge request
notes (list with `X-Next-Page`, create, edit, delete), system notes mixed in.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response

from tests.asgi_server import serve_app

PAGE = 2
"""Small pages, so listing must follow pagination."""
GITHUB_USERS = {"pat-alice": "alice", "pat-bob": "bob"}
ACTIONS_TOKEN = "ghs-actions"
GITLAB_USERS = {"glpat-bot": 7, "glpat-human": 8}


@dataclass
class Forge:
    base_url: str = ""
    requests: list[tuple[str, str]] = field(default_factory=list)
    github: dict[int, dict[str, Any]] = field(default_factory=dict)
    gitlab: dict[int, dict[str, Any]] = field(default_factory=dict)
    fail_next: list[int] = field(default_factory=list)
    """Status codes to answer the next requests with, before serving them normally."""
    _ids: Iterator[int] = field(default_factory=lambda: iter(range(1000, 10**6)))

    def writes(self) -> list[tuple[str, str]]:
        return [(method, path) for method, path in self.requests if method != "GET"]

    def add_github(self, login: str, body: str) -> int:
        comment_id = next(self._ids)
        self.github[comment_id] = {"id": comment_id, "user": {"login": login}, "body": body}
        return comment_id

    def add_gitlab(self, author: int, body: str, system: bool = False) -> int:
        note_id = next(self._ids)
        self.gitlab[note_id] = {"id": note_id, "author": {"id": author}, "body": body, "system": system}
        return note_id


def _github_user(request: Request) -> str:
    token = request.headers.get("authorization", "").removeprefix("Bearer ")
    if token == ACTIONS_TOKEN:
        return "github-actions[bot]"
    if token not in GITHUB_USERS:
        raise HTTPException(401, "Bad credentials")
    return GITHUB_USERS[token]


def _gitlab_user(request: Request) -> int:
    token = request.headers.get("private-token", "")
    if token not in GITLAB_USERS:
        raise HTTPException(401, "401 Unauthorized")
    return GITLAB_USERS[token]


def build_app(forge: Forge) -> FastAPI:
    app = FastAPI()

    @app.middleware("http")
    async def record(request: Request, call_next: Any) -> Response:
        forge.requests.append((request.method, request.scope["raw_path"].decode()))  # as sent: %2F stays
        if forge.fail_next:
            return Response(status_code=forge.fail_next.pop(0))
        response: Response = await call_next(request)
        return response

    @app.get("/user")
    def github_me(request: Request) -> dict[str, Any]:
        if request.headers.get("authorization", "").removeprefix("Bearer ") == ACTIONS_TOKEN:
            raise HTTPException(403, "Resource not accessible by integration")
        return {"login": _github_user(request)}

    def github_view(comment: dict[str, Any]) -> dict[str, Any]:
        return {**comment, "html_url": f"https://github.test/o/r/pull/5#issuecomment-{comment['id']}"}

    @app.get("/repos/{owner}/{repo}/issues/{number}/comments")
    def github_list(
        owner: str, repo: str, number: int, request: Request, response: Response, page: int = 1
    ) -> list[Any]:
        _github_user(request)
        items = sorted(forge.github.values(), key=lambda c: c["id"])
        chunk = items[(page - 1) * PAGE : page * PAGE]
        if page * PAGE < len(items):
            following = f"{forge.base_url}/repos/{owner}/{repo}/issues/{number}/comments?page={page + 1}"
            response.headers["Link"] = f'<{following}>; rel="next"'
        return [github_view(c) for c in chunk]

    @app.post("/repos/{owner}/{repo}/issues/{number}/comments", status_code=201)
    async def github_create(owner: str, repo: str, number: int, request: Request) -> dict[str, Any]:
        comment_id = forge.add_github(_github_user(request), (await request.json())["body"])
        return github_view(forge.github[comment_id])

    @app.patch("/repos/{owner}/{repo}/issues/comments/{comment_id}")
    async def github_edit(owner: str, repo: str, comment_id: int, request: Request) -> dict[str, Any]:
        user = _github_user(request)
        comment = forge.github.get(comment_id)
        if comment is None:
            raise HTTPException(404, "Not Found")
        if comment["user"]["login"] != user:
            raise HTTPException(403, "not yours")
        comment["body"] = (await request.json())["body"]
        return github_view(comment)

    @app.delete("/repos/{owner}/{repo}/issues/comments/{comment_id}", status_code=204)
    def github_delete(owner: str, repo: str, comment_id: int, request: Request) -> None:
        _github_user(request)
        if forge.github.pop(comment_id, None) is None:
            raise HTTPException(404, "Not Found")

    @app.get("/api/v4/user")
    def gitlab_me(request: Request) -> dict[str, Any]:
        return {"id": _gitlab_user(request), "username": "project_5_bot"}

    notes = "/api/v4/projects/{project:path}/merge_requests/{iid}/notes"

    @app.get(notes)
    def gitlab_list(project: str, iid: int, request: Request, response: Response, page: int = 1) -> list[Any]:
        _gitlab_user(request)
        items = sorted(forge.gitlab.values(), key=lambda n: n["id"])
        if page * PAGE < len(items):
            response.headers["X-Next-Page"] = str(page + 1)
        return items[(page - 1) * PAGE : page * PAGE]

    @app.post(notes, status_code=201)
    async def gitlab_create(project: str, iid: int, request: Request) -> dict[str, Any]:
        return forge.gitlab[forge.add_gitlab(_gitlab_user(request), (await request.json())["body"])]

    @app.put(notes + "/{note_id}")
    async def gitlab_edit(project: str, iid: int, note_id: int, request: Request) -> dict[str, Any]:
        _gitlab_user(request)
        if note_id not in forge.gitlab:
            raise HTTPException(404, "404 Not found")
        forge.gitlab[note_id]["body"] = (await request.json())["body"]
        return forge.gitlab[note_id]

    @app.delete(notes + "/{note_id}", status_code=204)
    def gitlab_delete(project: str, iid: int, note_id: int, request: Request) -> None:
        _gitlab_user(request)
        if forge.gitlab.pop(note_id, None) is None:
            raise HTTPException(404, "404 Not found")

    return app


@contextmanager
def running_forge() -> Iterator[Forge]:
    forge = Forge()
    with serve_app(build_app(forge)) as forge.base_url:
        yield forge
