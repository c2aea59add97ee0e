"""The reward model's threshold fitted where its verdict is used: on imagined video.

Each labelled real rollout of the policy is re-imagined by the (aligned) world model from its real
first frame under its recorded actions (``fidelity.imagine_episode``); the reward model scores the
imagined video (peak window score); the threshold is the F1-optimal one against the REAL outcomes
(``train_reward.sweep_threshold``), so the policy's near misses that the world model turns into
successes count as false positives. The figure reported for it is cross-validated: k folds, each
fold's verdicts use the threshold fitted on the other folds; the threshold kept is fitted on all.
"""

from dataclasses import asdict, dataclass

import numpy as np

from wmpo_episodes.dataset import EpisodeDataset
from wmpo_worldmodel.fidelity import imagine_episode
from wmpo_worldmodel.train_reward import sweep_threshold


@dataclass
class Calibration:
    threshold: float  # F1-optimal on every re-imagined rollout
    f1: float  # in-sample F1 at that threshold
    cross_validated_f1: float  # each fold judged with the threshold of the other folds
    cross_validated_accuracy: float
    folds: int
    episodes: int
    real_successes: int
    judged_successes: int  # imagined videos over the kept threshold
    scores: list[float]  # peak window score of each re-imagined rollout
    labels: list[int]  # 1 = real success

    @property
    def informative(self) -> bool:
        """Whether the cross-validated verdicts beat always answering the majority outcome. When
        they do not, imagined video carries no outcome signal the threshold could use (the world
        model does not reproduce the outcomes), and a fitted threshold only moves the success rate."""
        majority = max(self.real_successes, self.episodes - self.real_successes) / self.episodes
        return self.cross_validated_accuracy > majority

    def to_dict(self) -> dict:
        return {**asdict(self), "informative": self.informative}


def cross_validated(scores: np.ndarray, labels: np.ndarray, folds: int) -> tuple[float, float]:
    """(F1, accuracy) of verdicts where fold f uses the threshold swept on the other folds
    (folds interleaved: episode i is in fold i % folds)."""
    verdicts = np.zeros(len(scores), dtype=bool)
    for fold in range(folds):
        held = np.arange(len(scores)) % folds == fold
        if held.all():
            raise ValueError("cross-validation needs at least two episodes per threshold")
        threshold = sweep_threshold(scores[~held], labels[~held])["threshold"]
        verdicts[held] = scores[held] >= threshold
    tp = int(np.sum(verdicts & (labels == 1)))
    fp = int(np.sum(verdicts & (labels == 0)))
    fn = int(np.sum(~verdicts & (labels == 1)))
    return 2 * tp / max(1, 2 * tp + fp + fn), float(np.mean(verdicts == (labels == 1)))


def calibrate_threshold(scores, labels, folds: int = 4) -> Calibration:
    """The F1-optimal threshold on imagined-video scores against real labels, cross-validated."""
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels, dtype=int)
    if len(scores) != len(labels) or len(scores) < 2:
        raise ValueError(
            f"need matching scores and labels for at least 2 episodes, got {len(scores)} and {len(labels)}"
        )
    folds = max(2, min(folds, len(scores)))
    best = sweep_threshold(scores, labels)
    f1_cv, accuracy_cv = cross_validated(scores, labels, folds)
    return Calibration(
        threshold=best["threshold"],
        f1=best["f1"],
        cross_validated_f1=f1_cv,
        cross_validated_accuracy=accuracy_cv,
        folds=folds,
        episodes=len(scores),
        real_successes=int(labels.sum()),
        judged_successes=int(np.sum(scores >= best["threshold"])),
        scores=scores.tolist(),
        labels=labels.tolist(),
    )


def reimagined_scores(world_model, reward_model, data: EpisodeDataset, episodes: list[int], **sampling):
    """Peak reward-model score of each episode re-imagined from its real first frame under its
    recorded (executed) actions, and the real labels (1 = success)."""
    scores, labels = [], []
    for index in episodes:
        episode = data.episode(index)
        imagined = imagine_episode(world_model, episode["frames"], episode["actions"], **sampling)
        scores.append(float(reward_model.judge(imagined).scores.max()))
        labels.append(int(episode["record"].outcome == "success"))
    return scores, labels
