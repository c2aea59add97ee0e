"""GRPO in imagination, baselines and the WMPO loop (filled by the WMPO issue)."""
