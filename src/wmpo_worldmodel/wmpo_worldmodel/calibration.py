"""The reward model fitted where its verdict is used: on imagined video.

Each labelled real rollout of the policy is re-imagined by the (aligned) world model from its real
first frame under its recorded actions (``fidelity.imagine_episode``: imagined frame t stands for
real frame t); the reward model scores the imagined video (peak window score); the threshold is
the one that maximises F1 (or balanced accuracy: ``criterion``) against the REAL outcomes
(``train_reward.sweep_threshold``), so the policy's near misses that the world model turns into
successes count as false positives. The figure
reported for it is cross-validated: k folds, each fold's verdicts use the threshold fitted on the
other folds; the threshold kept is fitted on all.

The classifier itself can be fine-tuned the same way (``fine_tuned``): on clips of the re-imagined
rollouts labelled with the real outcome (WMPO's clip labels, ``train_reward.episode_clips``), so
that imagined video of a real failure is taught as failure. Its verdicts are then judged out of
fold (``out_of_fold_scores``): each fold's rollouts (``stratified_folds``) scored by a model
fine-tuned on the others; ``HeldOutJudges`` keeps those fold models, so that verdicts on the same
rollouts' start states (the imagination gap before GRPO) are out of fold too.
"""

import copy
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.stats import binomtest

from wmpo_episodes.dataset import EpisodeDataset, EpisodeRecord
from wmpo_worldmodel.configs import RewardFineTuneConfig
from wmpo_worldmodel.fidelity import auroc, imagine_episode
from wmpo_worldmodel.reward_model import VideoRewardModel
from wmpo_worldmodel.train_reward import Clip, episode_clips, fit_clips, sweep_threshold

SIGNIFICANCE = 0.05  # of the test that a fitted judge beats the majority outcome
Video = tuple[np.ndarray, EpisodeRecord]  # uint8 (T+1, H, W, 3) frames (real or imagined), the real record


@dataclass
class Calibration:
    threshold: float  # the criterion's best on every re-imagined rollout
    criterion: str  # what the threshold maximises: f1 | balanced_accuracy
    f1: float  # in-sample F1 at that threshold
    cross_validated_f1: float  # each fold judged with the threshold of the other folds
    cross_validated_accuracy: float
    auroc: float | None  # of the scores against the real outcomes: could any threshold separate them?
    folds: int
    episodes: int
    real_successes: int
    judged_successes: int  # imagined videos over the kept threshold
    scores: list[float]  # peak window score of each re-imagined rollout
    labels: list[int]  # 1 = real success

    @property
    def majority_p_value(self) -> float:
        """One-sided binomial test of the cross-validated verdicts against always answering the
        majority outcome: the chance of this many right verdicts or more by that rate alone."""
        majority = max(self.real_successes, self.episodes - self.real_successes) / self.episodes
        right = round(self.cross_validated_accuracy * self.episodes)
        return float(binomtest(right, self.episodes, majority, alternative="greater").pvalue)

    @property
    def informative(self) -> bool:
        """Whether the cross-validated verdicts beat always answering the majority outcome, at
        p < ``SIGNIFICANCE``. When they do not, imagined video carries no outcome signal the
        threshold could use (the world model or the judge does not reproduce the outcomes), and a
        fitted threshold only moves the success rate (one more right verdict of 32 is chance)."""
        return self.majority_p_value < SIGNIFICANCE

    def to_dict(self) -> dict:
        return {**asdict(self), "majority_p_value": self.majority_p_value, "informative": self.informative}


def cross_validated_verdicts(scores: np.ndarray, labels: np.ndarray, folds: int, criterion: str) -> np.ndarray:
    """(N,) bool verdicts where fold f uses the threshold swept (by ``criterion``) on the other
    folds (folds interleaved: episode i is in fold i % folds)."""
    verdicts = np.zeros(len(scores), dtype=bool)
    for fold in range(folds):
        held = np.arange(len(scores)) % folds == fold
        if held.all():
            raise ValueError("cross-validation needs at least two episodes per threshold")
        threshold = sweep_threshold(scores[~held], labels[~held], criterion)["threshold"]
        verdicts[held] = scores[held] >= threshold
    return verdicts


def cross_validated(scores: np.ndarray, labels: np.ndarray, folds: int, criterion: str) -> tuple[float, float]:
    """(F1, accuracy) of the cross-validated verdicts (``cross_validated_verdicts``)."""
    verdicts = cross_validated_verdicts(scores, labels, folds, criterion)
    tp = int(np.sum(verdicts & (labels == 1)))
    fp = int(np.sum(verdicts & (labels == 0)))
    fn = int(np.sum(~verdicts & (labels == 1)))
    return 2 * tp / max(1, 2 * tp + fp + fn), float(np.mean(verdicts == (labels == 1)))


def calibrate_threshold(scores, labels, folds: int, criterion: str) -> Calibration:
    """The threshold on imagined-video scores against real labels that maximises ``criterion``
    (f1 | balanced_accuracy), cross-validated."""
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels, dtype=int)
    if len(scores) != len(labels) or len(scores) < 2:
        raise ValueError(
            f"need matching scores and labels for at least 2 episodes, got {len(scores)} and {len(labels)}"
        )
    folds = max(2, min(folds, len(scores)))
    best = sweep_threshold(scores, labels, criterion)
    f1_cv, accuracy_cv = cross_validated(scores, labels, folds, criterion)
    return Calibration(
        threshold=best["threshold"],
        criterion=criterion,
        f1=best["f1"],
        cross_validated_f1=f1_cv,
        cross_validated_accuracy=accuracy_cv,
        auroc=auroc(scores, labels),
        folds=folds,
        episodes=len(scores),
        real_successes=int(labels.sum()),
        judged_successes=int(np.sum(scores >= best["threshold"])),
        scores=scores.tolist(),
        labels=labels.tolist(),
    )


