"""The sticky PR/MR comment against a local GitHub and GitLab (real HTTP, recorded requests)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from polarity_keystone.gate._comments import CommentError, GitHubThread, GitLabThread, Marker, StickyComment
from tests.gate.gate_forges import ACTIONS_TOKEN, Forge, running_forge

_OPEN: list[StickyComment] = []


@pytest.fixture
def forge() -> Iterator[Forge]:
    with running_forge() as running:
        try:
            yield running
        finally:
            while _OPEN:
                _OPEN.pop().close()


def _sticky(thread: GitHubThread | GitLabThread, order: tuple[int, ...], mode: str) -> StickyComment:
    sticky = StickyComment(thread, Marker("gate", order), mode)
    _OPEN.append(sticky)
    return sticky


def github(
    forge: Forge, order: tuple[int, ...], mode: str = "update", token: str = "pat-alice"
) -> StickyComment:
    return _sticky(GitHubThread(forge.base_url, "o/r", 5, token), order, mode)


def gitlab(
    forge: Forge, order: tuple[int, ...], mode: str = "update", token: str = "glpat-bot"
) -> StickyComment:
    thread = GitLabThread(
        f"{forge.base_url}/api/v4", "group/project", 3, token, "https://gitlab.test/group/project"
    )
    return _sticky(thread, order, mode)


def test_github_posts_running_first_then_the_verdict_in_the_same_comment(forge: Forge) -> None:
    human = forge.add_github("carol", "LGTM")
    sticky = github(forge, (7, 1))
    url = sticky.post("⏳ running…")
    assert url is not None and url.startswith("https://github.test/o/r/pull/5#issuecomment-")
    assert sticky.post("✅ passed") == url
    (mine,) = [c for cid, c in forge.github.items() if cid != human]
    assert mine["body"] == "<!-- keystone-gate key=gate order=7.1 -->\n✅ passed"
    writes = forge.writes()
    assert writes == [
        ("POST", "/repos/o/r/issues/5/comments"),
        ("PATCH", f"/repos/o/r/issues/comments/{mine['id']}"),
    ]
    assert forge.github[human]["body"] == "LGTM"


def test_a_newer_run_takes_the_comment_over_and_an_older_run_leaves_it_alone(forge: Forge) -> None:
    github(forge, (7, 1)).post("run 7")
    newer = github(forge, (8, 1))
    newer.post("run 8 running")
    writes_before = len(forge.writes())
    assert github(forge, (7, 2)).post("run 7 attempt 2, late") is None
    assert len(forge.writes()) == writes_before
    newer.post("run 8 verdict")
    (comment,) = forge.github.values()
    assert comment["body"].endswith("run 8 verdict") and "order=8.1" in comment["body"]


def test_only_the_tokens_own_comments_are_touched(forge: Forge) -> None:
    quoted = forge.add_github("bob", "<!-- keystone-gate key=gate order=99.1 -->\nquoting the bot")
    github(forge, (7, 1)).post("mine")
    assert forge.github[quoted]["body"].endswith("quoting the bot")  # not edited, and no reason to stand back
    assert len(forge.github) == 2


def test_the_actions_token_comments_as_github_actions_bot(forge: Forge) -> None:
    github(forge, (7, 1), token=ACTIONS_TOKEN).post("first")
    github(forge, (8, 1), token=ACTIONS_TOKEN).post("second")
    (comment,) = forge.github.values()
    assert comment["user"]["login"] == "github-actions[bot]"
    assert comment["body"].endswith("second")


def test_recreate_moves_the_comment_to_the_bottom_once_per_run(forge: Forge) -> None:
    old = forge.add_github("alice", "<!-- keystone-gate key=gate order=6.1 -->\nold")
    for i in range(3):  # enough comments to need two pages
        forge.add_github("carol", f"review {i}")
    sticky = github(forge, (7, 1), mode="recreate")
    sticky.post("running")
    sticky.post("verdict")
    assert old not in forge.github
    newest = max(forge.github)
    assert forge.github[newest]["body"].endswith("verdict")
    assert [m for m, _ in forge.writes()] == ["DELETE", "POST", "PATCH"]
    assert sum("page=2" in path or method == "GET" for method, path in forge.requests) >= 2


def test_mode_off_posts_nothing(forge: Forge) -> None:
    assert github(forge, (7, 1), mode="off").post("x") is None
    assert forge.requests == []


def test_gitlab_notes_with_a_project_token(forge: Forge) -> None:
    forge.add_gitlab(8, "<!-- keystone-gate key=gate order=1.5 -->\na human pasted this")
    forge.add_gitlab(7, "added 1 commit", system=True)
    forge.add_gitlab(8, "review")
    sticky = gitlab(forge, (4, 900))
    url = sticky.post("running")
    assert sticky.post("verdict") == url
    mine = [n for n in forge.gitlab.values() if n["author"]["id"] == 7 and not n["system"]]
    assert len(mine) == 1 and mine[0]["body"].endswith("verdict")
    assert url == f"https://gitlab.test/group/project/-/merge_requests/3#note_{mine[0]['id']}"
    path = "/api/v4/projects/group%2Fproject/merge_requests/3/notes"
    assert forge.writes() == [("POST", path), ("PUT", f"{path}/{mine[0]['id']}")]
    assert gitlab(forge, (3, 800)).post("older pipeline") is None


def test_server_errors_are_retried_and_bad_tokens_raise_comment_error(forge: Forge) -> None:
    forge.fail_next = [502, 503]
    assert github(forge, (1, 1)).post("after retries") is not None
    with pytest.raises(CommentError, match="answered 401"):
        github(forge, (2, 1), token="wrong").post("x")


def test_markers_round_trip() -> None:
    marker = Marker("build/gate:1", (12, 3))
    assert Marker.parse(f"intro\n{marker.render()}\nbody") == marker
    assert Marker.parse("no marker") is None
