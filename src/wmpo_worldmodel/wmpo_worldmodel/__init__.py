"""Action-conditioned video world model and video reward model (plain PyTorch, no ROS)."""
