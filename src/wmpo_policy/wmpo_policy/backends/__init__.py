"""Policy backends: each turns an Observation into an action chunk (K, 7)."""
