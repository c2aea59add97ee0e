"""Action-conditioned video world model and video reward model (filled by the world-model issue)."""
