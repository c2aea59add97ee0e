"""VLAPolicy: model + tokenizer + action statistics, from images and instructions to actions.

A checkpoint is one folder: config.json + model.safetensors (transformers save_pretrained),
the tokenizer files, and action_stats.json. It is written to a temporary folder and renamed into
place, so a crash never leaves a half-written checkpoint.
"""

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import PreTrainedTokenizerFast

from wmpo_common.actions import ActionStats
from wmpo_common.atomic_folder import atomic_folder
from wmpo_policy.vla.action_tokens import N_BINS, bins_to_actions
from wmpo_policy.vla.configuration import VLAConfig
from wmpo_policy.vla.instruction_encoder import InstructionEncoder
from wmpo_policy.vla.modeling import VLAForActionPrediction
from wmpo_policy.vla.tokenization import prompt

STATS_FILE = "action_stats.json"


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be loaded; the text says what is missing or wrong."""


def images_to_pixels(images: np.ndarray, size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(B, H, W, 3) uint8 RGB -> (B, 3, size, size) float in [-1, 1] (SigLIP normalisation)."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be (B, H, W, 3) uint8, got {images.shape} {images.dtype}")
    pixels = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    if pixels.shape[-2:] != (size, size):
        pixels = F.interpolate(pixels, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return pixels


def crop_and_resize(pixels: torch.Tensor, scale: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Keep ``scale`` of the image area and resize back: a random square per image when a
    ``generator`` is given (training augmentation), else the centre (inference)."""
    if scale >= 1.0:
        return pixels
    size = pixels.shape[-1]
    side = max(1, round(size * scale**0.5))
    out = []
    for image in pixels:
        if generator is None:
            top = left = (size - side) // 2
        else:
            top, left = (int(v) for v in torch.randint(0, size - side + 1, (2,), generator=generator))
        crop = image[:, top : top + side, left : left + side].unsqueeze(0)
        out.append(F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False))
    return torch.cat(out)


def _architecture(config) -> dict:
    """A sub-model config's fields without the bookkeeping ones (model type, versions, dtype)."""
    skip = {"model_type", "architectures", "transformers_version", "_name_or_path", "torch_dtype", "dtype"}
    return {key: value for key, value in config.to_dict().items() if key not in skip}


