"""The imagination gap: does the world model + reward model agree with reality for this policy?

For a policy and a set of real episodes: imagine one rollout per episode from its real first
frame, or from a real mid-episode keyframe with the steps it had left (the starts GRPO draws with
``real_context_fraction``), the policy acting, the world model imagining, the reward model judging;
and compare the imagined success rate with the real success rate of the same episodes. WMPO's premise is that the
aligned world model reproduces the policy's failures; a gap beyond ``bound`` means GRPO is
optimising successes that are not real, and is reported loudly.
"""

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from wmpo_common.success_rate import wilson_interval
from wmpo_episodes.dataset import EpisodeDataset

log = logging.getLogger(__name__)
DEFAULT_BOUND = 0.15  # |imagined - real| beyond this is a warning


@dataclass
class ImaginationGap:
    imagined_successes: int
    real_successes: int
    episodes: int
    imagined_rate: float
    imagined_95ci: tuple[float, float]
    real_rate: float
    real_95ci: tuple[float, float]
    gap: float  # imagined - real
    bound: float
    temperature: float  # the policy's, in imagination and (should be) in reality
    real_context_fraction: float = 0.0  # share of rollouts started from a real keyframe, not the first frame
    out_of_fold: bool = False  # judged by fold models not fine-tuned on these episodes' imagined video
    imagined_scores: list[float] = field(default_factory=list)  # peak window score of each imagined rollout

    @property
    def exceeded(self) -> bool:
        return abs(self.gap) > self.bound

    def warning(self) -> str:
        """The loud line for logs and reports ('' within the bound)."""
        if not self.exceeded:
            return ""
        side = "optimistic" if self.gap > 0 else "pessimistic"
        return (
            f"IMAGINATION GAP {self.gap:+.2f} beyond {self.bound:.2f}: imagined {self.imagined_rate:.2f} vs real "
            f"{self.real_rate:.2f} on {self.episodes} start states ({side}; GRPO optimises what the world and "
            "reward models call success)"
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "exceeded": self.exceeded}


def gap_from_counts(
    imagined: np.ndarray,
    real: np.ndarray,
    bound: float = DEFAULT_BOUND,
    temperature: float = 0.0,
    real_context_fraction: float = 0.0,
    out_of_fold: bool = False,
    imagined_scores=(),
) -> ImaginationGap:
    """imagined, real: bool (N,) outcomes on the same N start states; imagined_scores: the judge's
    peak score of each imagined rollout (recorded, so that a threshold can be refitted offline)."""
    imagined, real = np.asarray(imagined, dtype=bool), np.asarray(real, dtype=bool)
    if imagined.shape != real.shape or imagined.ndim != 1 or not len(real):
        raise ValueError(f"need imagined and real outcomes of the same states, got {imagined.shape} and {real.shape}")
    n, k_imagined, k_real = len(real), int(imagined.sum()), int(real.sum())
    gap = ImaginationGap(
        imagined_successes=k_imagined,
        real_successes=k_real,
        episodes=n,
        imagined_rate=k_imagined / n,
        imagined_95ci=wilson_interval(k_imagined, n),
        real_rate=k_real / n,
        real_95ci=wilson_interval(k_real, n),
        gap=(k_imagined - k_real) / n,
        bound=bound,
        temperature=temperature,
        real_context_fraction=real_context_fraction,
        out_of_fold=out_of_fold,
        imagined_scores=[float(s) for s in imagined_scores],
    )
    if gap.exceeded:
        log.warning(gap.warning())
    return gap


def measure_gap(
    policy,
    world_model,
    reward_model,
    real: EpisodeDataset,
    max_steps: int,
    temperature: float,
    bound: float = DEFAULT_BOUND,
    sampler_steps: int = 10,
    batch: int = 8,
    seed: int = 0,
    real_context_fraction: float = 0.0,
    judges=None,
) -> ImaginationGap:
    """Imagine one rollout per real episode of ``real`` with ``policy`` at ``temperature`` (as the
    real episodes were run), judge it, and compare with the real labels. Each rollout starts from
    the episode's first frame, or with probability ``real_context_fraction`` from a uniformly drawn
    real keyframe (seeded) with the ``max_steps - step`` steps the real episode had left.
    ``judges`` (``calibration.HeldOutJudges`` over ``real``'s episodes): each rollout judged out of
    fold instead of by ``reward_model``, for a reward model fitted on these same episodes."""
    from wmpo_worldmodel.imagination import imagine, judge_rollouts, rollout_start

    records = real.records
    if judges is not None and len(judges.fold) != len(records):
        raise ValueError(f"the held-out judges cover {len(judges.fold)} episodes, {real.path} has {len(records)}")
    episode_judges = judges.episode_judges() if judges is not None else [reward_model] * len(records)
    for judge in set(episode_judges):
        judge.refuse_keyframe_starts(real_context_fraction)
    generator, rng = torch.Generator().manual_seed(seed), np.random.default_rng(seed)
    context_frames = world_model.unet.config.context_frames
    verdicts = []
    for start in range(0, len(records), batch):
        indices = range(start, min(start + batch, len(records)))
        contexts, budgets = [], []
        for i in indices:
            frames = np.asarray(real.episode(i)["frames"])
            context, budget = rollout_start(frames, max_steps, real_context_fraction, context_frames, rng)
            contexts.append(context)
            budgets.append(budget)
        rollouts = imagine(
            world_model,
            policy,
            np.stack(contexts),
            [records[i].instruction for i in indices],
            np.array(budgets),
            temperature=temperature,
            sampler_steps=sampler_steps,
            generator=generator,
        )
        verdicts += judge_rollouts(rollouts, [episode_judges[i] for i in indices])
    outcomes = np.array([r.outcome == "success" for r in records])
    imagined = np.array([verdict.success for verdict in verdicts])
    peaks = [float(verdict.scores.max()) for verdict in verdicts]
    return gap_from_counts(imagined, outcomes, bound, temperature, real_context_fraction, judges is not None, peaks)


def load_and_measure(
    policy_path: str,
    world_model_path: str,
    reward_path: str,
    real_dataset: str,
    device: str = "cpu",
    held_out_judges: dict | None = None,
    **kwargs,
) -> ImaginationGap:
    """``measure_gap`` from checkpoint folders (the loop's phases store paths), the models on
    ``device``; ``held_out_judges``: a saved ``HeldOutJudges`` (its ``save``) to judge out of fold."""
    from wmpo_policy.vla.policy import VLAPolicy
    from wmpo_worldmodel.calibration import HeldOutJudges
    from wmpo_worldmodel.pipeline import WorldModelPipeline
    from wmpo_worldmodel.reward_model import VideoRewardModel

    return measure_gap(
        VLAPolicy.from_pretrained(policy_path, device),
        WorldModelPipeline.load(world_model_path, device),
        VideoRewardModel.from_pretrained(reward_path, device),
        EpisodeDataset(Path(real_dataset)),
        judges=HeldOutJudges.load(held_out_judges, device) if held_out_judges else None,
        **kwargs,
    )
