"""One sticky PR/MR comment per gate job: GitHub issue comments or GitLab merge request notes.

The comment carries a hidden marker, `<!-- keystone-gate key=<key> order=<run>.<attempt> state=<verdict>
-->`. The gate only ever touches comments that carry its job's key AND were written by the token's own
user, so it never edits a human's comment that quotes a marker. The key defaults to the workflow, job and
matrix values (GitHub) or the job name (GitLab, whose matrix jobs' names carry their values), so matrix
legs keep a comment each; a comment keyed by the bare job name (the default before) is taken over. The
order makes runs comparable: a run that finds a newer run's comment leaves it alone, so a slow old run
never overwrites a newer verdict. The state is the verdict the comment tells (none while "running…").

Modes: `update` edits the comment in place (one comment for the whole PR); `recreate` deletes it and
posts a new one at the bottom on the run's first post, then edits that one; `off` posts nothing.
When: `always` writes "running…" and the verdict; `on-failure` writes a verdict that did not pass, and
one that passed only over a comment already there (so it never stays red); `on-change` writes only a
verdict other than the standing comment's (the first verdict on a PR included).
GitLab needs a project (or personal) access token with `api` scope: CI_JOB_TOKEN cannot write notes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import httpx
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from .._version import __version__
from ._ci import CiContext

MARKER = re.compile(
    r"<!-- keystone-gate key=(?P<key>\S+) order=(?P<order>[\d.]+)(?: state=(?P<state>\S+))? -->"
)
GITHUB_ACTIONS_BOT = "github-actions[bot]"
"""Who comments with the workflow's GITHUB_TOKEN, whose `GET /user` answers 403."""
TIMEOUT_S = 30.0
PER_PAGE = 100


class CommentError(Exception):
    """Raised when the PR/MR comment cannot be read or written; the gate warns and keeps its verdict."""


MAX_KEY = 200
"""Longest comment key kept as it is; a longer one (a large matrix, a pasted value) is cut and made
unique again with a hash of the whole, so the marker stays small and two long keys never collide."""


def _safe_key(text: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.:/-]", "-", text)
    if len(safe) <= MAX_KEY:
        return safe
    return f"{safe[: MAX_KEY - 17]}~{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def default_comment_key(ci: CiContext, matrix: Sequence[str]) -> str:
    """Workflow, job and matrix values on GitHub; the job name elsewhere (GitLab's matrix jobs are named
    after their values)."""
    parts = [ci.workflow, ci.job, *matrix] if ci.provider == "github" else [ci.job]
    return "/".join(part for part in parts if part)


@dataclass(frozen=True)
class Marker:
    key: str
    order: tuple[int, ...]
    state: str | None = None
    former_key: str | None = None
    """A key this job's comment may still carry from before comment keys had a default of their own (the
    bare job name): such a comment is taken over, not left standing beside the new one."""

    def render(self, state: str | None = None) -> str:
        told = f" state={state}" if state else ""
        return f"<!-- keystone-gate key={self.key} order={'.'.join(map(str, self.order))}{told} -->"

    @classmethod
    def parse(cls, body: str) -> Marker | None:
        match = MARKER.search(body)
        if match is None:
            return None
        order = tuple(int(part) for part in match["order"].split(".") if part)
        return cls(match["key"], order, match["state"])

    def owns(self, other: Marker) -> bool:
        return other.key in (self.key, self.former_key)

    @classmethod
    def for_run(cls, ci: CiContext) -> Marker:
        key = _safe_key(ci.comment_key or ci.job or "keystone-gate")
        former = _safe_key(ci.job) if ci.job and _safe_key(ci.job) != key else None
        return cls(key, tuple(ci.run_order) or (0,), former_key=former)


@dataclass(frozen=True)
class Comment:
    id: int
    author: str
    body: str
    url: str


