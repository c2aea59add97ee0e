"""The world model's job configs, apart from the code that runs them so that reading them (``wmpo
COMMAND --help``, a composite job's config) imports no torch or diffusers: ``WMConfig``
(wmpo_worldmodel.train_world_model), ``VAEConfig`` (train_vae), ``RewardConfig`` (train_reward)."""

from dataclasses import dataclass, field

from wmpo_common.actions import CHUNK_HORIZON

# What a reward threshold maximises (train_reward.sweep_threshold): F1 of "succeeded" (WMPO's), or
# balanced accuracy, the mean of the success and the failure recall.
THRESHOLD_CRITERIA = ("f1", "balanced_accuracy")

# The reward model's video classifiers (reward_model.BACKBONES): keypoints of a frozen pretrained
# encoder judged against the episode's first frame, or a tiny VideoMAE trained from scratch.
REWARD_BACKBONES = ("keypoints", "videomae")


def check_threshold_criterion(criterion: str) -> None:
    if criterion not in THRESHOLD_CRITERIA:
        raise ValueError(f"threshold_criterion must be one of {', '.join(THRESHOLD_CRITERIA)}, got {criterion!r}")


@dataclass
class WMConfig:
    """Train the action-conditioned world model on datasets, or continue one (behaviour alignment:
    --init-checkpoint, whose architecture is kept: a conflicting architecture option is refused)."""

    datasets: list[str]  # converted dataset folders (wmpo dataset): demonstrations, or the policy's rollouts
    output: str = "runs/wm"  # folder for checkpoints/step_N, strips/ and TensorBoard (tb/); resumes from it
    steps: int = 3000  # optimizer steps (in all, counting those of a resumed run)
    batch_size: int = 8  # windows per step
    learning_rate: float = 3e-4  # AdamW, constant
    # Architecture (a fresh model's; continuing a checkpoint takes its own, and a different value is refused).
    image_size: int = 64  # px, frames are resized to it
    context_frames: int = 4  # past frames the model sees
    frames_per_pass: int = CHUNK_HORIZON  # frames per denoising pass: K = a chunk per pass, 1 = a frame at a time
    context_noise_level: int = 15  # diffusion timestep of the noise on the context frames (of 1000); 0 = off
    block_out_channels: list[int] = field(default_factory=lambda: [32, 64, 64])  # UNet channels per level
    attention_levels: list[bool] = field(default_factory=lambda: [False, False, True])  # self-attention per level
    action_modulation: bool = True  # AdaGN from an action MLP
    action_planes: bool = True  # actions as constant input channels
    vae: str = ""  # AutoencoderKL folder (wmpo train-vae): the model works on its latents; "" = pixels
    # Training.
    init_checkpoint: str = ""  # continue from this world model (policy-behaviour alignment); "" = a fresh one
    ema_decay: float = 0.999  # of the EMA weights a checkpoint serves
    sampler: str = "ddim"  # sampler of the strips: ddim | dpmsolver | euler | unipc
    sampler_steps: int = 10  # denoising steps per imagined chunk in the strips
    checkpoint_every: int = 500  # steps between checkpoints
    strip_every: int = 500  # steps between real-vs-imagined strips
    log_every: int = 20  # steps between TensorBoard scalars
    seed: int = 0  # windows, noise and initial weights
    threads: int = 2  # torch CPU threads
    device: str = "cpu"  # torch device (cpu, cuda, cuda:N)


@dataclass
class VAEConfig:
    """Train the AutoencoderKL of a latent world model on the frames of datasets (then train-wm --vae)."""

    datasets: list[str]  # converted dataset folders (wmpo dataset) whose frames it learns
    output: str = "runs/vae"  # the AutoencoderKL folder to write
    steps: int = 2000  # optimizer steps
    batch_size: int = 32  # frames per step
    learning_rate: float = 1e-3  # AdamW, constant
    image_size: int = 64  # px, frames are resized to it
    block_out_channels: list[int] = field(default_factory=lambda: [32, 64, 64])  # channels per level (2 down-samplings)
    latent_channels: int = 4  # channels of the latent
    kl_weight: float = 1e-6  # weight of the KL term against the reconstruction loss
    seed: int = 0  # frame order and initial weights
    threads: int = 2  # torch CPU threads
    device: str = "cpu"  # torch device (cpu, cuda, cuda:N)


@dataclass
class RewardFineTuneConfig:
    """The reward model fine-tuned on the aligned world model's re-imagination of the round's
    labelled rollouts (``calibration.fine_tuned``), its verdicts judged out of fold."""

    steps: int = 100  # optimizer steps (0 = no fine-tuning: the threshold alone is fitted)
    batch_size: int = 16  # clips per step
    learning_rate: float = 1e-4  # AdamW, constant
    seed: int = 0  # clip draws, batches


@dataclass
class RewardConfig:
    """Train the video success classifier (reward_model.py) on labelled episodes; its threshold is
    swept on held-out episodes for the best F1 (or balanced accuracy: threshold_criterion)."""

    datasets: list[str]  # converted dataset folders with success and failure episodes
    output: str = "runs/reward"  # folder for reward_model/ and reward_report.json
    steps: int = 600  # optimizer steps
    batch_size: int = 16  # clips per step
    learning_rate: float = 3e-4  # AdamW, constant
    backbone: str = "keypoints"  # keypoints (frozen pretrained encoder, judged against frame 0) | videomae (tiny)
    image_size: int = 64  # px, frames are resized to it
    num_frames: int = 8  # clip length, frames
    negative_stride: int = 0  # negatives: 0 = one random earlier clip per episode (WMPO's), N = every N-th clip
    val_every: int = 4  # every 4th labelled episode is held out for the threshold sweep
    threshold_criterion: str = "f1"  # what the threshold sweep maximises: f1 | balanced_accuracy
    init_checkpoint: str = ""  # a reward checkpoint or local VideoMAEForVideoClassification folder; "" = fresh backbone
    seed: int = 0  # clips and initial weights
    threads: int = 2  # torch CPU threads
    device: str = "cpu"  # torch device (cpu, cuda, cuda:N)

    def __post_init__(self):
        check_threshold_criterion(self.threshold_criterion)
        if self.backbone not in REWARD_BACKBONES:
            raise ValueError(f"backbone must be one of {', '.join(REWARD_BACKBONES)}, got {self.backbone!r}")
