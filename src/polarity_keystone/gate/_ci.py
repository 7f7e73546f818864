"""Where the gate runs: GitHub Actions, GitLab CI, or elsewhere, read from the job's environment.

What the gate needs from it: a key unique to this job *attempt* (a re-run of the same attempt must find
its experiment, a new attempt must make a new one), an order between runs (so an older run never
overwrites a newer run's PR comment), the repository, branch and commit the experiments are tagged with,
and the PR/MR to comment on.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

Provider = Literal["github", "gitlab", "local"]


class CiContext(BaseModel):
    provider: Provider = "local"
    repository: str = ""
    """owner/name on GitHub, group/project on GitLab."""
    branch: str = ""
    commit: str = ""
    pr_number: int | None = None
    run_key: str | None = None
    """Unique per job attempt; None outside CI (every run is new)."""
    run_order: list[int] = Field(default_factory=list)
    """Compares greater for a newer run: (run number, attempt) on GitHub, (pipeline IID, job id) on GitLab."""
    job: str = ""
    workflow: str = ""
    """GitHub's workflow name (two workflows may have jobs of the same name)."""
    comment_key: str = ""
    """The key of the job's sticky comment (see the comment-key input); empty in results written before
    it existed, where the job name was the key."""
    run_url: str = ""
    project_url: str = ""
    api_url: str = ""
    project_id: str = ""
    """GitLab's numeric project id (its API addresses projects by it)."""

    def tags(self) -> dict[str, str]:
        """Metadata the gate tags its experiments with, so a later run finds them as its baseline."""
        tags = {
            "gate": "keystone",
            "ci": self.provider,
            "repo": self.repository,
            "branch": self.branch,
            "commit": self.commit,
            "ci_run": self.run_key or "",
            "pr": str(self.pr_number or ""),
        }
        return {key: value for key, value in tags.items() if value}


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def _github_pr(environ: Mapping[str, str]) -> int | None:
    event_path = environ.get("GITHUB_EVENT_PATH")
    if event_path and Path(event_path).is_file():
        try:
            event: dict[str, Any] = json.loads(Path(event_path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            event = {}
        number = (event.get("pull_request") or {}).get("number") or event.get("number")
        if isinstance(number, int):
            return number
    match = re.fullmatch(r"refs/pull/(\d+)/(merge|head)", environ.get("GITHUB_REF", ""))
    return int(match.group(1)) if match else None


def _github(environ: Mapping[str, str]) -> CiContext:
    repository = environ.get("GITHUB_REPOSITORY", "")
    run_id, attempt = environ.get("GITHUB_RUN_ID", ""), environ.get("GITHUB_RUN_ATTEMPT", "1")
    server = environ.get("GITHUB_SERVER_URL", "https://github.com")
    return CiContext(
        provider="github",
        repository=repository,
        branch=environ.get("GITHUB_HEAD_REF") or environ.get("GITHUB_REF_NAME", ""),
        commit=environ.get("GITHUB_SHA", ""),
        pr_number=_github_pr(environ),
        run_key=f"github:{repository}:{run_id}:{attempt}:{environ.get('GITHUB_JOB', '')}" if run_id else None,
        run_order=[_int(environ.get("GITHUB_RUN_NUMBER")) or 0, _int(attempt) or 1],
        job=environ.get("GITHUB_JOB", ""),
        workflow=environ.get("GITHUB_WORKFLOW", ""),
        run_url=f"{server}/{repository}/actions/runs/{run_id}" if run_id else "",
        project_url=f"{server}/{repository}" if repository else "",
        api_url=environ.get("GITHUB_API_URL", "https://api.github.com"),
    )


def _gitlab_mr(environ: Mapping[str, str]) -> int | None:
    """The MR of a merge request pipeline, else the first open MR of the branch (`group/project!12`)."""
    iid = _int(environ.get("CI_MERGE_REQUEST_IID"))
    if iid is not None:
        return iid
    match = re.search(r"!(\d+)", environ.get("CI_OPEN_MERGE_REQUESTS", ""))
    return int(match.group(1)) if match else None


def _gitlab(environ: Mapping[str, str]) -> CiContext:
    job_id = environ.get("CI_JOB_ID", "")
    return CiContext(
        provider="gitlab",
        repository=environ.get("CI_PROJECT_PATH", ""),
        branch=environ.get("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME") or environ.get("CI_COMMIT_REF_NAME", ""),
        commit=environ.get("CI_COMMIT_SHA", ""),
        pr_number=_gitlab_mr(environ),
        run_key=f"gitlab:{environ.get('CI_PROJECT_ID', '')}:{job_id}" if job_id else None,
        run_order=[_int(environ.get("CI_PIPELINE_IID")) or 0, _int(job_id) or 0],
        job=environ.get("CI_JOB_NAME", ""),
        run_url=environ.get("CI_JOB_URL", ""),
        project_url=environ.get("CI_PROJECT_URL", ""),
        api_url=environ.get("CI_API_V4_URL", ""),
        project_id=environ.get("CI_PROJECT_ID", ""),
    )


def detect(environ: Mapping[str, str] | None = None) -> CiContext:
    environ = os.environ if environ is None else environ
    if environ.get("GITHUB_ACTIONS") == "true":
        return _github(environ)
    if environ.get("GITLAB_CI") == "true":
        return _gitlab(environ)
    return CiContext()