class VLAPolicy:
    def __init__(self, model: VLAForActionPrediction, tokenizer: PreTrainedTokenizerFast, stats: ActionStats):
        if len(tokenizer) > model.config.text_vocab_size:
            raise CheckpointError(
                f"tokenizer has {len(tokenizer)} tokens > text_vocab_size {model.config.text_vocab_size}"
            )
        self.model = model
        self.tokenizer = tokenizer
        self.stats = stats
        self.instruction_encoder = None
        if model.config.instruction_encoder == "minilm":
            self.instruction_encoder = InstructionEncoder(model.config.instruction_encoder_path, self.device)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # -- checkpoints -------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu") -> "VLAPolicy":
        path = Path(path)
        for required in ("config.json", STATS_FILE, "tokenizer.json"):
            if not (path / required).is_file():
                raise CheckpointError(f"{path} is not a VLA checkpoint: {required} is missing")
        try:
            model = VLAForActionPrediction.from_pretrained(path, use_safetensors=True).to(device).eval()
            tokenizer = PreTrainedTokenizerFast.from_pretrained(path)
            stats = ActionStats.load(path / STATS_FILE)
        except Exception as error:  # noqa: BLE001  corrupt files raise many types (safetensors, json, torch)
            raise CheckpointError(f"cannot load the VLA checkpoint {path}: {error}") from error
        return cls(model, tokenizer, stats)

    @classmethod
    def from_backbones(
        cls,
        vision_path: str | Path,
        language_path: str | Path,
        stats: ActionStats,
        tokenizer_path: str | Path | None = None,
        **config_kwargs,
    ) -> "VLAPolicy":
        """A fresh VLA from pretrained parts in local folders (never the hub): a transformers
        SiglipVisionModel (or a SigLIP checkpoint's vision tower saved alone), a LlamaForCausalLM
        and its tokenizer (default: the language folder). The LM's embeddings grow by N_BINS rows:
        the action bins are the new last ids. The projector and the action queries start random;
        fine-tune with ``wmpo train-bc --init-checkpoint``. ``config_kwargs``: other VLAConfig
        fields (chunk_size, decoding, crop_scale, projector_hidden_size)."""
        from transformers import LlamaForCausalLM, SiglipVisionModel

        vision = SiglipVisionModel.from_pretrained(vision_path, local_files_only=True)
        language = LlamaForCausalLM.from_pretrained(language_path, local_files_only=True)
        tokenizer = PreTrainedTokenizerFast.from_pretrained(tokenizer_path or language_path, local_files_only=True)
        if tokenizer.pad_token is None:  # Llama tokenizers ship without one; prompts are left-padded
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"
        text_vocab_size = max(len(tokenizer), language.config.vocab_size)
        language.resize_token_embeddings(text_vocab_size + N_BINS)
        config = VLAConfig(
            vision_config=_architecture(vision.config),
            text_config=_architecture(language.config),
            text_vocab_size=text_vocab_size,
            **config_kwargs,
        )
        model = VLAForActionPrediction(config)
        model.vision.load_state_dict(vision.state_dict())
        model.language_model.load_state_dict(language.state_dict())
        return cls(model.eval(), tokenizer, stats)

    def save_pretrained(self, path: str | Path, extra: dict[str, dict] | None = None) -> Path:
        """Write the checkpoint atomically (temporary folder, then rename). ``extra`` maps file
        names to state dicts saved with torch.save inside it (e.g. the optimizer, for resuming);
        load them with ``torch.load(..., weights_only=True)``."""
        with atomic_folder(path) as tmp:
            self.model.save_pretrained(tmp, safe_serialization=True)
            self.tokenizer.save_pretrained(tmp)
            self.stats.save(tmp / STATS_FILE)
            for name, state in (extra or {}).items():
                torch.save(state, tmp / name)
        return Path(path)

    # -- inference ---------------------------------------------------------------------------
    def encode(self, images: np.ndarray, instructions: list[str], generator: torch.Generator | None = None) -> dict:
        """Model inputs for a batch of (H, W, 3) uint8 images and their instructions; the crop is
        random when a ``generator`` is given (training), centred otherwise."""
        if len(images) != len(instructions):
            raise ValueError(f"{len(images)} images but {len(instructions)} instructions")
        text = self.tokenizer([prompt(i) for i in instructions], return_tensors="pt", padding=True)
        pixels = images_to_pixels(images, self.model.config.image_size, self.device)
        inputs = {
            "pixel_values": crop_and_resize(pixels, self.model.config.crop_scale, generator),
            "input_ids": text["input_ids"].to(self.device),
            "attention_mask": text["attention_mask"].to(self.device),
        }
        if self.instruction_encoder is not None:
            inputs["instruction_embeddings"] = self.instruction_encoder(list(instructions)).to(self.device)
        return inputs

    def bins_to_actions(self, bins: torch.Tensor) -> np.ndarray:
        """(B, K*D) bins -> (B, K, D) actions in controller units."""
        config = self.model.config
        normalized = bins_to_actions(bins.cpu().numpy()).reshape(-1, config.chunk_size, config.action_dim)
        return self.stats.denormalize(normalized)

    @torch.no_grad()
    def predict(
        self, images: np.ndarray, instructions: list[str], temperature: float = 0.0, generator=None
    ) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
        """Actions (B, K, D) in controller units, the chosen bins (B, K*D) and their log-probs."""
        inputs = self.encode(images, instructions)
        bins, logps = self.model.generate_bins(**inputs, temperature=temperature, generator=generator)
        return self.bins_to_actions(bins), bins, logps
