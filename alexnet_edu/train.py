r"""Training AlexNet: the paper's recipe (Section 5), a visible loop, exact resume.

The paper's recipe: stochastic gradient descent, batch 128, momentum 0.9, weight decay 5e-4,

$$ v_{i+1} = 0.9\,v_i - 0.0005\,\epsilon\,w_i
   - \epsilon \,\Big\langle \tfrac{\partial L}{\partial w}\Big|_{w_i} \Big\rangle_{D_i},
   \qquad w_{i+1} = w_i + v_{i+1}, $$

learning rate $\epsilon = 0.01$, "divided by 10 when the validation error rate stopped improving".
(PyTorch's SGD puts the learning rate on the velocity differently, $v \leftarrow 0.9v + g$,
$w \leftarrow w - \epsilon v$; for a constant $\epsilon$ the two are the same.)

One change makes the network *learn* from scratch on our small datasets (measured in notebook
04): He et al.'s "kaiming" initialization instead of the paper's $\mathcal{N}(0, 0.01)$. Our
inputs are standardized (std 1) where the paper fed raw 0-255 pixels; with N(0, 0.01) the signal
then shrinks about tenfold per layer until every image gets the same logits and the loss sits at
$\ln 10$. `build_model` makes kaiming the default; the rest is the paper's recipe.

Read it top-down: `fit` is the whole run in one screen; `train_one_epoch` and `evaluate` are
one pass over the data each (as in torchvision's references/classification/train.py);
`checkpoint.RunFiles` and `checkpoint.Progress` hold what exact resume needs.
"""

from __future__ import annotations

import copy
import itertools
import math
import signal
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from . import distributed
from .checkpoint import Progress, RunFiles, eval_transform, seed_everything
from .data import as_loader, first_images, make_loader
from .device import describe_device, pick_device, synchronize
from .metrics import average_crops, topk_accuracy
from .model import AlexNet, eval_mode
from .profiles import current_profile
from .settings import PROJECT_ROOT, shown_path
from .transforms import BatchTransform

__all__ = ["TrainConfig", "fit", "train_one_epoch", "evaluate", "predict", "step_lr",
           "make_optimizer", "build_model", "initial_model", "runs_dir", "amp_dtype", "plan",
           "OutOfMemory"]


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
    schedule: str = "plateau"            # "plateau": Section 5's / 10; "cosine": see step_lr
    augment: bool = True                 # Section 4.1: random crops, flips (+ PCA for colour)
    pca_std: float = 0.1                 # Section 4.1: sigma of the PCA colour noise
    amp: str = "auto"                    # "auto" | "bf16" | "fp16" | "off" (see amp_dtype)
    channels_last: bool | None = None    # None: on CUDA only
    seed: int = 0
    num_workers: int | None = None       # DataLoader workers (None: data.make_loader decides)
    eval_batch_size: int = 256
    tensorboard: bool = False            # also log to run_dir/tensorboard
    progress: bool = True                # tqdm progress bar and the plan

    def __post_init__(self):
        if self.schedule not in ("plateau", "cosine"):
            raise ValueError(f"schedule must be 'plateau' or 'cosine', got {self.schedule!r}")
        if self.amp not in ("auto", "bf16", "fp16", "off"):
            raise ValueError(f"amp must be 'auto', 'bf16', 'fp16' or 'off', got {self.amp!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs}, "
                             f"{self.batch_size}")
        # (name, lowest, above it only, below): NaN fails every comparison, so is refused too
        for name, low, strict, high in (
                ("lr", 0, True, math.inf), ("momentum", 0, False, 1), ("weight_decay", 0, False, 1),
                ("lr_factor", 0, True, 1), ("min_lr", 0, False, math.inf),
                ("warmup_epochs", 0, False, math.inf), ("pca_std", 0, False, math.inf)):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value < high
                    and (value > low if strict else value >= low)):
                raise ValueError(f"{name} must be a finite number in {'(' if strict else '['}"
                                 f"{low}, {high}), got {value!r}")
        if not (isinstance(self.patience, int) and self.patience >= 0):
            raise ValueError(f"patience must be a whole number >= 0, got {self.patience!r}")
        if not (isinstance(self.seed, int) and 0 <= self.seed < 2**32):
            raise ValueError(f"seed must be a whole number from 0 to 2**32 - 1 (NumPy's "
                             f"generator takes no other), got {self.seed}")


