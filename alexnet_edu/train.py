r"""Training AlexNet: the paper's recipe (Section 5) in a visible loop.

The paper's recipe: stochastic gradient descent, batch 128, momentum 0.9, weight decay 5e-4,

$$ v_{i+1} = 0.9\,v_i - 0.0005\,\epsilon\,w_i
   - \epsilon \,\Big\langle \tfrac{\partial L}{\partial w}\Big|_{w_i} \Big\rangle_{D_i},
   \qquad w_{i+1} = w_i + v_{i+1}, $$

learning rate $\epsilon = 0.01$, "divided by 10 when the validation error rate stopped improving".
(PyTorch's SGD puts the learning rate on the velocity differently, $v \leftarrow 0.9v + g$,
$w \leftarrow w - \epsilon v$; for a constant $\epsilon$ the two are the same.)

One change makes the network *learn* from scratch on our small datasets (notebook 04 shows it):
He et al.'s "kaiming" initialization instead of the paper's $\mathcal{N}(0, 0.01)$. Our inputs
are standardized (std 1) where the paper fed raw 0-255 pixels; with N(0, 0.01) the signal then
shrinks about tenfold per layer until every image gets the same logits and the loss sits at
$\ln 10$. `build_model` makes kaiming the default; the rest is the paper's recipe.

Read it as torchvision's references/classification/train.py: `fit` is the main loop (per epoch
`train_one_epoch`, `evaluate`, the schedule's step, the checkpoints), `train_one_epoch` the SGD
step, batch after batch. The files are `checkpoint`'s; what a run prints is `runlog`'s.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from . import distributed, runlog
from .checkpoint import save_run, seed_epoch, start_run
from .data import make_loader
from .device import amp_dtype, autocast, pick_device
from .evaluation import evaluate, predict
from .model import AlexNet
from .runlog import OutOfMemory, RunLog
from .schedules import step_lr
from .transforms import BatchTransform
from .validation import check_fits, check_train_config

__all__ = ["TrainConfig", "fit", "train_one_epoch", "evaluate", "predict",
           "make_optimizer", "build_model", "OutOfMemory"]


@dataclass
class TrainConfig:
    """Everything `fit` needs besides the model and the data. Defaults: the paper's Section 5."""

    epochs: int = 30
    batch_size: int = 128                # Section 5
    lr: float = 0.01                     # Section 5: "initialized at 0.01"
    momentum: float = 0.9                # Section 5
    weight_decay: float = 5e-4           # Section 5
    lr_factor: float = 0.1               # Section 5: "divide the learning rate by 10 ...
    patience: int = 2                    # ... when the validation error stopped improving"
    min_lr: float = 1e-5                 # the paper reduced it three times: 0.01 -> 1e-5
    warmup_epochs: float = 0.0           # linear lr warm-up (not in the paper; off)
    schedule: str = "plateau"            # "plateau": Section 5's / 10; "cosine": schedules.py
    augment: bool = True                 # Section 4.1: random crops, flips (+ PCA for colour)
    pca_std: float = 0.1                 # Section 4.1: sigma of the PCA colour noise
    amp: str = "auto"                    # "auto" | "bf16" | "fp16" | "off" (see amp_dtype)
    channels_last: bool | None = None    # None: on CUDA, and on a CPU from 128 px
    seed: int = 0
    num_workers: int | None = None       # DataLoader workers (None: data.make_loader decides)
    eval_batch_size: int = 256
    tensorboard: bool = False            # also log to run_dir/tensorboard
    progress: bool = True                # tqdm progress bar and the plan

    def __post_init__(self):
        check_train_config(self)   # a clear ValueError for a value out of range


