"""Data-parallel training: one process per device, started by torchrun
(``torchrun --nproc_per_node=2 -m alexnet_edu train ...``). Each process trains the same model
on its share of every batch (`ShardBatches`) and DistributedDataParallel averages the gradients,
so W processes with batch B take the steps one process takes with batch W·B. Rank 0 alone prints
and writes checkpoints. Across machines, torchrun's --nnodes and --rdzv-endpoint do the rest.
Without torchrun, every function here is a no-op: one process."""

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
    """Join torchrun's process group (once); this process's device: its GPU (NCCL), or the CPU
    (gloo) without a GPU or when `device` is "cpu". None when not launched by torchrun."""
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
    """`model` in DistributedDataParallel (which averages gradients) when processes > 1."""
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
    """What this process's *summed* loss over its `images` is multiplied by: W / (the step's
    images), so that DDP's average of W gradients is that of the step's mean loss, also when the
    shares differ (the last step). A collective: every process calls it at every step."""
    return world_size() / max(sum_across([images])[0], 1)


class ShardBatches(Sampler[list[int]]):
    """This process's share of every batch: a seeded shuffle cut into steps of `batch_size` x
    `processes` images, the i-th image of a step going to process i mod `processes`. Unlike
    DistributedSampler, nothing is repeated: together the shares of a step are exactly one
    process's batch of `batch_size` x `processes` (the last step's shares may differ by one)."""

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
