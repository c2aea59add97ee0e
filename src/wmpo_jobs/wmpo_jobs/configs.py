"""The configs of the jobs that run training, apart from the code so that reading them (``wmpo
COMMAND --help``, the trainer node's parameter defaults) imports no torch: ``LoopConfig``
(wmpo_jobs.loop), ``StudyConfig`` (wmpo_jobs.study)."""

from dataclasses import dataclass, field

from wmpo_trainer.configs import GRPOConfig
from wmpo_worldmodel.configs import RewardConfig, RewardFineTuneConfig, check_threshold_criterion


@dataclass
class LoopConfig:
    """The WMPO loop on the simulated arm, resumable: collect P real episodes with the current
    policy, align the world model on them, train the reward model, GRPO in imagination, evaluate on
    held-out start states, deploy (if the greedy drift is within drift_limit and the held-out
    success did not fall by more than max_success_drop); repeat."""

    task: str  # simulated task (wmpo_robot_io.sim.tasks), e.g. Lift
    policy: str  # VLA checkpoint folder of the base policy (round 0)
    world_model: str  # world model checkpoint folder pretrained on the demonstrations (wmpo train-wm)
    demos: str  # dataset folder of expert demonstrations (successes for the reward model)
    output: str = "runs/loop"  # folder of the rounds (round_<r>/), summary.json, report.md and current/
    rounds: int = 1  # lifelong rounds
    budget: int = 128  # P: real episodes collected per round
    collect_first_init_state: int = 3000  # collection start states (apart from the evaluation ids)
    collect_temperature: float = 1.0  # the policy's sampling temperature while collecting
    eval_init_states: str = "1000:1050"  # held-out initial-state ids, 'first:last' (last excluded) or 'a,b,c'
    max_steps: int = 0  # episode budget in the simulator, control steps (0 = the task's); imagination uses the same
    align_steps: int = 500  # world-model alignment steps per round on the collected rollouts
    reward_steps: int = 600  # reward-model training steps per round
    wmpo_iterations: int = 4  # GRPO iterations in imagination per round
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    sampler_steps: int = 10  # denoising steps per imagined chunk
    # Share of imagined rollouts (GRPO's and the gap's) started from a real keyframe of the round's
    # episodes with the steps it had left, instead of their first frame (WoVR's keyframe starts).
    real_context_fraction: float = 0.0
    # Deployment gate: the share of greedy action tokens the new policy changes on the round's real
    # successful episodes (wmpo_trainer.greedy_drift); beyond it the previous policy stays deployed.
    drift_limit: float = 0.05
    # and the new policy's greedy success on the held-out states may be at most this much below the
    # deployed policy's on the same states (0: any measured drop keeps the deployed policy).
    max_success_drop: float = 0.0
    gap_bound: float = 0.15  # |imagined - real| success beyond this is a loud warning (wmpo_jobs.imagination_gap)
    calibration_folds: int = 4  # cross-validation folds of the reward threshold fitted on imagined video
    # what every reward threshold maximises (real, imagined): f1 | balanced_accuracy
    threshold_criterion: str = RewardConfig.threshold_criterion
    # The reward model fine-tuned on the re-imagined rollouts (labelled by the real outcome), kept
    # when its out-of-fold verdicts beat the majority outcome (wmpo_worldmodel.calibration).
    reward_fine_tune: RewardFineTuneConfig = field(default_factory=RewardFineTuneConfig)
    threads: int = 2  # torch CPU threads
    device: str = "cpu"  # torch device of every phase: training, imagination and the policy server (cpu, cuda, cuda:N)

    def __post_init__(self):
        if not 0.0 <= self.real_context_fraction <= 1.0:
            raise ValueError(f"real_context_fraction is a share in [0, 1], got {self.real_context_fraction}")
        check_threshold_criterion(self.threshold_criterion)


@dataclass
class StudyConfig:
    """World-model fidelity study: pretrain with and without context noise, align each on the base
    policy's rollouts, and report all four on held-out demonstrations and rollouts."""

    demos: str  # dataset folder of expert demonstrations (wmpo dataset), e.g. runs/base/Lift/data
    rollouts: str  # folder of the base policy's episode bags, e.g. runs/base/Lift/eval/episodes
    output: str = "runs/wm_study"  # folder for the splits (data/), the models and report/
    held_out_demos: int = 10  # the last demonstrations, kept out of training for the report
    pretrain_steps: int = 2000  # world-model pretraining steps on the demonstrations
    align_steps: int = 500  # alignment steps on half of the rollouts
    reward_steps: int = 600  # reward-model training steps
    context_noise_level: int = 15  # the noised variant's context noise (diffusion timestep of 1000); the other has 0
    batch_size: int = 8  # world-model windows per step
    sampler: str = "ddim"  # sampler of the report's imagination: ddim | dpmsolver | euler | unipc
    sampler_steps: int = 10  # denoising steps per imagined chunk
    report_episodes: int = 0  # held-out episodes in the report (0 = every one)
    threads: int = 2  # torch CPU threads
    device: str = "cpu"  # torch device of training and imagination (cpu, cuda, cuda:N)