def make_optimizer(model: nn.Module, config: TrainConfig,
                   device: str | torch.device) -> torch.optim.SGD:
    """Section 5's SGD. Weight decay applies to the *weights* only (the update rule is written for
    w): decaying conv2's bias of 1 towards 0 would undo Section 5's initialization. fused: one
    kernel per step, the same numbers; not under float16, where a step the GradScaler skips
    still creates fused SGD's momentum buffer, from uninitialised memory."""
    groups = [{"params": [p for p in model.parameters() if p.dim() > 1],   # the weights
               "weight_decay": config.weight_decay},
              {"params": [p for p in model.parameters() if p.dim() <= 1], "weight_decay": 0.0}]
    device = torch.device(device)
    scaled = amp_dtype(config.amp, device) == torch.float16   # a GradScaler may skip steps
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum,
                           fused=device.type in ("cpu", "cuda") and not scaled)


def build_model(splits, image_size: int = 227, seed: int = 0, **overrides) -> AlexNet:
    """An AlexNet that fits `splits` (classes, channels): paper layers (LRN, dropout 0.5),
    **kaiming** initialization (see the module docstring), weights drawn from `seed` alone (pass
    the run's ``TrainConfig.seed``): a run is reproducible from its seed."""
    torch.manual_seed(seed)   # the only source of the initial weights
    return AlexNet(**{"num_classes": len(splits.classes), "in_channels": splits.in_channels,
                      "image_size": image_size, "init": "kaiming", **overrides})


def fit(model: AlexNet, splits, config: TrainConfig, run_dir: str | Path,
        device: str | torch.device | None = None, resume: bool = False,
        on_epoch_end: Callable[[list[dict]], bool | None] | None = None) -> list[dict]:
    """Train `model` on ``splits.train``, select on ``splits.val`` (never ``splits.test``), save
    ``run_dir/last.pt`` (+ ``best.pt``, ``history.json``) after every epoch; ``resume=True``
    continues after last.pt's epoch as a straight run (bit-exactly on a CPU). Ctrl-C stops at
    once, saying what last.pt holds. `on_epoch_end(history)` runs after each epoch; True stops fit
    there (every process alike). Returns the history: per epoch, loss, accuracy, lr, speed."""
    device = pick_device(verbose=False) if device is None else torch.device(device)
    run_dir = Path(run_dir)
    check_fits(model.config, splits)
    optimizer, scheduler, scaler, dtype = _prepare(model, config, device)
    done, history = start_run(run_dir, resume, model, splits, config, optimizer,
                              scheduler, scaler)   # resume: from last.pt's epoch on
    augment, plain = _transforms(model, splits, config, device)
    forward, epoch = distributed.wrap(model), done   # several processes: gradients averaged
    try:
        with closing(RunLog(model, splits, config, device, run_dir, augment, dtype, done)) as log:
            for epoch in range(done, config.epochs):
                seed_epoch(config.seed, epoch, distributed.rank())
                # the order of epoch e depends on (seed, e) only: a resumed run sees the same
                loader = make_loader(splits.train, config.batch_size, shuffle=True,
                                     num_workers=config.num_workers, device=device,
                                     seed=config.seed * 1_000_003 + epoch,
                                     shard=(distributed.rank(), distributed.world_size()))
                start = time.perf_counter()
                sums = train_one_epoch(forward, loader, optimizer, scaler, augment, device,
                                       epoch, config, dtype)
                seconds = time.perf_counter() - start
                val = evaluate(model, splits.val, plain, device,
                               batch_size=config.eval_batch_size, amp=config.amp)
                history.append(_row(epoch, sums, val, optimizer, seconds, dtype))
                if config.schedule == "plateau":
                    # Section 5: "divide the learning rate by 10 when the validation error
                    # rate stopped improving" - the error rate, not the loss
                    scheduler.step(1.0 - val["top1"])
                if distributed.is_main():   # every process holds the same weights
                    save_run(run_dir, model, splits, config, history, optimizer, scheduler, scaler)
                done = epoch + 1
                log.epoch(history[-1])
                if on_epoch_end is not None and runlog.asks_to_stop(on_epoch_end(history)):
                    break
    except torch.OutOfMemoryError:
        raise runlog.out_of_memory(config.batch_size, model.config["image_size"], device) from None
    except KeyboardInterrupt:
        raise runlog.interrupted(run_dir, epoch, done) from None   # saying what last.pt holds
    return history


