"""Training by RL: GRPO in imagination (data parallel), the DPO and online-GRPO baselines, the
greedy drift. The loop that runs them each round is wmpo_jobs.loop."""
