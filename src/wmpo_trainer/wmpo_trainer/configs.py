"""The RL job configs, apart from the code that runs them so that reading them (``wmpo COMMAND
--help``, a composite job's config) imports no torch: ``GRPOConfig`` (wmpo_trainer.grpo, shared by
WMPO in imagination and online GRPO), ``WMPOConfig`` (train_wmpo), ``DPOConfig`` (dpo),
``OnlineGRPOConfig`` (online_grpo)."""

from dataclasses import dataclass, field


@dataclass
class GRPOConfig:
    """GRPO settings (DAPO-style, no KL), shared by WMPO in imagination and online GRPO."""

    group_size: int = 8  # G: rollouts from the same start state (>= 2: advantages compare within a group)
    start_states: int = 8  # groups per WMPO batch after dynamic sampling (the paper's 64 is a GPU size)
    clip_low: float = 0.20  # the probability ratio is clipped to [1 - clip_low, 1 + clip_high]
    clip_high: float = 0.28  # upper clip (DAPO's clip-higher)
    temperature: float = 1.6  # sampling temperature; old and new log-probs use the same one
    # AdamW learning rate, constant. The paper's 5e-6 is for OpenVLA-7B over hundreds of updates; it
    # left the small policy unchanged after an iteration (ratio 1.00), 5e-5 moves it (Table 1, README).
    learning_rate: float = 5e-5
    mini_batch: int = 32  # trajectories per optimizer step
    micro_batch: int = 8  # trajectories per forward/backward (gradient accumulation)
    grad_clip: float = 1.0  # maximum L2 norm of the gradient
    epochs: int = 1  # passes over each batch
    max_sampling_rounds: int = 4  # dynamic sampling gives up filling the batch after this many rounds


@dataclass
class WMPOConfig:
    """WMPO: GRPO of the VLA inside the world model (imagined rollouts judged by the reward model)."""

    policy: str  # VLA checkpoint folder to improve
    world_model: str  # WorldModelPipeline checkpoint folder (wmpo train-wm)
    reward_model: str  # VideoRewardModel checkpoint folder (wmpo train-reward)
    starts: list[str]  # dataset folders whose real episodes give the start frames
    output: str = "runs/wmpo"  # folder for checkpoints/iter_N, history.json and TensorBoard (tb/)
    # JSON of fold models (calibration.HeldOutJudges.save) that judge instead of reward_model, for a
    # reward model fine-tuned on these starts' imagined video: start episode i's rollouts by the
    # model not fine-tuned on it. The folds must cover exactly the starts' episodes, in order.
    held_out_judges: str = ""
    iterations: int = 10  # GRPO iterations (imagine, judge, update)
    max_steps: int = 120  # imagined episode length, control steps: the task's budget (Lift 120)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    real_context_fraction: float = 0.0  # share of groups starting from a real mid-episode frame, in [0, 1]
    sampler: str = "ddim"  # diffusion sampler of the world model: ddim | dpmsolver | euler | unipc
    sampler_steps: int = 10  # denoising steps per imagined chunk
    ray_workers: int = 0  # 0 = imagine in this process; N = N Ray actors (a local Ray instance if none runs)
    seed: int = 0  # start frames, sampling and mini-batch order
    threads: int = 2  # torch CPU threads
    device: str = "cpu"  # torch device (cpu, cuda, cuda:N); under torchrun, cuda = cuda:LOCAL_RANK

    def __post_init__(self):
        if not 0.0 <= self.real_context_fraction <= 1.0:
            raise ValueError(f"real_context_fraction is a share in [0, 1], got {self.real_context_fraction}")


@dataclass
class DPOConfig:
    """DPO baseline: prefer successful over failed rollouts of the policy that collected them."""

    policy: str  # VLA checkpoint folder: the policy that collected the rollouts (also the frozen reference)
    rollouts: list[str]  # dataset folders of its labelled rollouts (wmpo dataset)
    output: str = "runs/dpo"  # folder for the trained policy (policy/) and dpo.json
    beta: float = 0.1  # DPO's inverse temperature on the log-ratio difference
    learning_rate: float = 5e-5  # AdamW, constant: the RL rate measured to move the small policy (GRPOConfig)
    epochs: int = 4  # passes over the preference pairs
    pairs_per_step: int = 4  # preference pairs per optimizer step
    grad_clip: float = 1.0  # maximum L2 norm of the gradient
    seed: int = 0  # pairing and order of the pairs
    threads: int = 2  # torch CPU threads
    device: str = "cpu"  # torch device (cpu, cuda, cuda:N)


@dataclass
class OnlineGRPOConfig:
    """Model-free online GRPO baseline: the same GRPO update on real (simulated-arm) episodes."""

    policy: str  # VLA checkpoint folder to improve
    task: str = "Lift"  # simulated task (wmpo_robot_io.sim.tasks)
    output: str = "runs/online_grpo"  # folder for iter_N/ (episodes), checkpoints/ and history.json
    budget: int = 128  # P: real episodes in all (iterations = P / (groups_per_iteration * G))
    groups_per_iteration: int = 4  # start states per iteration, G episodes each
    first_init_state: int = 5000  # start states first_init_state, +1, ... (apart from evaluation ids)
    max_steps: int = 0  # episode budget, control steps (0 = the task's)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    seed: int = 0  # mini-batch order
    threads: int = 2  # torch CPU threads
    device: str = "cpu"  # torch device of the update and of the policy server collecting (cpu, cuda, cuda:N)