class Thread(Protocol):
    """The comments of one PR or MR, through one platform's API."""

    def me(self) -> str: ...
    def comments(self) -> list[Comment]: ...
    def create(self, body: str) -> Comment: ...
    def update(self, comment_id: int, body: str) -> Comment: ...
    def delete(self, comment_id: int) -> None: ...
    def close(self) -> None: ...


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, httpx.HTTPStatusError) and (
        exc.response.status_code >= 500 or exc.response.status_code == 429
    )


class _Api:
    """An authenticated JSON client with retries on connection errors, 429 and 5xx."""

    def __init__(self, base_url: str, headers: dict[str, str], transport: httpx.BaseTransport | None) -> None:
        headers = {"User-Agent": f"keystone-gate/{__version__}", **headers}
        self.client = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=TIMEOUT_S, transport=transport
        )

    @retry(
        retry=retry_if_exception(_retryable),
        stop=stop_after_attempt(4),
        wait=wait_exponential(multiplier=0.5, max=8),
        reraise=True,
    )
    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.client.request(method, path, **kwargs)
        response.raise_for_status()
        return response

    def close(self) -> None:
        self.client.close()


class GitHubThread:
    """Issue comments of a pull request (`/repos/{owner}/{repo}/issues/{number}/comments`)."""

    def __init__(
        self,
        api_url: str,
        repository: str,
        number: int,
        token: str,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }
        self.api = _Api(api_url, headers, transport)
        self.repo = repository
        self.number = number

    def me(self) -> str:
        try:
            return str(self.api.call("GET", "/user").json()["login"])
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code == 403:  # an Actions token is an integration, not a user
                return GITHUB_ACTIONS_BOT
            raise

    @staticmethod
    def _comment(data: dict[str, Any]) -> Comment:
        return Comment(
            int(data["id"]),
            str((data.get("user") or {}).get("login", "")),
            str(data.get("body") or ""),
            str(data.get("html_url", "")),
        )

    def comments(self) -> list[Comment]:
        found: list[Comment] = []
        url: str | None = f"/repos/{self.repo}/issues/{self.number}/comments?per_page={PER_PAGE}"
        while url:
            response = self.api.call("GET", url)
            found += [self._comment(item) for item in response.json()]
            following = response.links.get("next", {}).get("url")
            url = following or None
        return found

    def create(self, body: str) -> Comment:
        return self._comment(
            self.api.call(
                "POST", f"/repos/{self.repo}/issues/{self.number}/comments", json={"body": body}
            ).json()
        )

    def update(self, comment_id: int, body: str) -> Comment:
        return self._comment(
            self.api.call(
                "PATCH", f"/repos/{self.repo}/issues/comments/{comment_id}", json={"body": body}
            ).json()
        )

    def delete(self, comment_id: int) -> None:
        self.api.call("DELETE", f"/repos/{self.repo}/issues/comments/{comment_id}")

    def close(self) -> None:
        self.api.close()


