"""Eval files: Python files whose module-level `Eval(...)` calls run when the file is executed.

`ks eval run FILE.py`, `ks gate` and the pytest plugin all execute one the same way: under an
`eval_context` (the caller's client, metadata and Idempotency-Key), collecting each finished
`EvalResult`. A file that raises, or runs no Eval, is an `EvalFileError` naming the file, the line in it
and the traceback's tail.
"""

from __future__ import annotations

import runpy
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..sdk import EvalResult, Keystone, KeystoneError, eval_context

TRACEBACK_TAIL_LINES = 12
"""An eval file's error keeps this many lines of its traceback's end (where it raised)."""


class EvalFileError(Exception):
    """An eval file raised, or ran no `Eval`; `line` is the line of the file where it raised, if known."""

    def __init__(self, path: Path, message: str, line: int | None = None, tail: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.line = line
        self.tail = tail

    def describe(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else str(self.path)
        return f"{where}: {self}" + (f"\n{self.tail}" if self.tail else "")


def is_eval_file(path: Path) -> bool:
    return path.suffix == ".py"


def run_eval_file(
    path: Path,
    *,
    ks: Keystone | None = None,
    metadata: Mapping[str, Any] | None = None,
    idempotency_key: Callable[[str], str | None] | None = None,
) -> list[EvalResult]:
    """Execute `path` as `__main__` would be (its directory first on sys.path, so it imports its
    neighbours) and return its Evals' results in the order they finished. Without `ks`, an Eval records
    only when KEYSTONE_API_KEY is set. A `KeystoneError` (the server failed a call) passes through."""
    results: list[EvalResult] = []
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)
    try:
        with eval_context(
            ks=ks, metadata=metadata, idempotency_key=idempotency_key, on_result=results.append
        ):
            runpy.run_path(str(path), run_name="__main__")
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise EvalFileError(path, f"exited with {exc.code}", _line_in(path, exc)) from None
    except KeystoneError:  # the server's failure, not the file's: the caller reports it as such
        raise
    except Exception as exc:
        tail = "".join(traceback.format_exception(exc)).rstrip().splitlines()[-TRACEBACK_TAIL_LINES:]
        message = f"{type(exc).__name__}: {exc}"
        raise EvalFileError(path, message, _line_in(path, exc), "\n".join(tail)) from None
    finally:
        sys.path.remove(folder)
    if not results:
        raise EvalFileError(path, "ran no Eval (an eval file calls Eval(...) at module level)")
    return results


def _line_in(path: Path, exc: BaseException) -> int | None:
    """The last line of `path` the exception passed through (the file's own line, not the library's)."""
    target = path.resolve()
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename).resolve() == target:
            line = frame.lineno
    return line
