"""Action-conditioned video world model and video reward model (plain PyTorch, no ROS)."""

from wmpo_worldmodel.models import ActionConditionedUNet

__all__ = ["ActionConditionedUNet"]
