"""Data-parallel training on torch.distributed: one process per device, launched by torchrun.

    torchrun --nproc_per_node=2 -m alexnet_edu train --dataset fashion-mnist --out runs/fm

torchrun starts the processes and sets RANK, LOCAL_RANK and WORLD_SIZE; `start` joins them into
a process group (NCCL between CUDA GPUs, gloo between CPU processes). Each process trains the
same model on its share of every batch (`ShardBatches`, used by `data.make_loader(...,
shard=...)`: the order depends on the seed and the epoch only; nothing is repeated, so the last
step's shares may differ) and DistributedDataParallel averages the gradients, each process's
loss weighted by its share of the step's images, so W processes with batch B take the steps
one process takes with batch W·B. Rank 0 alone prints and writes checkpoints, which hold
every process's random state. Across machines,
torchrun's rendezvous options do the rest (`--nnodes`, `--node-rank`, `--rdzv-endpoint`), as in
torchvision's reference scripts. Without torchrun, every function here is a no-op: one process.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Sampler

__all__ = ["start", "rank", "world_size", "is_main", "wrap", "sum_across", "gather",
           "ShardBatches", "command_prefix", "launch"]


def start(device: str | None = None) -> torch.device | None:
    """Join torchrun's process group (once) and return this process's device: its GPU
    (LOCAL_RANK) with NCCL, or the CPU with gloo when there is no GPU or `device` is "cpu".
    None when not launched by torchrun with several processes."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    gpu = torch.cuda.is_available() and device != "cpu"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if gpu else "gloo")
    if gpu:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    """True in the process that prints and writes files (rank 0, or the only one)."""
    return rank() == 0


def wrap(model: nn.Module) -> nn.Module:
    """`model` for the forward pass: in DistributedDataParallel when there are several
    processes (its backward averages the gradients over them), else `model` itself."""
    return DistributedDataParallel(model) if world_size() > 1 else model


def sum_across(values: list[float]) -> list[float]:
    """The sums of `values` over all processes (the values themselves in one process)."""
    if world_size() == 1:
        return list(values)
    on = "cuda" if dist.get_backend() == "nccl" else "cpu"   # NCCL reduces GPU tensors only
    total = torch.tensor(values, dtype=torch.float64, device=on)
    dist.all_reduce(total)
    return total.tolist()


def gather(value: object) -> list | None:
    """Every process's `value`, in rank order, on rank 0 (None on the others); [value] in one
    process. A collective: every process must call it."""
    if world_size() == 1:
        return [value]
    values = [None] * world_size() if is_main() else None
    dist.gather_object(value, values, dst=0)
    return values


class ShardBatches(Sampler[list[int]]):
    """This process's share of every batch: the dataset's indices in a seeded shuffle, cut into
    steps of `batch_size` x `processes` images, the i-th image of each step going to process
    i mod `processes` (one process: plain batches of the shuffle).

    Unlike torch's DistributedSampler, nothing is repeated to even out the shares: every
    process takes the same number of steps, and in the last step, when the dataset does not
    fill it, the shares differ by at most one image and may be empty (33 images, 2 processes
    with batch 8: shares of 8, 8 and then 1 and 0). Together the shares of a step are exactly
    the batch that one process with batch `batch_size` x `processes` takes."""

    def __init__(self, size: int, batch_size: int, shuffle: bool, seed: int = 0,
                 shard: tuple[int, int] = (0, 1)) -> None:
        self.size, self.batch_size, self.shuffle, self.seed = size, batch_size, shuffle, seed
        self.rank, self.processes = shard

    def __iter__(self) -> Iterator[list[int]]:
        order = (torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed))
                 if self.shuffle else torch.arange(self.size)).tolist()
        step = self.batch_size * self.processes
        for start in range(0, self.size, step):
            yield order[start + self.rank:start + step:self.processes]

    def __len__(self) -> int:
        return math.ceil(self.size / (self.batch_size * self.processes))


def command_prefix(program: str) -> str:
    """How to start this command again as it runs now: `program`, or under torchrun (from the
    WORLD_SIZE and LOCAL_WORLD_SIZE it sets) ``torchrun --nproc-per-node N -m alexnet_edu``:
    a resumed run needs as many processes."""
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    if processes <= 1:
        return program
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", processes))
    nodes = processes // per_node
    return (f"torchrun --nproc-per-node {per_node}" + (f" --nnodes {nodes}" if nodes > 1 else "")
            + " -m alexnet_edu")


def launch(processes: int, train_args: list[str], threads: int = 1,
           env: dict[str, str] | None = None) -> str:
    """Run ``alexnet-edu train *train_args`` in `processes` processes on this machine (torchrun
    for more than one) and return its output; RuntimeError with the end of stderr if it fails.
    For notebook 11's demonstration and the tests: two CPU processes talking through gloo."""
    command = [sys.executable, "-m", "alexnet_edu", "train", *train_args]
    if processes > 1:
        command[1:1] = ["-m", "torch.distributed.run", "--standalone",
                        f"--nproc_per_node={processes}"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), **(env or {})}   # they share the cores
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"training with {processes} process(es) failed:\n{done.stderr[-2000:]}")
    return done.stdout
