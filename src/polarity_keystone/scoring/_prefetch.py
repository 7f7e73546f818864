"""What a stretch of read-only checks needs, fetched together: each `docker exec` costs the engine tens of
milliseconds of CPU, so the paths of all file checks are probed in one exec and the queries of all `sql`
checks on a service run in one exec, instead of one exec per check. The fetches of a stretch run side by
side (a lone `file_content` check's file, not worth a probe, is read while the query batches run).

A prefetched answer is what the check would have read itself at that moment; where the batch cannot
answer as the check would (a file the probe could not read in full, an exec that failed), the check
reads for itself as it always did.
"""

from __future__ import annotations

import posixpath
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from ..sandbox import Sandbox, SandboxError
from ..services import SqlError, postgres
from ..spec import Check, FileAbsentCheck, FileContentCheck, FileExistsCheck, Service, SqlCheck

_T = TypeVar("_T")

PREFETCHED_TYPES = frozenset({"file_exists", "file_absent", "file_content", "sql"})
"""Check types that only read: a stretch of them can be answered by one fetch made before the first."""
CONTENT_LIMIT = 64 * 1024
"""Bytes of a file the probe brings back; a longer file is read by its check in full, as before."""

_PROBE = """
for p in "$@"; do
  if [ -e "$p" ]; then e=1; else e=0; fi
  if [ -f "$p" ] && [ ! -L "$p" ] && x=$(od -An -v -tx1 -N {limit} "$p" 2>/dev/null); then
    printf '%s 1\\n%s\\n.\\n' "$e" "$x"
  else
    printf '%s 0\\n' "$e"
  fi
done
"""
"""Per path: `<exists> <read>` (`test -e`, and whether its bytes follow), then, when read, the first
bytes of the regular file as hex ending in a `.` line (hex: the exec's output is read as text)."""


def exists_path(path: str) -> str:
    """Where `file_exists` and `file_absent` look: `test -e` on the workspace path as written."""
    return posixpath.join("/workspace", path)


def content_path(path: str) -> str:
    """Where `file_content` reads: the normalised workspace path, as `Sandbox.read_file` reads it."""
    return posixpath.normpath(exists_path(path))


@dataclass(frozen=True)
class FileAnswer:
    exists: bool
    content: bytes | None
    """What the check reads: the whole file, or for a lone check the file as `Sandbox.read_file` reads it;
    None when the probe did not read it in full (not a regular file, unreadable to the exec's user, or over
    CONTENT_LIMIT)."""


@dataclass
class Prefetched:
    files: dict[str, FileAnswer] = field(default_factory=dict)
    """By absolute path."""
    queries: dict[tuple[str, str], deque[postgres.Rows | SqlError]] = field(default_factory=dict)
    """By (service, query): each answer once, in the order the checks come (a query may change what the
    same query answers next)."""
    ahead: dict[tuple[str, str], postgres.Rows | SqlError] = field(default_factory=dict)
    """By (service, query): answers to the caller's own queries that ran first in a service's batch."""

    def file(self, path: str) -> FileAnswer | None:
        return self.files.get(path)

    def query(self, service: str, sql: str) -> postgres.Rows | SqlError | None:
        answers = self.queries.get((service, sql))
        return answers.popleft() if answers else None


def leading_stretch(checks: Sequence[Check]) -> list[Check]:
    """The checks from the first up to the first that is not one of PREFETCHED_TYPES: one fetch's worth."""
    stretch = []
    for check in checks:
        if check.type not in PREFETCHED_TYPES:
            break
        stretch.append(check)
    return stretch


