"""Data-parallel policy updates with torch.distributed, launched by torchrun.

  torchrun --standalone --nproc-per-node 4 -m wmpo_bringup.cli train-wmpo --device cuda ...

Every rank holds the whole policy and its optimizer. Rank 0 imagines the batch (itself or through
Ray actors), broadcasts it, and writes logs and checkpoints; in each optimizer step every rank
takes its share of the mini-batch (``mini[rank::world_size]``), and the gradients are summed
across ranks before clipping and the step, so all ranks take the same step as one process would
on the whole mini-batch. Without torchrun (WORLD_SIZE unset) it is the single-process update.
Backends: gloo on CPU, nccl on CUDA (each rank on ``cuda:LOCAL_RANK``).
"""

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DataParallel:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, indices):
        """This rank's share of a mini-batch's indices (every world_size-th, from its rank)."""
        return indices[self.rank :: self.world_size]


SINGLE_PROCESS = DataParallel()


def init_data_parallel(device: str) -> tuple[DataParallel, str]:
    """Join the process group torchrun describes (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR/PORT);
    returns (this rank's DataParallel, its device). A single process when WORLD_SIZE is unset or 1."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return SINGLE_PROCESS, device
    if device.startswith("cuda"):
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return DataParallel(dist.get_rank(), dist.get_world_size()), device


def leave_data_parallel(parallel: DataParallel) -> None:
    """Wait for every rank (rank 0 writes the last checkpoint), then leave the process group. A rank
    that exits with the group alive can abort in gloo's threads at exit ("terminate called without
    an active exception"), and torchrun then fails the whole job."""
    if parallel.world_size > 1:
        dist.barrier()
        dist.destroy_process_group()


def broadcast_from_main(value, parallel: DataParallel):
    """Rank 0's ``value`` on every rank (in memory, between the ranks of one job; nothing is read
    from disk)."""
    if parallel.world_size == 1:
        return value
    box = [value if parallel.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sum_gradients(parameters, parallel: DataParallel) -> None:
    """Sum every parameter's gradient over the ranks (a rank with no share contributes zeros)."""
    if parallel.world_size == 1:
        return
    for parameter in parameters:
        if parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
        dist.all_reduce(parameter.grad, op=dist.ReduceOp.SUM)


def mean_over_ranks(values: dict[str, float], weight: int, parallel: DataParallel) -> dict[str, float]:
    """Weighted mean of per-rank statistics (weight: how many items each rank's values cover)."""
    if parallel.world_size == 1:
        return values
    keys = sorted(values)
    totals = torch.tensor([values[k] * weight for k in keys] + [float(weight)], dtype=torch.float64)
    dist.all_reduce(totals, op=dist.ReduceOp.SUM)
    return {k: float(totals[i] / totals[-1]) for i, k in enumerate(keys)}
