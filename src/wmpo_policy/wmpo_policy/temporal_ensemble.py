"""Temporal ensembling of overlapping action chunks (ACT, Zhao et al. 2023), an option of the
policy server for closed-loop execution: query a chunk every few steps and execute the weighted
mean of every stored prediction for each step.

Weights follow ACT: predictions for a step are ordered oldest first and weighted exp(-decay * i),
so decay > 0 favours older predictions (smoother), decay < 0 newer ones (more reactive).
"""

import numpy as np


class TemporalEnsemble:
    def __init__(self, decay: float = 0.01):
        self.decay = decay
        self._chunks: list[tuple[int, np.ndarray]] = []  # (episode step of the first action, (K, D))

    def reset(self) -> None:
        """Forget every prediction (a new episode)."""
        self._chunks = []

    def add(self, start_step: int, chunk: np.ndarray) -> np.ndarray:
        """Store ``chunk`` (K, D), predicted for steps start_step .. start_step + K - 1, and return
        the (K, D) chunk to execute: step j is the weighted mean of all stored predictions for it."""
        chunk = np.asarray(chunk, dtype=np.float64)
        if chunk.ndim != 2:
            raise ValueError(f"chunk must be (K, D), got {chunk.shape}")
        if self._chunks and start_step <= self._chunks[-1][0]:
            raise ValueError(f"chunks must start at increasing steps: {start_step} after {self._chunks[-1][0]}")
        horizon = len(chunk)
        self._chunks = [(s, c) for s, c in self._chunks if s + len(c) > start_step] + [(start_step, chunk)]
        blended = np.empty_like(chunk)
        for j in range(horizon):
            step = start_step + j
            predictions = [c[step - s] for s, c in self._chunks if s <= step < s + len(c)]
            weights = np.exp(-self.decay * np.arange(len(predictions)))
            blended[j] = np.average(predictions, axis=0, weights=weights)
        return blended