def prefetch(
    checks: Sequence[object],
    sandbox: Sandbox,
    services: dict[str, Service],
    ahead: Mapping[str, Sequence[str]] | None = None,
) -> Prefetched:
    """Answers for `checks` (a stretch of PREFETCHED_TYPES) wherever two or more share one fetch. `ahead`
    gives, per service, queries of the caller's own to run before the checks' in that service's batch
    (only where the checks query it: never an exec of their own); their answers are in `ahead`, absent
    when the batch gave none."""
    file_checks = [check for check in checks if isinstance(check, FileExistsCheck | FileAbsentCheck)]
    content_checks = [check for check in checks if isinstance(check, FileContentCheck)]
    by_service: dict[str, list[str]] = {}
    for check in checks:
        if isinstance(check, SqlCheck) and check.service in services:
            by_service.setdefault(check.service, []).append(check.query)
    first_queries = ahead or {}
    batches = {
        name: (list(first_queries.get(name, ())), queries)
        for name, queries in by_service.items()
        if len(first_queries.get(name, ())) + len(queries) > 1
    }
    files: Callable[[], dict[str, FileAnswer]] | None = None
    if len(file_checks) + len(content_checks) > 1:
        paths = {exists_path(check.path) for check in file_checks}
        paths |= {content_path(check.path) for check in content_checks}
        files = partial(_probe_files, sandbox, sorted(paths))
    elif content_checks and batches:
        files = partial(_read_lone_file, sandbox, content_path(content_checks[0].path))
    prefetched = Prefetched()
    count = len(batches) + (files is not None)
    # The fetches read different containers, or different things in one, and none writes: when there
    # are several, they run on their own threads.
    with ThreadPoolExecutor(max_workers=max(1, count), thread_name_prefix="prefetch") as pool:
        start = pool.submit if count > 1 else _now
        probed = start(files) if files else None
        answered = {
            name: start(_query_batch, sandbox, services[name], [*first, *queries])
            for name, (first, queries) in batches.items()
        }
        if probed is not None:
            prefetched.files = probed.result()
        for name, (first, queries) in batches.items():
            _keep_queries(prefetched, name, first, queries, answered[name].result())
    return prefetched


def _now(fetch: Callable[..., _T], /, *args: Any) -> Future[_T]:
    """`fetch` run here and now, as a done future (one fetch alone needs no thread)."""
    done: Future[_T] = Future()
    done.set_result(fetch(*args))
    return done


def _read_lone_file(sandbox: Sandbox, path: str) -> dict[str, FileAnswer]:
    """A lone `file_content` check's file, read as the check reads it, while the query batches run; a
    file that is not there, or a read that failed, is left to the check."""
    try:
        return {path: FileAnswer(True, sandbox.read_file(path))}
    except (FileNotFoundError, IsADirectoryError, SandboxError):
        return {}


def _probe_files(sandbox: Sandbox, paths: list[str]) -> dict[str, FileAnswer]:
    try:
        result = sandbox.exec(["sh", "-c", _PROBE.format(limit=CONTENT_LIMIT + 1), "sh", *paths])
    except SandboxError:
        return {}
    if result.exit_code != 0 or result.truncated:
        return {}
    lines = result.stdout.splitlines()
    answers = {}
    try:
        for path in paths:
            exists, read = lines.pop(0).split()
            content = None
            if read == "1":
                end = lines.index(".")
                content = bytes.fromhex("".join(lines[:end]))
                del lines[: end + 1]
            if content is not None and len(content) > CONTENT_LIMIT:
                content = None
            answers[path] = FileAnswer(exists == "1", content)
    except (ValueError, IndexError):  # output that is no probe's: the checks read for themselves
        return {}
    return answers


def _query_batch(
    sandbox: Sandbox, service: Service, queries: list[str]
) -> list[postgres.Rows | SqlError] | None:
    try:
        return postgres.query_each(sandbox, service, queries)
    except SandboxError:
        return None


def _keep_queries(
    prefetched: Prefetched,
    service: str,
    ahead: list[str],
    queries: list[str],
    answers: list[postgres.Rows | SqlError] | None,
) -> None:
    if answers is None:
        return
    for sql, answer in zip(ahead, answers, strict=False):
        prefetched.ahead[(service, sql)] = answer
    for sql, answer in zip(queries, answers[len(ahead) :], strict=False):
        prefetched.queries.setdefault((service, sql), deque()).append(answer)
