"""Data-parallel training on torch.distributed: one process per device, launched by torchrun.

    torchrun --nproc_per_node=2 -m alexnet_edu train --dataset fashion-mnist --out runs/fm

torchrun starts the processes and sets RANK, LOCAL_RANK and WORLD_SIZE; `start` joins them into
a process group (NCCL between CUDA GPUs, gloo between CPU processes). Each process trains the
same model on its share of every batch (`data.make_loader(..., shard=...)`: a
DistributedSampler, whose order depends on the seed and the epoch only) and
DistributedDataParallel averages the gradients, so W processes with batch B take the steps one
process takes with batch W·B. Rank 0 alone prints and writes checkpoints. Across machines,
torchrun's rendezvous options do the rest (`--nnodes`, `--node-rank`, `--rdzv-endpoint`), as in
torchvision's reference scripts. Without torchrun, every function here is a no-op: one process.
"""

from __future__ import annotations

import os
import subprocess
import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

__all__ = ["start", "rank", "world_size", "is_main", "wrap", "sum_across", "launch"]


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