def reimagine(world_model, data: EpisodeDataset, episodes: list[int], **sampling) -> list[Video]:
    """Each episode re-imagined from its real first frame under its recorded (executed) actions:
    (uint8 (T+1, S, S, 3) imagined frames, the real record with its outcome and success step)."""
    videos = []
    for index in episodes:
        episode = data.episode(index)
        imagined = imagine_episode(world_model, episode["frames"], episode["actions"], **sampling)
        videos.append((imagined, episode["record"]))
    return videos


def peak_scores(reward: VideoRewardModel, videos) -> tuple[list[float], list[int]]:
    """Peak window score of each (frames, record) video, and the real labels (1 = success)."""
    scores = [float(reward.judge(frames).scores.max()) for frames, _ in videos]
    return scores, [int(record.outcome == "success") for _, record in videos]


def fine_tuned(reward: VideoRewardModel, videos, tuning: RewardFineTuneConfig) -> VideoRewardModel:
    """A copy of ``reward`` fine-tuned on the clips of (imagined frames, real record) videos,
    labelled by the real outcome; ``reward`` itself is unchanged. Raises ValueError without both a
    success and a failure among the videos."""
    rng = np.random.default_rng(tuning.seed)
    tuned = copy.deepcopy(reward)
    clips = [c for i, (_, record) in enumerate(videos) for c in episode_clips(record, 0, i, tuned.num_frames, rng)]

    def episode_frames(clip: Clip) -> np.ndarray:
        return videos[clip.episode][0]

    with torch.random.fork_rng():  # seeded here, the caller's torch random state untouched
        torch.manual_seed(tuning.seed)
        fit_clips(tuned, clips, episode_frames, tuning.steps, tuning.batch_size, tuning.learning_rate, rng)
    return tuned


def stratified_folds(labels, folds: int) -> np.ndarray:
    """Fold of each episode: successes, then failures, dealt round-robin into ``folds`` folds, so
    that every fold's complement holds both outcomes when each outcome has two episodes or more."""
    labels = np.asarray(labels, dtype=int)
    order = np.concatenate([np.flatnonzero(labels == 1), np.flatnonzero(labels != 1)])
    assigned = np.zeros(len(labels), dtype=int)
    assigned[order] = np.arange(len(labels)) % max(2, min(folds, len(labels)))
    return assigned


def fold_models(
    reward: VideoRewardModel, videos, fold: np.ndarray, tuning: RewardFineTuneConfig
) -> list[VideoRewardModel]:
    """Model f is ``reward`` fine-tuned on the videos outside fold f (``fold``: each video's fold).
    (``calibrate_threshold`` cross-validates a threshold on interleaved folds; these are stratified
    because a fine-tuning set needs both outcomes.)"""
    return [
        fine_tuned(reward, [v for v, g in zip(videos, fold, strict=True) if g != f], tuning)
        for f in range(fold.max() + 1)
    ]


def out_of_fold_scores(models: list[VideoRewardModel], videos, fold: np.ndarray) -> np.ndarray:
    """Peak score of each video by the model that did not see it: models[fold of the video]."""
    return np.array([float(models[g].judge(frames).scores.max()) for (frames, _), g in zip(videos, fold, strict=True)])


@dataclass
class HeldOutJudges:
    """Out-of-fold verdicts on the P rollouts' start states: episode i is judged by
    ``models[fold[i]]``, fine-tuned without fold ``fold[i]``, at a threshold swept on the other
    folds' out-of-fold scores. The model was not fine-tuned on episode i's imagined video, though
    the reward model it started from may have trained on its real video; the threshold saw i only
    through the other fold models' training (not a fully nested cross-validation)."""

    models: list[VideoRewardModel]
    fold: np.ndarray  # (N,) fold of each episode, as ``stratified_folds``

    @classmethod
    def fitted(cls, models: list[VideoRewardModel], scores, labels, fold, criterion: str) -> "HeldOutJudges":
        """Set each fold model's threshold by ``criterion`` on the other folds' out-of-fold ``scores``."""
        scores, labels, fold = np.asarray(scores, dtype=float), np.asarray(labels, dtype=int), np.asarray(fold)
        for f, model in enumerate(models):
            model.threshold = sweep_threshold(scores[fold != f], labels[fold != f], criterion)["threshold"]
        return cls(models, fold)

    def rollouts(self, count: int) -> "HeldOutJudges":
        """The judges of the first ``count`` episodes (the rollouts, before any appended videos)."""
        return HeldOutJudges(self.models, self.fold[:count])

    def episode_judges(self) -> list[VideoRewardModel]:
        """The judge of each episode's imagined rollouts, in episode order: its fold's model."""
        return [self.models[f] for f in self.fold]

    def save(self, folder: str | Path) -> dict:
        """Each model as a reward checkpoint ``folder``/fold_f; returns the JSON that ``load`` takes."""
        paths = [str(model.save_pretrained(Path(folder) / f"fold_{f}")) for f, model in enumerate(self.models)]
        return {"models": paths, "fold": self.fold.tolist()}

    @classmethod
    def load(cls, saved: dict, device: str = "cpu") -> "HeldOutJudges":
        models = [VideoRewardModel.from_pretrained(path, device) for path in saved["models"]]
        return cls(models, np.asarray(saved["fold"], dtype=int))