def step_lr(config: TrainConfig, step: int, steps_per_epoch: int) -> float | None:
    r"""The learning rate of optimizer step `step` (counted from 0) where it is set step by step:
    during the linear warm-up, lr (step + 1) / warm-up steps, and throughout with
    ``schedule="cosine"``, the half cosine from lr down to min_lr over the remaining steps,

    $$ \epsilon_t = \epsilon_{\min} + \tfrac12(\epsilon - \epsilon_{\min})
       (1 + \cos(\pi t / T)). $$

    None: the paper's plateau rule decides (it needs a validation loss, so it acts per epoch).
    The cosine is not in the paper; it is a common choice when the number of epochs is fixed in
    advance. It is not better everywhere: in the 10-minute Fashion-MNIST benchmark it did worse
    than the plateau rule (the README's Results).
    """
    warmup = round(config.warmup_epochs * steps_per_epoch)
    if step < warmup:
        return config.lr * (step + 1) / warmup
    if config.schedule == "cosine":
        total = max(config.epochs * steps_per_epoch - warmup, 1)
        cosine = 0.5 * (1 + math.cos(math.pi * (step - warmup) / total))
        return config.min_lr + (config.lr - config.min_lr) * cosine
    return config.lr if step == warmup and warmup > 0 else None


def make_optimizer(model: nn.Module, config: TrainConfig,
                   device: str | torch.device) -> torch.optim.SGD:
    """Section 5's SGD: momentum 0.9, weight decay 5e-4 (the config's), lr from the config.

    fused (CPU and CUDA): one kernel per step for momentum, weight decay and the update of every
    parameter, instead of a dozen passes over all 60 million of them; the same numbers. Not under
    float16 (`amp_dtype` gives it with loss scaling): when the `GradScaler` skips a step whose
    gradients overflowed, fused SGD still creates its momentum buffer, from uninitialised memory
    (tests/test_train.py shows it), so the next real step adds garbage to every weight.

    Weight decay applies to the *weights* only (Section 5's update rule is written for w);
    biases are not decayed: decaying conv2's bias of 1 towards 0 would slowly undo Section 5's
    initialization for no regularizing benefit."""
    weights = [p for p in model.parameters() if p.dim() > 1]
    biases = [p for p in model.parameters() if p.dim() <= 1]
    groups = [{"params": weights, "weight_decay": config.weight_decay},
              {"params": biases, "weight_decay": 0.0}]
    device = torch.device(device)
    scaled = amp_dtype(config.amp, device) == torch.float16   # a GradScaler may skip steps
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum,
                           fused=device.type in ("cpu", "cuda") and not scaled)


def build_model(splits, image_size: int = 227, seed: int = 0, **overrides) -> AlexNet:
    """An AlexNet that fits `splits` (its class count and channels) with the recipe's defaults:
    paper layers (LRN, dropout 0.5) and **kaiming** initialization (see the module docstring).

    The initial weights are drawn from `seed` (pass the run's ``TrainConfig.seed``), so the same
    seed builds bit-identical weights: a run is reproducible from its seed alone."""
    return _drawn(seed, **{"num_classes": len(splits.classes), "in_channels": splits.in_channels,
                           "image_size": image_size, "init": "kaiming", **overrides})


def initial_model(checkpoint: dict) -> AlexNet:
    """The model a run started from, rebuilt from its checkpoint: `build_model` drew the initial
    weights from the run's seed (``TrainConfig.seed``) alone, so no file needs to keep them. For
    runs whose model `build_model` made with that seed (the notebooks, the CLI, the ablations)."""
    seed = (checkpoint.get("train_config") or {}).get("seed")
    if seed is None or "model_config" not in checkpoint:
        raise ValueError("this checkpoint records no training run's seed (pretrained weights?): "
                         "its initial weights cannot be rebuilt")
    return _drawn(seed, **checkpoint["model_config"])


def _drawn(seed: int, **config) -> AlexNet:
    torch.manual_seed(seed)   # the only source of the initial weights
    return AlexNet(**config)


# ---------------------------------------------------------------------------------------------
# Devices and precision
# ---------------------------------------------------------------------------------------------

