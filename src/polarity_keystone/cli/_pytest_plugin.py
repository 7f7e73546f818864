"""A pytest plugin for eval files: with `--keystone-evals` (or `keystone_evals = true` in the ini file),
pytest collects `eval_*.py` files; each `Eval(...)` the file runs is one test, failing when a case
failed, its report listing the failing cases and their scores. Off by default, so installing Keystone
never changes what an ordinary pytest run collects.

The file runs when it is collected (its Evals run as the module executes, as `ks eval run` runs it); an
Eval records as an experiment when KEYSTONE_API_KEY is set, as it does anywhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ..sdk import EvalResult

FLAG = "--keystone-evals"
INI = "keystone_evals"
FILE_PREFIX = "eval_"


def pytest_addoption(parser: pytest.Parser) -> None:
    help_text = f"collect {FILE_PREFIX}*.py eval files: each Eval(...) they run is a test"
    parser.getgroup("keystone").addoption(FLAG, action="store_true", default=False, help=help_text)
    parser.addini(INI, help_text, type="bool", default=False)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix != ".py" or not file_path.name.startswith(FILE_PREFIX):
        return None
    if not (parent.config.getoption(FLAG) or parent.config.getini(INI)):
        return None
    collector: EvalFile = EvalFile.from_parent(parent, path=file_path)
    return collector


class EvalFile(pytest.File):
    def collect(self) -> Iterator[EvalItem]:
        from ..gate import EvalFileError, run_eval_file

        try:
            results = run_eval_file(self.path)
        except EvalFileError as exc:
            raise self.CollectError(exc.describe()) from None
        for result in results:
            item: EvalItem = EvalItem.from_parent(self, name=result.name, result=result)
            yield item


class EvalFailed(Exception):
    """An Eval with failing cases."""


class EvalItem(pytest.Item):
    def __init__(self, *, result: EvalResult, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.result = result

    def runtest(self) -> None:
        if self.result.failed:
            raise EvalFailed()

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if not isinstance(excinfo.value, EvalFailed):
            return str(super().repr_failure(excinfo, style))
        from ._eval_files import environment_redactor, failure_lines

        result = self.result
        where = f"experiment {result.experiment_id}" if result.experiment_id else "not recorded"
        redact = environment_redactor(os.environ)
        lines = [f"Eval {result.name} ({where}): {result.failed} of {len(result.cases)} cases failed"]
        return "\n".join([*lines, *(redact(line) for line in failure_lines(result))])

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"eval {self.name}"
