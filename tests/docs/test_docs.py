"""The docs check: the MkDocs site builds with `--strict`, and every spec example in it is a valid spec.

Which ```yaml blocks are specs is decided by their top-level keys, so an example cannot opt out by
forgetting a marker: a block whose top level is a mapping with at least one key of the spec model
(`services`, `invariants`, `network`, ...; `description` alone does not count, CI files have one too)
is a Keystone spec or a part of one. With `version` it is a whole spec and is validated as written;
without, it is a part: the keys of a minimal spec that it does not give are appended, and the whole is
validated. Other YAML blocks (GitHub workflows, GitLab CI files) are only required to be YAML.

Validation is the real loader, `load_spec`, on a temporary file. The local files a spec names
(`agent.path`, a fixture's `file` or `source`, a custom check's `script`) are created empty beside it,
and only those, so a spec naming a path outside its directory still fails as it would for a user.
The README's examples are checked the same way.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from polarity_keystone.spec import Spec, SpecError, load_spec, local_paths

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]

_FENCE = re.compile(r"^(?P<indent>[ \t]*)```ya?ml[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
_SPEC_KEYS = {field.alias or name for name, field in Spec.model_fields.items()} - {"description"}
_MINIMAL_SPEC = {
    "version": 1,
    "id": "docs-example",
    "base": "ubuntu:24.04",
    "task": {"prompt": "Create hello.txt."},
    "agent": {"type": "cli", "command": "touch hello.txt"},
    "invariants": {"hello": {"check": {"type": "file_exists", "path": "hello.txt"}}},
}


@dataclass(frozen=True)
class YamlBlock:
    page: Path
    line: int
    text: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    def data(self) -> object:
        return yaml.safe_load(self.text)

    def is_spec(self) -> bool:
        try:
            data = self.data()
        except yaml.YAMLError:
            return False  # test_yaml_examples_are_yaml names it
        return isinstance(data, dict) and bool(_SPEC_KEYS & set(data))

    def as_spec(self) -> str:
        """The spec text to validate: the block itself, or the block followed by the minimal spec's keys
        it does not give; either way the block's lines keep their numbers."""
        data = self.data()
        assert isinstance(data, dict)
        if "version" in data:
            return self.text
        missing = {key: value for key, value in _MINIMAL_SPEC.items() if key not in data}
        return self.text + yaml.safe_dump(missing, sort_keys=False)

    def located(self, error: SpecError) -> str:
        """The loader's issues at their lines in the page (the block's body starts one line below)."""
        return "\n".join(
            f"{self.where.rsplit(':', 1)[0]}:{self.line + issue.line if issue.line else self.line}: "
            f"{issue.field}: {issue.message}" + (f" — hint: {issue.suggestion}" if issue.suggestion else "")
            for issue in error.issues
        )


def yaml_blocks(pages: list[Path]) -> list[YamlBlock]:
    blocks = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for match in _FENCE.finditer(text):
            indent = match["indent"]
            body = "".join(line.removeprefix(indent) for line in match["body"].splitlines(keepends=True))
            blocks.append(YamlBlock(page, text.count("\n", 0, match.start()) + 1, body))
    return blocks


BLOCKS = yaml_blocks(PAGES)
SPEC_BLOCKS = [block for block in BLOCKS if block.is_spec()]


def validate_example(block: YamlBlock, directory: Path) -> None:
    """Load `block` with the real loader from `directory`, its local files stubbed; raises SpecError."""
    text = block.as_spec()
    try:
        parsed = Spec.model_validate(yaml.safe_load(text))
    except ValidationError:
        parsed = None  # the loader reports it, with a line
    for _, value, kind in local_paths(parsed) if parsed else []:
        stub = directory / value
        if not stub.resolve().is_relative_to(directory.resolve()):
            continue
        if kind == "directory":
            stub.mkdir(parents=True, exist_ok=True)
        else:
            stub.parent.mkdir(parents=True, exist_ok=True)
            stub.touch()
    path = directory / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    load_spec(path)


@pytest.mark.parametrize("block", BLOCKS, ids=[block.where for block in BLOCKS])
def test_yaml_examples_are_yaml(block: YamlBlock) -> None:
    block.data()


@pytest.mark.parametrize("block", SPEC_BLOCKS, ids=[block.where for block in SPEC_BLOCKS])
def test_spec_examples_validate(block: YamlBlock, tmp_path: Path) -> None:
    try:
        validate_example(block, tmp_path)
    except SpecError as exc:
        pytest.fail(f"a spec example in the docs does not validate:\n{block.located(exc)}")


def test_every_spec_page_has_a_checked_example() -> None:
    """The classification finds the examples: a page of the spec reference without one would mean the
    rule above stopped recognising them (and every example would pass unchecked)."""
    pages = {block.page for block in SPEC_BLOCKS}
    missing = [page.name for page in sorted((DOCS / "spec").glob("*.md")) if page not in pages]
    assert not missing, f"no spec example recognised in docs/spec/{missing}"
    assert ROOT / "README.md" in pages


def test_a_broken_example_fails(tmp_path: Path) -> None:
    """The check is not vacuous: a part with an undeclared service is refused, as a user's spec is."""
    broken = YamlBlock(DOCS / "broken.md", 1, "forbidden:\n  http_except: [stripe]\n")
    assert broken.is_spec()
    with pytest.raises(SpecError, match="service `stripe` is not declared"):
        validate_example(broken, tmp_path)


def test_the_site_builds_strict(tmp_path: Path) -> None:
    """Offline and in seconds: the theme loads no web fonts and no plugin fetches anything."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")]
    build = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stdout + build.stderr
    assert (tmp_path / "site" / "spec" / "services" / "index.html").is_file()