def amp_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    """Which autocast dtype to use (None: full float32).

    "auto": bfloat16 on CUDA GPUs with bf16 hardware (compute capability 8.0, Ampere, or newer),
    float16 with loss scaling below it (`torch.cuda.is_bf16_supported()` is no guide: it is true
    by emulation on a T4, P100 or V100, where bf16 runs slowly); on a CPU only when it has bf16
    matrix units (`cpu_has_bf16`): without them a bf16 step is many times *slower* than float32
    (the README's Results measure it), so such CPUs train in float32.
    """
    device = torch.device(device)
    fixed = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if setting in fixed:
        return fixed[setting]
    if device.type == "cuda":
        major, _ = torch.cuda.get_device_capability(device)
        return torch.bfloat16 if major >= 8 else torch.float16
    if device.type == "cpu":
        return torch.bfloat16 if cpu_has_bf16() else None
    return None


def _autocast(device: torch.device, dtype: torch.dtype | None) -> torch.autocast:
    """Mixed precision in `dtype` (from `amp_dtype`); None: off, plain float32."""
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def cpu_has_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Does this CPU have bfloat16 matrix units (Intel AMX), where bf16 autocast pays off? Read
    from the CPU flags Linux lists in /proc/cpuinfo; False where that file does not exist (macOS,
    Windows)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return False
    # AVX-512 BF16 alone is not enough: a CPU that lists avx512_bf16 but no AMX runs bf16
    # autocast far slower than float32 (the README's Results).
    return any("amx_bf16" in line.partition(":")[2].split()
               for line in text.splitlines() if line.startswith("flags"))


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------

