"""The imagination gap (wmpo_jobs.imagination_gap): rates, intervals and the loud warning."""

import logging

import numpy as np
import pytest

from wmpo_jobs.imagination_gap import gap_from_counts


def test_an_optimistic_imagination_beyond_the_bound_warns(caplog):
    imagined = np.array([True] * 9 + [False] * 1)  # 0.9 imagined
    real = np.array([True] * 3 + [False] * 7)  # 0.3 real, the same start states
    with caplog.at_level(logging.WARNING):
        gap = gap_from_counts(imagined, real, bound=0.15)
    assert gap.gap == pytest.approx(0.6) and gap.exceeded and gap.imagined_successes == 9
    assert gap.real_95ci[0] < 0.3 < gap.real_95ci[1]
    assert "IMAGINATION GAP +0.60 beyond 0.15" in caplog.text and "optimistic" in gap.warning()


def test_a_gap_within_the_bound_is_quiet(caplog):
    with caplog.at_level(logging.WARNING):
        gap = gap_from_counts([True, False, False, False], [False, True, False, False], bound=0.15)
    assert gap.gap == 0.0 and not gap.exceeded and gap.warning() == "" and caplog.text == ""
    assert gap.to_dict()["exceeded"] is False


def test_outcomes_of_different_states_are_refused():
    with pytest.raises(ValueError, match="same states"):
        gap_from_counts([True, False], [True])