class GitLabThread:
    """Notes of a merge request (`/projects/{id}/merge_requests/{iid}/notes`)."""

    def __init__(
        self,
        api_url: str,
        project: str,
        iid: int,
        token: str,
        project_url: str = "",
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.api = _Api(api_url, {"PRIVATE-TOKEN": token}, transport)
        self.path = f"/projects/{quote(project, safe='')}/merge_requests/{iid}/notes"
        self.web = f"{project_url.rstrip('/')}/-/merge_requests/{iid}" if project_url else ""

    def me(self) -> str:
        return str(self.api.call("GET", "/user").json()["id"])

    def _comment(self, data: dict[str, Any]) -> Comment:
        url = f"{self.web}#note_{data['id']}" if self.web else ""
        return Comment(
            int(data["id"]), str((data.get("author") or {}).get("id", "")), str(data.get("body") or ""), url
        )

    def comments(self) -> list[Comment]:
        found: list[Comment] = []
        page: str | None = "1"
        while page:
            response = self.api.call(
                "GET", self.path, params={"per_page": PER_PAGE, "page": page, "sort": "asc"}
            )
            found += [self._comment(note) for note in response.json() if not note.get("system")]
            page = response.headers.get("X-Next-Page") or None
        return found

    def create(self, body: str) -> Comment:
        return self._comment(self.api.call("POST", self.path, json={"body": body}).json())

    def update(self, comment_id: int, body: str) -> Comment:
        return self._comment(self.api.call("PUT", f"{self.path}/{comment_id}", json={"body": body}).json())

    def delete(self, comment_id: int) -> None:
        self.api.call("DELETE", f"{self.path}/{comment_id}")

    def close(self) -> None:
        self.api.close()


class StickyComment:
    """The job's one comment on a thread; `post` writes a new body (first "running…", last the verdict)."""

    def __init__(self, thread: Thread, marker: Marker, mode: str, when: str = "always") -> None:
        self.thread = thread
        self.marker = marker
        self.mode = mode
        self.when = when
        self.left_alone = ""
        """Why the last `post` wrote nothing (empty when it wrote)."""
        self._me: str | None = None
        self._mine: int | None = None
        """The id of the comment this run posted or took over."""

    def close(self) -> None:
        self.thread.close()

    def post(self, body: str, state: str | None = None) -> str | None:
        """Write `body`, telling the verdict `state` (None: progress, such as "running…"). The URL of the
        comment that stands (None without one); `left_alone` says why when nothing was written."""
        self.left_alone = ""
        if self.mode == "off":
            return None
        if state is None and self.when != "always":
            self.left_alone = f"comment-mode {self.when} writes verdicts only"
            return None
        try:
            return self._post(f"{self.marker.render(state)}\n{body}", state)
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            raise CommentError(_describe(exc)) from None

    def _wanted(self, standing: Comment | None, state: str) -> bool:
        """Whether comment-mode writes the verdict `state` over the `standing` comment (None: none)."""
        told = Marker.parse(standing.body) if standing is not None else None
        if self.when == "on-failure" and state == "passed" and standing is None:
            self.left_alone = "comment-mode on-failure: passed, and no comment to update"
            return False
        if self.when == "on-change" and told is not None and told.state == state:
            self.left_alone = f"comment-mode on-change: the comment already says {state}"
            return False
        return True

    def _post(self, body: str, state: str | None) -> str | None:
        if self._me is None:
            self._me = self.thread.me()
        ours = []
        for comment in self.thread.comments():
            marker = Marker.parse(comment.body)
            if comment.author == self._me and marker is not None and self.marker.owns(marker):
                if marker.order > self.marker.order:
                    self.left_alone = "a newer run has commented"
                    return None
                ours.append(comment)
        standing = max(ours, key=lambda c: c.id) if ours else None
        if state is not None and not self._wanted(standing, state):
            return standing.url if standing is not None else None
        ids = [c.id for c in ours]
        if self._mine in ids:
            return self.thread.update(self._mine, body).url
        if self.mode == "update" and ours:
            latest = max(ours, key=lambda c: c.id)
            self._mine = latest.id
            return self.thread.update(latest.id, body).url
        for comment in ours:  # recreate, or update that lost its comment: start over at the bottom
            self.thread.delete(comment.id)
        created = self.thread.create(body)
        self._mine = created.id
        return created.url


def _describe(exc: BaseException) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        request, response = exc.request, exc.response
        return f"{request.method} {request.url.path} answered {response.status_code}: {response.text[:300]}"
    return f"{type(exc).__name__}: {exc}"


def thread_for(ci: CiContext, token: str | None) -> Thread | None:
    """The PR/MR thread of this job, or None when there is none to comment on (not a PR, no token)."""
    number = ci.pr_number
    if not token or number is None:
        return None
    if ci.provider == "github" and ci.repository:
        return GitHubThread(ci.api_url, ci.repository, number, token)
    if ci.provider == "gitlab" and ci.api_url:
        return GitLabThread(ci.api_url, ci.project_id or ci.repository, number, token, ci.project_url)
    return None