@torch.no_grad()
def evaluate(model: nn.Module, data, transform: nn.Module | dict,
             device: str | torch.device | None = None, tta: bool | str = False,
             batch_size: int = 256, amp: str = "auto", progress: bool = False) -> dict:
    """Loss, top-1, top-5 of `model` on `data` (a Dataset of (uint8 image, label), a DataLoader,
    or a pair of tensors), in eval mode.

    `transform` is the evaluation BatchTransform, or a checkpoint (its normalization and input
    size are used). ``tta=True`` averages the softmax over the paper's ten crops (Section 4.1);
    ``tta="flip"`` over two of them, the centre crop and its mirror image (for images whose object
    fills the frame, where the corner crops cut parts of it off).
    Returns a dict: loss, top1, top5 (None with fewer than 5 classes), n, predictions, targets,
    probabilities (N x classes, on the CPU).
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    transform = (eval_transform(transform) if isinstance(transform, dict) else transform).to(device)
    if tta not in (False, True, "flip"):
        raise ValueError(f"tta must be False, True (ten crops) or 'flip', got {tta!r}")
    if tta is True and not hasattr(transform, "ten_crop_batch"):
        raise ValueError("10-crop testing needs a transforms.BatchTransform (its ten_crop_batch); "
                         f"got {type(transform).__name__}")
    dtype = amp_dtype(amp, device)
    all_logp, all_targets = [], []
    with eval_mode(model):
        for images, targets in tqdm(as_loader(data, batch_size), desc="evaluate", leave=False,
                                    disable=not progress):
            with _autocast(device, dtype):
                all_logp.append(_log_probabilities(model, transform, images.to(device), tta).cpu())
            all_targets.append(torch.as_tensor(targets).long())
    if not all_targets:
        raise ValueError("evaluate got an empty data set")
    logp, targets = torch.cat(all_logp), torch.cat(all_targets)
    accuracy = topk_accuracy(logp, targets, [1] + ([5] if logp.shape[1] >= 5 else []))
    return {"loss": F.nll_loss(logp, targets).item(), "top1": accuracy[1],
            "top5": accuracy.get(5), "n": len(targets), "predictions": logp.argmax(1),
            "targets": targets, "probabilities": logp.exp()}


def _log_probabilities(model: nn.Module, transform: nn.Module, images: torch.Tensor,
                       tta: bool | str) -> torch.Tensor:
    """Log-softmax of one batch: of the centre crop, or of the softmax averaged over crops
    (Section 4.1: "averaging the predictions made by the network's softmax layer")."""
    if not tta:
        return model(transform(images)).float().log_softmax(-1)
    if tta is True:
        crops = transform.ten_crop_batch(images)
    else:   # "flip": the centre crop and its mirror image
        centre = transform(images)
        crops = torch.stack([centre, centre.flip(-1)], dim=1)
    return average_crops(model, crops).float().clamp_min(1e-12).log()


@torch.no_grad()
def predict(model: nn.Module, images, transform: nn.Module | dict,
            device: str | torch.device | None = None, tta: bool = False) -> torch.Tensor:
    """Class probabilities (N x classes) for uint8 images (C x H x W or N x C x H x W) or a
    Dataset; `transform` as in `evaluate`."""
    if torch.is_tensor(images):
        images = images[None] if images.dim() == 3 else images
        images = (images, torch.zeros(len(images), dtype=torch.long))
    return evaluate(model, images, transform, device, tta=tta)["probabilities"]


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------

def fit(model: AlexNet, splits, config: TrainConfig | None = None,
        run_dir: str | Path | None = None, device: str | torch.device | None = None,
        resume: bool = False,
        on_epoch_end: Callable[[list[dict]], None] | None = None) -> list[dict]:
    """Train `model` on ``splits.train``, select on ``splits.val`` (``splits.test`` is never
    touched), checkpoint every epoch to ``run_dir/last.pt`` (+ ``best.pt``).

    ``resume=True`` continues ``run_dir/last.pt`` exactly where it stopped. `on_epoch_end` is
    called with the history after each epoch (e.g. a live plot). Ctrl-C / "interrupt kernel",
    or a KeyboardInterrupt raised by `on_epoch_end`, saves a checkpoint and returns the history.
    Returns the history: one dict per epoch (epoch, train_loss, train_acc, val_loss, val_acc,
    lr, images_per_s, seconds).
    """
    config = config or TrainConfig()
    device = pick_device(verbose=False) if device is None else torch.device(device)
    run_dir = Path(run_dir) if run_dir is not None else runs_dir() / splits.name
    _check_fits(model, splits)
    run_dir.mkdir(parents=True, exist_ok=True)
    step = _Step(model, config, device)   # optimizer, schedule, precision, loss
    files = RunFiles(run_dir, model, step.optimizer, step.scheduler, step.scaler, splits, config)
    progress = (files.resume() if resume else None) or _new_run(files, config)
    augment, plain = _transforms(model, splits, config, device)
    log = _Log(model, splits, config, device, run_dir, step, augment, progress)
    with _StopRequest() as stop:
        try:
            for epoch in range(progress.epoch, config.epochs):
                # the order of epoch e depends on (seed, e) only: a resumed run sees the same
                loader = make_loader(splits.train, config.batch_size, shuffle=True,
                                     num_workers=config.num_workers,
                                     seed=config.seed * 1_000_003 + epoch,
                                     shard=(distributed.rank(), distributed.world_size()))
                seconds, seen = train_one_epoch(step, loader, augment, progress, stop, log.bar)
                val = evaluate(model, splits.val, plain, device,
                               batch_size=config.eval_batch_size, amp=config.amp)
                _check_finite(val["loss"], epoch, step.lr, files.best.name)
                # every process's share (one process: its own numbers)
                loss, correct, images, seen = distributed.sum_across(
                    [progress.sums[k] for k in ("loss", "correct", "seen")] + [seen])
                row = {"epoch": epoch + 1, "train_loss": loss / images,
                       "train_acc": correct / images,
                       "val_loss": val["loss"], "val_acc": val["top1"], "lr": step.lr,
                       "images_per_s": seen / max(seconds, 1e-9), "seconds": seconds}
                with stop.atomic():   # the epoch's history, schedule and files go together
                    best = progress.end_epoch(row)
                    step.end_epoch(val["top1"])
                    files.save(progress, best=best)
                log.epoch(row)
                if on_epoch_end is not None:
                    on_epoch_end(progress.history)
                if stop.agreed():
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            files.save_interrupted(progress)
        finally:
            log.close()
    return progress.history


def train_one_epoch(step: _Step, loader: DataLoader, transform: nn.Module, progress: Progress,
                    stop: _StopRequest, bar: tqdm) -> tuple[float, int]:
    """One pass over `loader` (from batch ``progress.batch`` on, when resuming inside an epoch):
    a training step per batch. Returns (seconds, images seen)."""
    step.model.train()
    start, seen = time.perf_counter(), 0
    steps_per_epoch = len(loader)
    for images, targets in itertools.islice(loader, progress.batch, None):
        progress.start_batch()   # an interrupted batch replays from this random state
        step.set_lr(progress.epoch * steps_per_epoch + progress.batch, steps_per_epoch)
        # data-parallel: the step's images over all processes (the last step's shares differ)
        step_images = int(distributed.sum_across([len(targets)])[0])
        images, targets = images.to(step.device), targets.to(step.device)
        loss, correct = step.forward_backward(
            transform(images) if len(targets) else step.no_input(), targets, progress,
            step_images)
        with stop.atomic():   # the update and the counters that record it go together
            step.update()
            progress.end_batch(loss, correct, len(targets))
        seen += len(targets)
        bar.update()
        shown = max(progress.sums["seen"], 1)
        bar.set_postfix(loss=f"{progress.sums['loss'] / shown:.3f}",
                        acc=f"{progress.sums['correct'] / shown:.3f}", refresh=False)
        if stop.agreed():
            raise KeyboardInterrupt
    return time.perf_counter() - start, seen


class _Step:
    """One SGD step of the recipe: optimizer, learning-rate schedule, mixed precision, loss."""

    def __init__(self, model: AlexNet, config: TrainConfig, device: torch.device) -> None:
        self.config, self.device = config, device
        self.channels_last = (config.channels_last if config.channels_last is not None
                              else device.type == "cuda")
        model.to(device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self.model, self.dtype = model, amp_dtype(config.amp, device)
        self.forward = distributed.wrap(model)   # several processes: gradients averaged
        self.optimizer = make_optimizer(model, config, device)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="min", factor=config.lr_factor, patience=config.patience,
            min_lr=config.min_lr)
        # float16 needs loss scaling (its small gradients underflow); bfloat16 does not
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype == torch.float16)

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def set_lr(self, step: int, steps_per_epoch: int) -> None:
        lr = step_lr(self.config, step, steps_per_epoch)
        if lr is not None:   # warm-up or cosine: set per step
            for group in self.optimizer.param_groups:
                group["lr"] = lr

    def no_input(self) -> torch.Tensor:
        """An empty batch: a process's share of data-parallel's last step may hold no image,
        and it still takes the step (its gradient, zero, joins the others')."""
        c = self.model.config
        return torch.zeros(0, c["in_channels"], c["image_size"], c["image_size"],
                           device=self.device)

    def forward_backward(self, x: torch.Tensor, targets: torch.Tensor, progress: Progress,
                         step_images: int | None = None) -> tuple[float, int]:
        """Forward and backward on this process's share of a step of `step_images` images
        (default: the share is the step); returns (mean loss, correct) of the share."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        processes = distributed.world_size()
        try:
            with _autocast(self.device, self.dtype):
                logits = self.forward(x)
                if processes == 1:
                    loss = F.cross_entropy(logits.float(), targets)
                else:
                    # DistributedDataParallel averages the processes' gradients; weighting each
                    # process's summed loss by W / step_images makes that average the gradient
                    # of the step's mean loss, as one process with the whole step computes
                    # it, also when the shares differ (the last step)
                    total = F.cross_entropy(logits.float(), targets, reduction="sum")
                    loss = total * (processes / (step_images or len(targets)))
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
        except torch.OutOfMemoryError:
            raise _out_of_memory(self.config, x.shape[-1], self.device) from None
        # one host-device sync per step
        value = loss.item() if processes == 1 else total.item() / max(len(targets), 1)
        if not math.isfinite(value):
            raise FloatingPointError(_nonfinite_loss(value, progress, self.dtype))
        return value, (logits.argmax(1) == targets).sum().item()

    def update(self) -> None:
        self.scaler.step(self.optimizer)
        self.scaler.update()

    def end_epoch(self, val_acc: float) -> None:
        if self.config.schedule == "plateau":
            # Section 5: "divide the learning rate by 10 when the validation error rate
            # stopped improving" - the error rate, not the loss.
            self.scheduler.step(1.0 - val_acc)


def _nonfinite_loss(value: float, progress: Progress, dtype: torch.dtype | None) -> str:
    where = f"the loss became {value} at epoch {progress.epoch + 1}, batch {progress.batch + 1}"
    if dtype == torch.float16:
        # the scaler handles overflowing *gradients* by skipping the step; a non-finite loss
        # means the forward pass itself overflowed float16 (largest value 65,504)
        return (f"{where}: under float16 autocast an activation or logit overflowed float16's "
                "range (largest value 65,504). Train in bfloat16 (amp='bf16', on a GPU of "
                "compute capability 8.0 or newer), or in float32 (amp='off'), or lower the "
                "learning rate (config.lr)")
    return f"{where}: lower the learning rate (config.lr)"


def _check_fits(model: AlexNet, splits) -> None:
    classes, channels = len(splits.classes), model.config["in_channels"]
    if classes < 2:   # softmax over one class is 1 for every image: "100 %" learns nothing
        raise ValueError(f"{splits.name} has {classes} class{'es' if classes != 1 else ''} "
                         f"({', '.join(map(repr, splits.classes))}): a classifier needs at "
                         "least two (one folder of images per class)")
    if model.config["num_classes"] != classes:
        raise ValueError(f"the model has {model.config['num_classes']} outputs but the data has "
                         f"{classes} classes: build it with num_classes={classes}")
    if channels not in (splits.in_channels, 3):   # 3: grey data, repeated
        raise ValueError(f"the model takes {channels} channel(s), the data has "
                         f"{splits.in_channels}: use in_channels={splits.in_channels}")
    if len(splits.val) == 0:
        raise ValueError("fit needs a validation split to select the model and schedule the "
                         "learning rate (load_splits(val_fraction=0.1)); never use the test split")


def _new_run(files: RunFiles, config: TrainConfig) -> Progress:
    if files.last.exists() and distributed.is_main():
        print(f"Starting a new run: {shown_path(files.last)} will be overwritten "
              "(resume=True continues it)")
    # each process its own crops, flips and dropout masks (rank 0: the single-process seed)
    seed_everything(config.seed + 1_000 * distributed.rank())
    return Progress()


def _transforms(model: AlexNet, splits, config: TrainConfig,
                device: torch.device) -> tuple[nn.Module, nn.Module]:
    """(training transform, evaluation transform) at the model's input size."""
    size, channels = model.config["image_size"], model.config["in_channels"]
    mean, std = tuple(splits.mean), tuple(splits.std)
    plain = BatchTransform(size, mean, std, train=False, out_channels=channels).to(device)
    if not config.augment:
        return plain, plain
    augment = BatchTransform(size, mean, std, train=True, pca=splits.pca, pca_std=config.pca_std,
                             out_channels=channels).to(device)
    return augment, plain


def _check_finite(val_loss: float, epoch: int, lr: float, best_name: str) -> None:
    if not math.isfinite(val_loss):
        raise FloatingPointError(
            f"the model diverged: its validation loss is {val_loss} after epoch {epoch + 1} "
            f"(the training loss was still finite); lower the learning rate (now {lr:g}) and "
            f"start again. {best_name} keeps the best finite epoch, if there was one")


class _StopRequest:
    """Turns Ctrl-C / Jupyter's "interrupt kernel" (SIGINT) into a request to stop after the
    current batch, so that the weights are never saved half-updated. A second Ctrl-C stops at
    once -- except inside an `atomic` section (an optimizer update and the counters that record
    it; an epoch's bookkeeping), which it lets finish: a saved state is always one a run really
    passed through.

    Data-parallel processes stop together, after the first step at whose end any of them has
    been asked (`agreed`); a second Ctrl-C does not stop one at once: a process that left alone
    would leave the others waiting in a collective, and torchrun itself passes the terminal's
    Ctrl-C on, so each process gets it twice. (torchrun kills the processes 30 s later, its
    --shutdown-timeout; the last checkpoint stays intact.)"""

    def __init__(self):
        self.requested, self._atomic, self._previous = False, False, None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested and not self._atomic and distributed.world_size() == 1:
            raise KeyboardInterrupt
        self.requested = True

    def agreed(self) -> bool:
        """Stop now? When asked; in data-parallel training, when any process was asked (a
        collective: every process calls it at the same step)."""
        return distributed.sum_across([float(self.requested)])[0] > 0

    @contextmanager
    def atomic(self):
        self._atomic = True
        try:
            yield
        finally:
            self._atomic = False

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class _Log:
    """What a run tells its reader: the plan, one progress bar over the whole run (its remaining
    time is the run's from the first batches on), a line per epoch, TensorBoard if asked."""

    def __init__(self, model, splits, config, device, run_dir, step, transform, progress):
        self.quiet = not distributed.is_main()   # data-parallel: rank 0 speaks for all
        self.bar = tqdm(disable=True)
        self.writer = None
        if self.quiet:
            return
        held_out = (getattr(splits, "recipe", None) or {}).get("test_images")
        dtype = step.dtype
        print(f"Training {len(splits.train)} images ({len(splits.val)} for validation"
              + (f", {held_out} held out for the test split" if held_out is not None else "")
              + f") of {splits.name} at {model.config['image_size']} px on "
              f"{describe_device(device)}, "
              f"{'autocast ' + str(dtype).replace('torch.', '') if dtype else 'float32'}"
              f"{', channels_last' if step.channels_last else ''}; checkpoints in "
              f"{shown_path(run_dir)}")
        if config.progress and progress.epoch < config.epochs:
            try:
                print(plan(model, splits, config, device, transform, dtype))
            except torch.OutOfMemoryError:
                raise _out_of_memory(config, model.config["image_size"], device) from None
        share = math.ceil(len(splits.train) / distributed.world_size())   # this process's
        steps = math.ceil(share / config.batch_size)
        self.bar = tqdm(total=config.epochs * steps, initial=progress.epoch * steps
                        + progress.batch, desc="training", unit="batch",
                        disable=not config.progress)
        if config.tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # optional: only when asked

            self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def epoch(self, row: dict) -> None:
        if self.quiet:
            return
        if self.writer is not None:
            for key, value in row.items():
                if key != "epoch":
                    self.writer.add_scalar(key, value, row["epoch"])
            self.writer.flush()
        self.bar.write(f"epoch {row['epoch']:3d}  train loss {row['train_loss']:.3f} "
                       f"acc {row['train_acc']:.3f}  val loss {row['val_loss']:.3f} "
                       f"acc {row['val_acc']:.3f}  lr {row['lr']:.0e}  "
                       f"{row['images_per_s']:.0f} img/s")

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()


def runs_dir() -> Path:
    """Where trained runs live: PROJECT_ROOT/runs in the full profile, runs/cpu and runs/smoke in
    the others (so that a small run never shadows a bigger one)."""
    name = current_profile().name
    return PROJECT_ROOT / "runs" / ("" if name == "full" else name)


class OutOfMemory(RuntimeError):
    """The device ran out of memory; the message says which batch size to try."""


def _out_of_memory(config: TrainConfig, size: int, device: torch.device) -> OutOfMemory:
    """The one clear message for a CUDA out-of-memory error: what ran out, and what fits."""
    smaller = max(config.batch_size // 2, 1)
    return OutOfMemory(
        f"{describe_device(device)} ran out of memory training batches of {config.batch_size} "
        f"images at {size} px: use batch size {smaller} (TrainConfig(batch_size={smaller}), or "
        f"--batch-size {smaller}), a smaller --image-size, or close other programs on the GPU")


def plan(model: nn.Module, splits, config: TrainConfig, device: torch.device,
         transform: nn.Module, dtype: torch.dtype | None = None, steps: int = 2) -> str:
    """The run in one paragraph: images, epochs, input size, device and the wall time predicted
    from `steps` timed training steps on a copy of the model (the run itself is untouched: its
    weights and random-number generators are as before)."""
    per_epoch = estimate_epoch_seconds(model, splits, config, device, transform, dtype, steps)
    total = per_epoch * config.epochs
    text = (f"Plan: {len(splits.train):,} training images x {config.epochs} epochs at "
            f"{model.config['image_size']} px, batch {config.batch_size}, on "
            f"{describe_device(device)}: about {_duration(per_epoch)} per epoch, "
            f"{_duration(total)} in all (measured from {steps} steps here).")
    if total > 3 * 3600:
        text += ("\nThat is long: on this device, choose a smaller run - ALEXNET_EDU_PROFILE=cpu "
                 "(67 px, fewer images), fewer epochs, or a CUDA GPU.")
    return text


def estimate_epoch_seconds(model: nn.Module, splits, config: TrainConfig, device: torch.device,
                           transform: nn.Module, dtype: torch.dtype | None = None,
                           steps: int = 2) -> float:
    """Seconds one epoch (training and validation) should take, from timed steps on a copy."""
    net = copy.deepcopy(model).to(device).train()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.0)   # lr 0: the copy does not change
    batch = min(config.batch_size, len(splits.train))
    images = first_images(splits.train, batch).to(device)
    targets = splits.train.labels[:batch].to(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        times = []
        for _ in range(steps + 1):   # the first step warms up (allocations, kernel choice)
            start = time.perf_counter()
            with _autocast(device, dtype):
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
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


