"""The VLA as a policy backend: greedy (temperature 0) or sampled chunks from a checkpoint folder."""

import numpy as np

from wmpo_policy.backends.base import Observation, PolicyBackend, register_backend


@register_backend("vla")
class VLABackend(PolicyBackend):
    def __init__(self, checkpoint: str = "", device: str = "cpu", temperature: float = 0.0, seed: int = 0):
        import torch  # imported here: the policy server starts fast with other backends

        from wmpo_policy.vla.policy import CheckpointError, VLAPolicy

        if not checkpoint:
            raise ValueError("the vla backend needs the parameter checkpoint (a VLA checkpoint folder)")
        try:
            self.policy = VLAPolicy.from_pretrained(checkpoint, device)
        except CheckpointError as error:
            raise ValueError(str(error)) from error
        self.checkpoint = checkpoint
        self.temperature = temperature
        self.generator = torch.Generator(device=device).manual_seed(seed)

    @property
    def policy_id(self) -> str:
        return f"vla/{self.checkpoint}"

    @property
    def normalization_id(self) -> str:
        return self.policy.stats.id

    def reset(self, sampling_seed: int | None = None) -> None:
        if sampling_seed is not None:
            self.generator.manual_seed(sampling_seed)

    def predict_chunk(self, observation: Observation) -> np.ndarray:
        actions, _, _ = self.policy.predict(
            observation.image[None], [observation.instruction], self.temperature, self.generator
        )
        return actions[0].astype(np.float32)