def train_one_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                    scaler: torch.amp.GradScaler, transform: BatchTransform,
                    device: torch.device, epoch: int, config: TrainConfig,
                    dtype: torch.dtype | None = None) -> dict:
    """One pass over `loader`, an SGD step per batch; this process's summed loss, correct, seen."""
    model.train()
    sums = {"loss": 0.0, "correct": 0, "seen": 0}
    show = config.progress and distributed.is_main()
    for i, (images, targets) in enumerate(tqdm(loader, desc=f"epoch {epoch + 1}", unit="batch",
                                               leave=False, disable=not show)):
        lr = step_lr(config, epoch * len(loader) + i, len(loader))
        if lr is not None:   # warm-up or cosine: set per step
            for group in optimizer.param_groups:
                group["lr"] = lr
        images, targets = (t.to(device, non_blocking=True) for t in (images, targets))
        # data-parallel's last step may leave this process no image: it still takes the step
        x = transform(images) if len(targets) else torch.zeros(
            0, transform.out_channels, transform.image_size, transform.image_size, device=device)
        weight = distributed.loss_weight(len(targets))   # one process: 1 / len(targets)
        with autocast(device, dtype):
            logits = model(x)
            loss_sum = F.cross_entropy(logits.float(), targets, reduction="sum")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss_sum * weight).backward()   # the mean loss over the step's images
        value = loss_sum.item()   # one wait for the device, after the backward pass was queued
        if not math.isfinite(value):   # before the step: the weights stay the last good ones
            raise FloatingPointError(runlog.nonfinite_loss(value, epoch, i, dtype))
        scaler.step(optimizer)   # skipped when float16 gradients overflowed
        scaler.update()
        sums["loss"] += value
        sums["correct"] += (logits.argmax(1) == targets).sum().item()
        sums["seen"] += len(targets)
    return sums


def _prepare(model: AlexNet, config: TrainConfig, device: torch.device) -> tuple:
    """(optimizer, plateau scheduler, loss scaler, autocast dtype), the model on `device`."""
    model.to(device)
    # None: NHWC on CUDA, and on a CPU from 128 px, where it measured faster (benchmarks/)
    default = device.type == "cuda" or (device.type == "cpu" and model.config["image_size"] >= 128)
    if default if config.channels_last is None else config.channels_last:
        model.to(memory_format=torch.channels_last)
    dtype = amp_dtype(config.amp, device)
    optimizer = make_optimizer(model, config, device)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(   # on the validation error rate
        optimizer, factor=config.lr_factor, patience=config.patience, min_lr=config.min_lr)
    # float16 needs loss scaling (its small gradients underflow); bfloat16 does not
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    return optimizer, scheduler, scaler, dtype


def _row(epoch: int, sums: dict, val: dict, optimizer, seconds: float, dtype=None) -> dict:
    """The epoch's history row, the training numbers over every process's images."""
    lr = optimizer.param_groups[0]["lr"]
    if not math.isfinite(val["loss"]):
        raise FloatingPointError(runlog.diverged(val["loss"], epoch, lr, dtype))
    loss, correct, seen = distributed.sum_across([sums["loss"], sums["correct"], sums["seen"]])
    return {"epoch": epoch + 1, "train_loss": loss / seen, "train_acc": correct / seen,
            "val_loss": val["loss"], "val_acc": val["top1"], "lr": lr,
            "images_per_s": seen / max(seconds, 1e-9), "seconds": seconds}


def _transforms(model: AlexNet, splits, config: TrainConfig,
                device: torch.device) -> tuple[nn.Module, nn.Module]:
    """(training transform, evaluation transform) at the model's input size."""
    def make(train: bool) -> BatchTransform:
        return BatchTransform(model.config["image_size"], tuple(splits.mean), tuple(splits.std),
                              train=train, pca=splits.pca, pca_std=config.pca_std,
                              out_channels=model.config["in_channels"]).to(device)
    return make(config.augment), make(False)
