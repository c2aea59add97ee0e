"""Normalised actions <-> action tokens: 256 uniform bins over [-1, 1]; the bins are the last 256
ids of the language model's vocabulary (OpenVLA). Bin b covers [-1 + b*w, -1 + (b+1)*w), w = 2/256,
and decodes to its centre, so a round trip moves a value by at most w/2."""

import numpy as np

N_BINS = 256
BIN_WIDTH = 2.0 / N_BINS


def actions_to_bins(normalized: np.ndarray) -> np.ndarray:
    """[-1, 1] values -> bin indices in [0, 255]."""
    bins = np.floor((np.clip(normalized, -1.0, 1.0) + 1.0) / BIN_WIDTH).astype(np.int64)
    return np.clip(bins, 0, N_BINS - 1)


def bins_to_actions(bins: np.ndarray) -> np.ndarray:
    """Bin indices -> bin centres in [-1, 1]."""
    bins = np.asarray(bins)
    if bins.size and (bins.min() < 0 or bins.max() >= N_BINS):
        raise ValueError(f"bin indices must be in [0, {N_BINS - 1}]")
    return -1.0 + (bins + 0.5) * BIN_WIDTH


def bins_to_token_ids(bins: np.ndarray, vocab_size: int) -> np.ndarray:
    return vocab_size - N_BINS + np.asarray(bins)


def token_ids_to_bins(token_ids: np.ndarray, vocab_size: int) -> np.ndarray:
    bins = np.asarray(token_ids) - (vocab_size - N_BINS)
    if bins.size and (bins.min() < 0 or bins.max() >= N_BINS):
        raise ValueError(f"token ids must be action tokens, i.e. in [{vocab_size - N_BINS}, {vocab_size - 1}]")
    return bins
