"""Write everything a CI job shows, from one GateReport, before the exit code is returned: JUnit, the
Markdown summary (and GitHub's job summary), the results JSON, the PR/MR comment, step outputs, the
GitLab dotenv report and annotations. Every text goes through the redactor on its way out."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from rich.console import Console

from ..secrets import Redactor
from ._comments import CommentError, StickyComment
from ._inputs import GateConfig
from ._junit import write_junit
from ._outputs import Locate, outputs, print_annotations, write_dotenv, write_github_output
from ._report import GateReport, write_report
from ._summary import render


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def publish(
    report: GateReport,
    config: GateConfig,
    sticky: StickyComment | None,
    redact: Redactor,
    environ: Mapping[str, str],
    err: Console,
    out: TextIO,
    locate: Locate | None = None,
) -> str | None:
    """Returns the comment's URL (None without a comment). `locate` finds the spec line of an invariant,
    for annotations (None where the specs are not at hand)."""
    markdown = redact(render(report, config.dashboard()))
    write_junit(config.junit, report.verdict, redact)
    _write(config.summary, markdown)
    if step_summary := environ.get("GITHUB_STEP_SUMMARY"):
        with Path(step_summary).open("a", encoding="utf-8") as handle:
            handle.write(markdown + "\n")
    write_report(config.results_json, report, redact)
    comment_url = None
    if sticky is not None:
        try:
            comment_url = sticky.post(markdown, report.verdict.verdict)
            if sticky.left_alone:
                err.print(f"PR/MR comment left as it is: {sticky.left_alone}", markup=False)
        except CommentError as exc:
            err.print(f"could not write the PR/MR comment: {redact(str(exc))}", markup=False)
    values = outputs(report.verdict, config.results_json, comment_url)
    if github_output := environ.get("GITHUB_OUTPUT"):
        write_github_output(Path(github_output), values, redact)
    write_dotenv(config.dotenv, values, redact)
    if environ.get("GITHUB_ACTIONS") == "true":
        print_annotations(report, redact, out, locate)
    written = ", ".join(str(p) for p in (config.junit, config.summary, config.results_json, config.dotenv))
    err.print(f"wrote {written}", markup=False)
    return comment_url
