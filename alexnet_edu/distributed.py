"""Data-parallel training on torch.distributed: one process per device, launched by torchrun.

    torchrun --nproc_per_node=2 -m alexnet_edu train --dataset fashion-mnist --out runs/fm

torchrun starts the processes (and tells each its rank); `start` joins them into a process
group (NCCL between CUDA GPUs, gloo between CPU processes). Each process trains the
same model on its share of every batch (`ShardBatches`, used by `data.make_loader(...,
shard=...)`: the order depends on the seed and the epoch only; nothing is repeated, so the last
step's shares may differ) and DistributedDataParallel averages the gradients, each process's
loss weighted by its share of the step's images, so W processes with batch B take the steps
one process takes with batch W·B. Rank 0 alone prints and writes checkpoints; each process
draws its own crops and dropout masks from (seed, epoch, rank). Across machines, torchrun's
rendezvous options do the rest (`--nnodes`, `--node-rank`, `--rdzv-endpoint`), as in
torchvision's reference scripts. Without torchrun, every function here is a no-op: one process.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Sampler

__all__ = ["start", "rank", "world_size", "is_main", "wrap", "sum_across", "loss_weight",
           "ShardBatches"]


def start(device: str | None = None) -> torch.device | None:
    """Join torchrun's process group (once) and return this process's device: its GPU (the
    node-local rank) with NCCL, or the CPU with gloo when there is no GPU or `device` is "cpu".
    None when not launched by torchrun."""
    if not dist.is_torchelastic_launched():
        return None
    gpu = torch.cuda.is_available() and device != "cpu"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if gpu else "gloo")
    if gpu:
        fallback = dist.get_rank() % torch.cuda.device_count()   # torch < 2.4: GPUs in turn
        local = (dist.get_node_local_rank(fallback) if hasattr(dist, "get_node_local_rank")
                 else fallback)
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


def loss_weight(images: int) -> float:
    """What this process's *summed* loss is multiplied by, `images` being its share of the
    step: 1 / images in one process (the mean loss). DistributedDataParallel averages the
    processes' gradients, so W / (the step's images) makes that average the gradient of the
    step's mean loss, as one process with the whole step computes it, also when the shares
    differ (the last step). A collective: every process calls it at every step."""
    return world_size() / max(sum_across([images])[0], 1)


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
