"""`ks eval run FILE.py`: run eval files (their module-level `Eval(...)` calls) through the Keystone
server `ks eval run` uses for specs, and print per Eval its scorers' figures, its failing cases and its
experiment. Exit 0 when every case passed, 1 when a case failed, 2 when a file raised or ran no Eval.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .. import exit_codes
from ..gate import EvalFileError, run_eval_file
from ..results import RunResults
from ..sdk import EvalCase, EvalResult, Keystone
from ..secrets import Redactor
from ._served import connect

SECRET_SUFFIXES = ("_KEY", "_TOKEN", "_SECRET", "_PASSWORD")
"""Environment variables whose values never reach the output (the judge's and the server's keys)."""
MAX_MESSAGE_CHARS = 300
"""A failing score's message, or a raising task's last traceback line, is cut to this length."""


def environment_redactor(environ: Mapping[str, str]) -> Redactor:
    """Masks the values of the environment's keys, tokens, secrets and passwords."""
    return Redactor(
        {name: value for name, value in environ.items() if name.upper().endswith(SECRET_SUFFIXES)}
    )


def run_files(paths: Sequence[Path], err: Console) -> tuple[int, list[RunResults]]:
    """Run each file's Evals through the server specs run on (KEYSTONE_BASE_URL, else an embedded one),
    printing each; the exit code and the recorded RunResults."""
    with connect(os.environ.get("KEYSTONE_BASE_URL"), err) as ks:
        return _run_files(ks, paths, err)


def _run_files(ks: Keystone, paths: Sequence[Path], err: Console) -> tuple[int, list[RunResults]]:
    redact = environment_redactor(os.environ)
    code = exit_codes.PASSED
    recorded: list[RunResults] = []
    for path in paths:
        try:
            results = run_eval_file(path, ks=ks)
        except EvalFileError as exc:
            err.print(f"[red]eval file failed:[/] {escape(redact(exc.describe()))}")
            code = max(code, exit_codes.INVALID_INPUT)
            continue
        for result in results:
            print_eval(err, result, redact)
            if result.failed:
                code = max(code, exit_codes.FAILED)
            if result.run_results is not None:
                recorded.append(result.run_results)
    return code, recorded


def print_eval(console: Console, result: EvalResult, redact: Callable[[str], str]) -> None:
    where = f" · {result.experiment_id}" if result.experiment_id else " · not recorded"
    table = Table(title=f"{escape(result.name)}{where}", title_justify="left")
    for column in ("scorer", "mean", "p50", "p95", "count"):
        table.add_column(column, justify="left" if column == "scorer" else "right")
    for name, summary in result.summary.items():
        table.add_row(
            escape(name),
            f"{summary.mean:.2f}",
            f"{summary.p50:.2f}",
            f"{summary.p95:.2f}",
            str(summary.count),
        )
    console.print(table)
    style = "red" if result.failed else "green"
    console.print(f"[{style}]{result.passed} cases passed, {result.failed} failed[/]")
    for line in failure_lines(result):
        console.print(escape(redact(line)))


def failure_lines(result: EvalResult) -> list[str]:
    """Per failing case, its id and why: the task's error, or each failing score with its message."""
    lines: list[str] = []
    for case in result.cases:
        if case.passed:
            continue
        lines.append(f"✗ case {case_label(case)}")
        if case.error is not None:
            lines.append(f"  task raised: {_cut(case.error.strip().splitlines()[-1])}")
        for score in case.scores:
            if score.failed:
                figure = "error" if score.score is None else f"{score.score:.2f}"
                why = score.error or score.message
                lines.append(f"  {score.name} {figure}" + (f": {_cut(why)}" if why else ""))
    return lines


def case_label(case: EvalCase) -> str:
    """The case's id when its row had one, else its position (`#3`)."""
    return case.id if case.id is not None else f"#{case.index}"


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"
