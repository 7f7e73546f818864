"""requirements/gate.txt, the lock the gate image installs with `pip install --require-hashes`, cannot rot
silently: it pins every runtime dependency of pyproject.toml, directly and transitively, to a version its
specifiers allow, and every pin carries hashes. scripts/lock regenerates it."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "gate.txt"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>\S+)(?: ; (?P<marker>[^\\]+?))? \\$")


def locked() -> dict[str, tuple[Version, list[str]]]:
    """name -> (version, hashes) of every pin in the lock; fails on a line that is neither a pin, a hash,
    a comment nor blank (an unpinned or URL requirement)."""
    pins: dict[str, tuple[Version, list[str]]] = {}
    current = ""
    for line in LOCK.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("--hash=sha256:"):
            assert current, f"a hash before any pin: {line}"
            pins[current][1].append(stripped.removeprefix("--hash=sha256:").rstrip(" \\"))
            continue
        match = PIN.match(line)
        assert match, f"not an exact pin with hashes: {line!r}"
        current = canonicalize_name(match["name"])
        pins[current] = (Version(match["version"]), [])
    return pins


def runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(text) for text in project["dependencies"]]


def test_every_pin_has_hashes() -> None:
    pins = locked()
    assert pins
    for name, (_, hashes) in pins.items():
        assert hashes, f"{name} has no --hash"
        assert all(re.fullmatch(r"[0-9a-f]{64}", digest) for digest in hashes), name


def test_every_dependency_of_pyproject_is_pinned_to_an_allowed_version() -> None:
    pins = locked()
    for requirement in runtime_requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in {LOCK.name}; run scripts/lock"
        assert requirement.specifier.contains(pins[name][0], prereleases=True), (
            f"{LOCK.name} pins {name}=={pins[name][0]}, outside {requirement}; run scripts/lock"
        )


def test_the_dependencies_of_the_pins_are_pinned_too() -> None:
    """Checked through the metadata of the distributions installed here at the locked version (the
    suite runs with the lock's versions; a pin at another version is checked by its own tests)."""
    pins = locked()
    checked = 0
    for name, (version, _) in pins.items():
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        if Version(distribution.version) != version:
            continue
        checked += 1
        for text in distribution.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                dependency = canonicalize_name(requirement.name)
                assert dependency in pins, f"{name} needs {requirement}, not in {LOCK.name}; run scripts/lock"
                assert requirement.specifier.contains(pins[dependency][0], prereleases=True), (name, text)
    assert checked >= len(runtime_requirements())
