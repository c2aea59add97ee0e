"""Data-parallel policy updates (torch.distributed, gloo on CPU): two ranks take the same step as
one process on the whole mini-batch, and train-wmpo runs under torchrun."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file
from test_vla_model import images, small_policy
from test_wmpo_training import tiny_setup

from wmpo_policy.vla.policy import VLAPolicy
from wmpo_trainer.configs import GRPOConfig
from wmpo_trainer.data_parallel import DataParallel
from wmpo_trainer.policy_update import Trajectories, grpo_update

torch.set_num_threads(1)
GRPO = GRPOConfig(mini_batch=8, micro_batch=2, learning_rate=0.5, temperature=1.6)


def trajectories(policy) -> Trajectories:
    """8 trajectories of 2 chunks whose old log-probs differ from the policy's (some ratios clip)."""
    rng = np.random.default_rng(1)
    count, chunks, tokens = 8, 2, 56
    frames = images(count * chunks, seed=2).reshape(count, chunks, 64, 64, 3)
    bins = torch.as_tensor(rng.integers(0, 256, (count, chunks, tokens)))
    with torch.no_grad():
        inputs = policy.encode(frames.reshape(-1, 64, 64, 3), ["pick up the red cube"] * count * chunks)
        current = policy.model.token_log_probs(**inputs, action_bins=bins.view(-1, tokens), temperature=1.6)
    shift = torch.as_tensor(rng.normal(0.0, 0.3, (count, chunks, tokens)), dtype=current.dtype)
    return Trajectories(
        observations=frames,
        instructions=["pick up the red cube"] * count,
        bins=bins,
        old_log_probs=current.view(count, chunks, tokens) + shift,
        advantages=torch.as_tensor(rng.normal(size=count), dtype=torch.float32),
        token_mask=torch.as_tensor(rng.random((count, chunks, tokens)) < 0.8),
    )


def update(parallel: DataParallel) -> tuple[dict, dict]:
    policy = small_policy()
    # Plain SGD: the step is the (clipped) gradient itself. Adam's first step, g / (|g| + eps), would
    # blow the last-bit differences of a sum in another order up to lr on near-zero gradients.
    optimizer = torch.optim.SGD(policy.model.parameters(), lr=GRPO.learning_rate)
    stats = grpo_update(policy, optimizer, trajectories(policy), GRPO, np.random.default_rng(0), parallel)
    return {k: v.detach().clone() for k, v in policy.model.state_dict().items()}, stats


def rank_main(rank: int, world_size: int, port: int, output: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        weights, stats = update(DataParallel(rank, world_size))
        if rank == 0:
            save_file({k: v.contiguous() for k, v in weights.items()}, f"{output}/weights.safetensors")
            with open(f"{output}/stats.json", "w") as f:
                json.dump(stats, f)
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_take_the_same_step_as_one_process_on_the_whole_mini_batch(tmp_path):
    initial = {k: v.clone() for k, v in small_policy().model.state_dict().items()}
    single, single_stats = update(DataParallel())
    assert any(not torch.equal(initial[k], single[k]) for k in initial), "the update must move the policy"

    mp.spawn(rank_main, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    parallel = load_file(tmp_path / "weights.safetensors")
    assert parallel.keys() == single.keys()
    for key in single:
        torch.testing.assert_close(parallel[key], single[key], atol=2e-6, rtol=1e-5, msg=key)
    # Statistics are means over micro-batches, which the ranks group differently: close, not equal.
    parallel_stats = json.loads((tmp_path / "stats.json").read_text())
    for key, value in single_stats.items():
        assert abs(parallel_stats[key] - value) < 1e-3, key


def test_train_wmpo_runs_data_parallel_under_torchrun(tmp_path):
    paths = tiny_setup(tmp_path)
    output = tmp_path / "wmpo"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "wmpo_bringup.cli",
        "train-wmpo",
        "--policy",
        paths["policy"],
        "--world-model",
        paths["wm"],
        "--reward-model",
        paths["reward"],
        "--starts",
        str(tmp_path / "starts"),
        "--output",
        str(output),
        "--iterations",
        "1",
        "--max-steps",
        "8",
        "--grpo.group-size",
        "4",
        "--grpo.start-states",
        "2",
        "--sampler-steps",
        "2",
        "--threads",
        "1",
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "terminate called" not in result.stderr  # every rank left the process group before exiting
    history = json.loads((output / "history.json").read_text())
    assert [row["iteration"] for row in history] == [1]
    assert history[0]["informative_groups"] > 0 and np.isfinite(history[0]["loss"])
    before = VLAPolicy.from_pretrained(paths["policy"]).model.state_dict()
    after = VLAPolicy.from_pretrained(output / "checkpoints" / "iter_1").model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
