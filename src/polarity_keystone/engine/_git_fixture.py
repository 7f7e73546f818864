"""The `git_repo` fixture: clone once on the host (with the host's git credentials), copy into every
sandbox, so replicas never pay for the clone again and never need network access of their own."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import weakref
from pathlib import Path

from ..sandbox import FixtureError, FixtureStep, Sandbox
from ..spec import GitRepoFixture

_SHA = re.compile(r"[0-9a-fA-F]{7,40}")
_CLONE_TIMEOUT_S = 600
_PROTOCOLS = "https:http:ssh:git:file"
"""Transports a spec's URL may use; not `ext::`, which runs a command, nor any helper git may gain."""


def _git(*args: str, cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=_CLONE_TIMEOUT_S,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ALLOW_PROTOCOL": _PROTOCOLS},
        )
    except subprocess.TimeoutExpired as exc:
        raise FixtureError(f"git {args[0]} did not finish within {_CLONE_TIMEOUT_S}s") from exc
    except FileNotFoundError as exc:
        raise FixtureError("git is not installed on the machine running Keystone") from exc
    if done.returncode != 0:
        raise FixtureError(f"git {args[0]} failed", (done.stderr or done.stdout).strip())
    return done.stdout.strip()


class GitCheckout:
    """A `git_repo` fixture cloned once per spec run, at preparation, so the run's fingerprint records
    the exact commit (a replay of a moved branch is refused); removed when the checkout is dropped."""

    def __init__(self, fixture: GitRepoFixture, url: str) -> None:
        """Clone `url`: the fixture's remote URL, or its local repository as a file:// URL once confined
        to the spec's root by the caller. Raises FixtureError with git's output when the repository or
        revision cannot be had."""
        self._fixture = fixture
        self.directory = Path(tempfile.mkdtemp(prefix="keystone-git-")) / "repo"
        weakref.finalize(self, shutil.rmtree, str(self.directory.parent), True)
        branch, depth = fixture.branch, fixture.depth
        if branch and _SHA.fullmatch(branch):
            # A commit cannot be cloned by name: clone, then check it out (depth cannot apply).
            _git("clone", "--no-checkout", "--quiet", "--", url, str(self.directory))
            _git("checkout", "--quiet", branch, cwd=self.directory)
        else:
            options = [*(["--branch", branch] if branch else []), *(["--depth", str(depth)] if depth else [])]
            _git("clone", "--quiet", *options, "--", url, str(self.directory))
        self.commit = _git("rev-parse", "HEAD", cwd=self.directory)

    def step(self) -> FixtureStep:
        def copy(sandbox: Sandbox) -> None:
            sandbox.copy_in(str(self.directory), self._fixture.path)

        label = f"git_repo fixture {self._fixture.url}@{self.commit[:12]} -> {self._fixture.path}"
        return FixtureStep(copy, label, content=self.commit)
