"""Temporal ensembling (ACT) against hand-computed weights."""

import numpy as np
import pytest

from wmpo_policy.temporal_ensemble import TemporalEnsemble


def test_first_chunk_passes_through_unchanged():
    chunk = np.arange(8 * 7, dtype=float).reshape(8, 7)
    np.testing.assert_allclose(TemporalEnsemble().add(0, chunk), chunk)


def test_overlapping_steps_are_weighted_oldest_first():
    ensemble = TemporalEnsemble(decay=np.log(2.0))  # weights 1, 1/2, 1/4 ... oldest first
    ensemble.add(0, np.full((4, 1), 1.0))
    ensemble.add(2, np.full((4, 1), 4.0))
    blended = ensemble.add(3, np.full((4, 1), 16.0))
    # step 3: predictions 1 (oldest), 4, 16 with weights 1, 1/2, 1/4 -> (1 + 2 + 4) / 1.75 = 4
    # steps 4, 5: predictions 4, 16 with weights 1, 1/2 -> (4 + 8) / 1.5 = 8; step 6: only 16
    np.testing.assert_allclose(blended[:, 0], [4.0, 8.0, 8.0, 16.0])


def test_reset_forgets_and_steps_must_increase():
    ensemble = TemporalEnsemble()
    ensemble.add(0, np.ones((8, 7)))
    with pytest.raises(ValueError, match="increasing steps"):
        ensemble.add(0, np.ones((8, 7)))
    ensemble.reset()
    np.testing.assert_allclose(ensemble.add(0, np.zeros((8, 7))), 0.0)
