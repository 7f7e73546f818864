"""The stratified suite test: exact, and equal to Fisher's test for one stratum."""

from __future__ import annotations

import pytest

from polarity_keystone.analysis import fisher_exact_one_sided, stratified_exact_one_sided


@pytest.mark.parametrize(
    "counts", [(5, 5, 0, 5), (10, 10, 2, 10), (3, 7, 3, 4), (0, 4, 0, 4), (4, 4, 4, 4), (12, 20, 4, 9)]
)
def test_the_suite_test_of_one_scenario_is_fishers(counts: tuple[int, int, int, int]) -> None:
    assert stratified_exact_one_sided([counts]) == pytest.approx(fisher_exact_one_sided(*counts), rel=1e-12)


def test_the_suite_test_sums_the_strata_exactly() -> None:
    """Two strata of (1 of 1 vs 0 of 1): each candidate count is 0 or 1 with probability 1/2 given the
    margins, so P(total <= 0) = 1/4; an uninformative stratum changes nothing."""
    assert stratified_exact_one_sided([(1, 1, 0, 1), (1, 1, 0, 1)]) == pytest.approx(0.25)
    assert stratified_exact_one_sided(
        [(1, 1, 0, 1), (1, 1, 0, 1), (3, 3, 2, 2), (0, 0, 1, 1)]
    ) == pytest.approx(0.25)
    assert stratified_exact_one_sided([]) == 1.0
    symmetric = stratified_exact_one_sided([(2, 4, 2, 4)] * 5)  # each stratum symmetric around 2
    assert 0.5 < symmetric < 0.75
