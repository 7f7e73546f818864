"""What a refused replay names of the spec's local files: each changed, added or removed path, in path
order, at most 20 of them and then how many more."""

from __future__ import annotations

from polarity_keystone.cli._replay_changes import SHOWN, describe
from polarity_keystone.sdk import SpecBundleFile
from polarity_keystone.spec import BundleFile


def test_changed_added_and_removed_paths_are_named_in_path_order() -> None:
    original = {
        "agent/refund.py": SpecBundleFile(sha256="a" * 64, size=1, mode=0o644),
        "agent/run.sh": SpecBundleFile(sha256="b" * 64, size=1, mode=0o644),
        "checks/old.sh": SpecBundleFile(sha256="c" * 64, size=1, mode=0o644),
        "same.txt": SpecBundleFile(sha256="d" * 64, size=1, mode=0o644),
    }
    local = {
        "agent/refund.py": BundleFile("e" * 64, 2, 0o644),
        "agent/run.sh": BundleFile("b" * 64, 1, 0o755),  # made executable: a change too
        "fixtures/seed.sql": BundleFile("f" * 64, 1, 0o644),
        "same.txt": BundleFile("d" * 64, 1, 0o644),
    }

    assert describe(original, local) == (
        "agent/refund.py changed, agent/run.sh changed, checks/old.sh removed, fixtures/seed.sql added"
    )


def test_past_the_first_20_paths_the_rest_are_counted() -> None:
    local = {f"data/{index:02}.txt": BundleFile("0" * 64, 1, 0o644) for index in range(SHOWN + 5)}

    listing = describe({}, local)

    assert listing.count(" added") == SHOWN
    assert "data/19.txt added" in listing and "data/20.txt" not in listing
    assert listing.endswith(" and 5 more")
