"""The policy server and its pluggable policy backends (scripted experts now, the VLA next)."""
