"""Actions, defined once for every package: their size, the chunk horizon, the controller's scale,
and their per-dimension normalisation with the 1st/99th percentiles (q01/q99), as OpenVLA.

One ``ActionStats`` is computed from the training episodes, saved with every checkpoint
(``action_stats.json``) and used identically by the policy, the world model and the trainer.
Its ``id`` (a hash of the values) travels in every ActionChunk as ``normalization_id``.
"""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wmpo_common.atomic_json import write_json

ACTION_DIM = 7  # D, OSC_POSE deltas [dx dy dz ax ay az] + gripper (see ActionChunk.msg)
CHUNK_HORIZON = 8  # K, actions per chunk (WMPO/OpenVLA-OFT)
# (metres, radians) per unit of the translation and rotation action components: robosuite
# OSC_POSE's output_max, which every arm backend and the scripted experts follow.
ACTION_SCALE = (0.05, 0.5)
DEGENERATE_RANGE = 1e-6  # a dimension that never varies (e.g. rotation in Lift) maps to 0


@dataclass(frozen=True)
class ActionStats:
    q01: tuple[float, ...]
    q99: tuple[float, ...]

    @classmethod
    def from_actions(cls, actions: np.ndarray) -> "ActionStats":
        """Statistics of (N, D) actions in controller units."""
        actions = np.asarray(actions, dtype=np.float64)
        if actions.ndim != 2 or len(actions) == 0 or not np.all(np.isfinite(actions)):
            raise ValueError(f"need a non-empty finite (N, D) array, got shape {actions.shape}")
        return cls(tuple(np.quantile(actions, 0.01, axis=0)), tuple(np.quantile(actions, 0.99, axis=0)))

    @property
    def id(self) -> str:
        text = json.dumps([list(self.q01), list(self.q99)])
        return "q01q99-" + hashlib.sha256(text.encode()).hexdigest()[:12]

    def normalize(self, actions: np.ndarray) -> np.ndarray:
        """Controller units -> [-1, 1] (clipped)."""
        lo, hi = np.asarray(self.q01), np.asarray(self.q99)
        span = np.where(hi - lo > DEGENERATE_RANGE, hi - lo, 1.0)
        out = 2.0 * (np.asarray(actions, dtype=np.float64) - lo) / span - 1.0
        return np.clip(np.where(hi - lo > DEGENERATE_RANGE, out, 0.0), -1.0, 1.0)

    def denormalize(self, normalized: np.ndarray) -> np.ndarray:
        """[-1, 1] -> controller units."""
        lo, hi = np.asarray(self.q01), np.asarray(self.q99)
        out = (np.asarray(normalized, dtype=np.float64) + 1.0) / 2.0 * (hi - lo) + lo
        return np.where(hi - lo > DEGENERATE_RANGE, out, lo)

    def save(self, path: Path) -> None:
        write_json(path, {"id": self.id, "q01": list(self.q01), "q99": list(self.q99)})

    @classmethod
    def load(cls, path: Path) -> "ActionStats":
        data = json.loads(Path(path).read_text())
        stats = cls(tuple(data["q01"]), tuple(data["q99"]))
        if data.get("id") != stats.id:
            raise ValueError(f"{path}: id {data.get('id')!r} does not match its values ({stats.id})")
        return stats
