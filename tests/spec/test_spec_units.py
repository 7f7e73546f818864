"""Durations as specs, gate inputs and API bodies write them; a bad one is quoted, never echoed whole."""

from __future__ import annotations

import pytest

from polarity_keystone.spec import parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25), (90, 90)]
)
def test_durations_read_as_seconds(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_a_huge_invalid_duration_is_quoted_cut_short() -> None:
    with pytest.raises(ValueError, match="use a number with a unit") as raised:
        parse_duration("a" * 100_000)
    assert len(str(raised.value)) < 200 and "aaaa…'" in str(raised.value)
