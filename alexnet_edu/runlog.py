"""What a training run tells its reader: the plan (its time predicted from timed steps), a line
per epoch, TensorBoard when asked, and why a run stopped (Ctrl-C, a NaN loss, out of memory)."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import distributed
from .data import first_images
from .device import autocast, describe_device, synchronize
from .files import shown_path

__all__ = ["RunLog", "estimate_epoch_seconds", "OutOfMemory"]


class RunLog:
    """The plan (while epochs remain and ``config.progress`` is on), a line per epoch, and
    TensorBoard if asked; data-parallel: rank 0 speaks for all. Close it when the run ends."""

    def __init__(self, model, splits, config, device, run_dir: Path, transform, dtype,
                 done: int = 0):
        self.quiet, self.writer = not distributed.is_main(), None
        if self.quiet:
            return
        held_out = (getattr(splits, "recipe", None) or {}).get("test_images")
        print(f"Training {len(splits.train)} images ({len(splits.val)} for validation"
              + (f", {held_out} held out for the test split" if held_out is not None else "")
              + f") of {splits.name} at {model.config['image_size']} px on "
              f"{describe_device(device)}, {'autocast ' + str(dtype)[6:] if dtype else 'float32'}; "
              f"checkpoints in {shown_path(run_dir)}")
        if config.progress and done < config.epochs:
            epoch = estimate_epoch_seconds(model, splits, config, device, transform, dtype)
            print(f"Plan: {config.epochs} epochs of batch {config.batch_size}, about "
                  f"{_duration(epoch)} each, {_duration(epoch * config.epochs)} in all (from 2 "
                  "timed steps here)" + (". That is long: choose a smaller run (the cpu "
                                         "profile, fewer epochs) or a GPU"
                                         if epoch * config.epochs > 3 * 3600 else ""))
        if config.tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # optional: only when asked
            self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def epoch(self, row: dict) -> None:
        if self.writer is not None:   # None in the quiet processes too
            for key in row.keys() - {"epoch"}:
                self.writer.add_scalar(key, row[key], row["epoch"])
            self.writer.flush()
        if not self.quiet:
            print(f"epoch {row['epoch']:3d}  train loss {row['train_loss']:.3f} "
                  f"acc {row['train_acc']:.3f}  val loss {row['val_loss']:.3f} acc "
                  f"{row['val_acc']:.3f}  lr {row['lr']:.0e}  {row['images_per_s']:.0f} img/s")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def estimate_epoch_seconds(model: nn.Module, splits, config, device: torch.device,
                           transform: nn.Module, dtype: torch.dtype | None = None,
                           steps: int = 2) -> float:
    """Seconds one epoch (training and validation) should take, from `steps` timed on a copy."""
    net = copy.deepcopy(model).to(device).train()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.0)   # lr 0: the copy does not change
    batch = min(config.batch_size, len(splits.train))
    images = first_images(splits.train, batch).to(device)
    targets = splits.train.labels[:batch].to(device)
    times = []
    for _ in range(steps + 1):   # the first step warms up (allocations, kernel choice)
        start = time.perf_counter()
        with autocast(device, dtype):
            loss = F.cross_entropy(net(transform(images)).float(), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        synchronize(device)   # CUDA and MPS run asynchronously: wait for the step
        times.append(time.perf_counter() - start)
    step = sorted(times[1:])[len(times[1:]) // 2] / batch          # seconds per image
    # a forward pass without gradients costs about a third of a training step
    return step * (len(splits.train) + len(splits.val) / 3)


def _duration(seconds: float) -> str:
    return (f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min" if seconds < 5400
            else f"{seconds / 3600:.1f} h")


def asks_to_stop(answer: object) -> bool:
    """Whether an `on_epoch_end` answer is True: Python's, or a one-element bool array's or
    tensor's (``acc > 0.9`` in NumPy or torch). Anything else goes on: a figure, a row, None, the
    number 1. With several processes, one that asks stops them all (the others would wait for
    it in their next step's all-reduce for ever)."""
    if isinstance(answer, torch.Tensor):
        stop = answer.dtype == torch.bool and answer.numel() == 1 and bool(answer)
    elif isinstance(answer, np.ndarray | np.bool_):
        stop = answer.dtype == np.bool_ and answer.size == 1 and bool(answer)
    else:
        stop = answer is True
    return distributed.sum_across([float(stop)])[0] > 0


def interrupted(run_dir: Path, epoch: int, done: int) -> KeyboardInterrupt:
    """The KeyboardInterrupt `fit` raises on Ctrl-C: what last.pt holds and how to go on, in one
    line (rank 0's; the other processes' say nothing). Its type stays KeyboardInterrupt, so the
    caller's handling (the CLI's exit 130 and --resume command, a grader's timeout) is unchanged."""
    last, cut = run_dir / "last.pt", done < epoch + 1
    if not distributed.is_main():
        return KeyboardInterrupt()
    return KeyboardInterrupt(f"Interrupted {'in' if cut else 'after'} epoch {epoch + 1}: " + (
        "nothing was saved" + (f" ({shown_path(last)} is an earlier run's)" * last.exists())
        if done == 0 else f"{shown_path(last)} holds epoch {done}; fit(..., resume=True) "
        + (f"redoes epoch {epoch + 1} and goes on" if cut else "goes on")))


def nonfinite_loss(value: float, epoch: int, batch: int, dtype: torch.dtype | None) -> str:
    where = f"the loss became {value} at epoch {epoch + 1}, batch {batch + 1}"
    if dtype != torch.float16:
        return f"{where}: lower the learning rate (config.lr)"
    # the scaler skips a step whose *gradients* overflow; here the forward pass itself did
    return (f"{where}: under float16 autocast an activation or logit overflowed float16's range "
            "(largest value 65,504). Train in bfloat16 (amp='bf16', on a GPU of compute "
            "capability 8.0 or newer), or in float32 (amp='off'), or lower config.lr")


def diverged(loss: float, epoch: int, lr: float, dtype: torch.dtype | None = None) -> str:
    where = (f"the model diverged: its validation loss is {loss} after epoch {epoch + 1} (the "
             "training loss was still finite)")
    keeps = "best.pt keeps the best finite epoch, if there was one"
    if dtype != torch.float16:
        return f"{where}; lower the learning rate (now {lr:g}) and start again. {keeps}"
    # validation runs under the same autocast: an activation or logit past float16's range
    return (f"{where}. Under float16 autocast, an activation or logit may have overflowed "
            "float16's range (largest value 65,504): train in bfloat16 (amp='bf16', on a GPU "
            "of compute capability 8.0 or newer) or float32 (amp='off'), or lower the "
            f"learning rate (now {lr:g}), and start again. {keeps}")


class OutOfMemory(RuntimeError):
    """The device ran out of memory; the message says which batch size to try."""


def out_of_memory(batch_size: int, size: int, device: torch.device) -> OutOfMemory:
    smaller = max(batch_size // 2, 1)
    return OutOfMemory(
        f"{describe_device(device)} ran out of memory training batches of {batch_size} images "
        f"at {size} px: use batch size {smaller} (TrainConfig(batch_size={smaller}), or "
        f"--batch-size {smaller}), a smaller --image-size, or close other programs on the GPU")
