r"""Training AlexNet: the paper's recipe (Section 5), made to learn from scratch, resumable exactly.

The paper's recipe: stochastic gradient descent, batch 128, momentum 0.9, weight decay 5e-4,

$$ v_{i+1} = 0.9\,v_i - 0.0005\,\epsilon\,w_i
   - \epsilon \,\Big\langle \tfrac{\partial L}{\partial w}\Big|_{w_i} \Big\rangle_{D_i},
   \qquad w_{i+1} = w_i + v_{i+1}, $$

learning rate $\epsilon = 0.01$, "divided by 10 when the validation error rate stopped improving".
(PyTorch's SGD puts the learning rate on the velocity differently, $v \leftarrow 0.9v + g$,
$w \leftarrow w - \epsilon v$; for a constant $\epsilon$ the two are the same.)

What it takes to make the network *learn* from scratch on small greyscale / colour datasets
(measured in notebook 04): initialize with He et al.'s "kaiming" scheme instead of the paper's
$\mathcal{N}(0, 0.01)$ or PyTorch's default. Our inputs are standardized (std 1) where the paper
fed raw 0-255 pixels, and with those initializations the input-dependent signal shrinks about
tenfold per layer (LRN divides it by another $k^\beta \approx 1.68$ twice) until every image
gets the same logits and the loss sits at $\ln 10$. `build_model` makes kaiming the default; the
rest is the paper's recipe. A learning-rate warm-up (`warmup_epochs`) is available but off: it
made no difference in our measurement.

`fit` writes ``run_dir/last.pt`` after every epoch (and ``best.pt`` at the best validation
accuracy), atomically. A checkpoint holds everything needed to continue *exactly* (model,
optimizer, scheduler, AMP scaler, epoch, batch, RNG states) and everything needed to *use* the
model (its configuration, class names, normalization, input size): see `load_model`,
`evaluate`, `predict`.
"""

from __future__ import annotations

import copy
import dataclasses
import errno
import itertools
import json
import math
import os
import random
import shutil
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from .device import describe_device, pick_device
from .metrics import average_crops, topk_accuracy
from .model import AlexNet
from .profiles import current_profile
from .settings import PROJECT_ROOT, shown_path

__all__ = ["TrainConfig", "fit", "step_lr", "make_optimizer", "build_model",
           "evaluate", "predict", "eval_transform", "save_checkpoint", "load_checkpoint",
           "load_model", "check_compatible", "runs_dir", "load_or_train", "amp_dtype", "FORMAT"]

FORMAT = "alexnet-edu/1"
MAX_IMAGE_SIZE = 1024   # px: conv1's maps alone take 1.3 GB per 128-image batch at 1024


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
    grad_clip: float | None = None       # max gradient norm (None: no clipping, as the paper)
    amp: str = "auto"                    # "auto" | "bf16" | "fp16" | "off" (see amp_dtype)
    channels_last: bool | None = None    # None: on CUDA only
    compile: bool = False                # torch.compile the model (slow start, faster steps)
    seed: int = 0
    num_workers: int | None = None       # DataLoader workers (None: data.make_loader decides)
    eval_batch_size: int = 256
    tensorboard: bool = False            # also log to run_dir/tensorboard
    progress: bool = True                # tqdm progress bars

    def __post_init__(self):
        if self.schedule not in ("plateau", "cosine"):
            raise ValueError(f"schedule must be 'plateau' or 'cosine', got {self.schedule!r}")
        if self.amp not in ("auto", "bf16", "fp16", "off"):
            raise ValueError(f"amp must be 'auto', 'bf16', 'fp16' or 'off', got {self.amp!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs}, "
                             f"{self.batch_size}")


def step_lr(config: TrainConfig, step: int, steps_per_epoch: int) -> float | None:
    r"""The learning rate of optimizer step `step` (counted from 0) where it is set step by step:
    during the linear warm-up, lr (step + 1) / warm-up steps, and throughout with
    ``schedule="cosine"``, the half cosine from lr down to min_lr over the remaining steps,

    $$ \epsilon_t = \epsilon_{\min} + \tfrac12(\epsilon - \epsilon_{\min})
       (1 + \cos(\pi t / T)). $$

    None: the paper's plateau rule decides (it needs a validation loss, so it acts per epoch).
    The cosine is not in the paper; it is a common choice when the number of epochs is fixed in
    advance. It is not better everywhere: in the 10-minute Fashion-MNIST benchmark it did worse
    than the plateau rule (benchmarks/time_to_accuracy.py's docstring has the figures).
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
    parameter, instead of a dozen passes over all 60 million of them. The same numbers
    (bit-identical in our check); at 67 px on a 2-core CPU the SGD step took 10 ms instead of 50
    (of a 0.75 s training step).

    Weight decay applies to the *weights* only (Section 5's update rule is written for w);
    biases are not decayed: decaying conv2's bias of 1 towards 0 would slowly undo Section 5's
    initialization for no regularizing benefit."""
    weights = [p for p in model.parameters() if p.dim() > 1]
    biases = [p for p in model.parameters() if p.dim() <= 1]
    groups = [{"params": weights, "weight_decay": config.weight_decay},
              {"params": biases, "weight_decay": 0.0}]
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum,
                           fused=torch.device(device).type in ("cpu", "cuda"))


def build_model(splits, image_size: int = 227, seed: int = 0, **overrides) -> AlexNet:
    """An AlexNet that fits `splits` (its class count and channels) with the recipe's defaults:
    paper layers (LRN, dropout 0.5) and **kaiming** initialization (see the module docstring).

    The initial weights are drawn from `seed` (pass the run's ``TrainConfig.seed``), so the same
    seed builds bit-identical weights: a run is reproducible from its seed alone."""
    kwargs: dict[str, Any] = dict(num_classes=len(splits.classes), in_channels=splits.in_channels,
                                  image_size=image_size, init="kaiming")
    kwargs.update(overrides)
    torch.manual_seed(seed)
    return AlexNet(**kwargs)


# ---------------------------------------------------------------------------------------------
# Devices and precision
# ---------------------------------------------------------------------------------------------

def amp_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    """Which autocast dtype to use (None: full float32).

    "auto": bfloat16 on CUDA GPUs with bf16 hardware (compute capability 8.0, Ampere, or newer),
    float16 with loss scaling below it (`torch.cuda.is_bf16_supported()` is no guide: it is true
    by emulation on a T4, P100 or V100, where bf16 runs slowly); on a CPU only when it has bf16
    matrix units (the ``amx_bf16`` CPU flag; PyTorch's `get_cpu_capability()` never reports it).
    Without them a step gets much *slower*: on an idle 2-core AMD EPYC (it lists avx512_bf16, no
    AMX), a bf16-autocast training step of the 67 px AlexNet took 42x as long as in float32, and
    channels-last 0.98x the float32 NCHW time (`python benchmarks/time_to_accuracy.py
    --precision-only`, ratios within one process). So such CPUs train in float32, and
    channels-last is on for CUDA only.
    """
    device = torch.device(device)
    if setting == "off":
        return None
    if setting == "bf16":
        return torch.bfloat16
    if setting == "fp16":
        return torch.float16
    if device.type == "cuda":
        major, _ = torch.cuda.get_device_capability(device)
        return torch.bfloat16 if major >= 8 else torch.float16
    if device.type == "cpu":
        return torch.bfloat16 if cpu_has_bf16() else None
    return None


def cpu_has_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Does this CPU have bfloat16 matrix units (Intel AMX), where bf16 autocast pays off? Read
    from the CPU flags Linux lists in /proc/cpuinfo; False where that file does not exist (macOS,
    Windows)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    # AVX-512 BF16 alone is not enough: the 2-core AMD EPYC this project is measured on lists
    # avx512_bf16, and a bf16-autocast training step there took 42x the float32 time.
    return "amx_bf16" in flags


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------

def save_checkpoint(checkpoint: dict, path: str | Path) -> Path:
    """Write `checkpoint` atomically: to a temporary file in the same folder
    (``.<name>.tmp<pid>``), flushed to disk, then renamed over `path`.

    A crash or a full disk during the write leaves the previous file at `path` untouched. A
    failed write removes its temporary file and raises an OSError whose message says which file
    failed, why, and that the previous one is intact -- also where torch.save reports a full
    disk as a RuntimeError from its zip writer ("unexpected pos ..."). (A process killed
    mid-write leaves the temporary file behind; `alexnet-edu train` removes such leftovers when
    it next starts in the folder.)
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(checkpoint, tmp)
        fd = os.open(tmp, os.O_RDWR)
        try:
            os.fsync(fd)   # the bytes are on disk before the rename makes them count
        finally:
            os.close(fd)
        os.replace(tmp, path)   # atomic on POSIX and Windows (same folder)
    except (OSError, RuntimeError) as err:
        if isinstance(err, RuntimeError) and not any(
                sign in str(err) for sign in ("unexpected pos", "StreamWriter", "write")):
            raise   # not a failed write (e.g. an object torch.save cannot pickle)
        why = err.strerror if isinstance(err, OSError) and err.strerror else str(err).strip()
        try:
            why += f"; {shutil.disk_usage(path.parent).free / 2**20:.0f} MB free there"
        except OSError:
            pass
        kept = (f"the previous {path.name} is intact" if path.exists()
                else f"no {path.name} was written")
        raise OSError(getattr(err, "errno", None) or errno.EIO,
                      f"could not write the checkpoint {path} ({why.splitlines()[0]}); {kept}. "
                      "Free disk space (or fix the folder's permissions), then resume the "
                      "run") from err
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load an alexnet-edu checkpoint with ``torch.load(weights_only=True)`` (no code runs)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path} (train one with alexnet_edu.train.fit "
                                "or notebook 04)")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise ValueError(f"{path} is not an alexnet-edu checkpoint that loads safely with "
                         f"weights_only=True: {err}") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        found = checkpoint.get("format") if isinstance(checkpoint, dict) else type(checkpoint)
        raise ValueError(f"{path} is not an alexnet-edu checkpoint (format {found!r}, expected "
                         f"{FORMAT!r}); a bare state_dict loads with model.load_state_dict")
    return checkpoint


def load_model(path: str | Path, device: str | torch.device | None = None
               ) -> tuple[AlexNet, dict]:
    """Rebuild the checkpoint's model (in eval mode, on `device`, default CPU) and return it with
    the checkpoint (classes, mean, std, image_size, history...)."""
    checkpoint = load_checkpoint(path)
    _check_fields(checkpoint, path)
    model = AlexNet(**checkpoint["model_config"])
    model.load_state_dict(checkpoint["model"])
    return model.to(device or "cpu").eval(), checkpoint


def _check_fields(checkpoint: dict, path: str | Path) -> None:
    """Every field `load_model` and `eval_transform` use, checked, with the field named: a
    hand-edited or corrupted checkpoint gets a clear ValueError, never a KeyError or NaN output."""
    def bad(field: str, why: str) -> ValueError:
        return ValueError(f"{path}: the checkpoint's {field!r} {why}; it was edited or damaged - "
                          "use the best.pt/last.pt that training wrote")

    config = checkpoint.get("model_config")
    if not isinstance(config, dict) or not isinstance(config.get("num_classes"), int):
        raise bad("model_config", "is missing or has no integer num_classes")
    classes = checkpoint.get("classes")
    if (not isinstance(classes, list) or not all(isinstance(c, str) for c in classes)
            or len(classes) != config["num_classes"]):
        raise bad("classes", f"must be a list of {config['num_classes']} class names "
                             f"(one per output), got {type(classes).__name__} "
                             f"{len(classes) if isinstance(classes, list) else ''}".rstrip())
    size = checkpoint.get("image_size")
    if not isinstance(size, int) or not 63 <= size <= MAX_IMAGE_SIZE:
        raise bad("image_size", f"must be an integer from 63 to {MAX_IMAGE_SIZE}, got {size!r}")
    channels = checkpoint.get("in_channels_data", config.get("in_channels", 3))
    for field in ("mean", "std"):
        value = checkpoint.get(field)
        if (not isinstance(value, list) or len(value) != channels
                or not all(isinstance(v, float) and math.isfinite(v) for v in value)
                or (field == "std" and min(value) <= 0)):
            raise bad(field, f"must be {channels} finite numbers (one per channel"
                             f"{', positive' if field == 'std' else ''}), got {value!r}")
    weights = checkpoint.get("model")
    if not isinstance(weights, dict):
        raise bad("model", "is missing (no weights)")
    broken = [name for name, t in weights.items()
              if torch.is_tensor(t) and t.is_floating_point() and not torch.isfinite(t).all()]
    if broken:
        raise bad("model", f"holds NaN or infinite weights in {', '.join(broken[:3])}"
                           f"{' ...' if len(broken) > 3 else ''} (a diverged run or corrupted "
                           "bytes), so every prediction would be meaningless")


def check_compatible(checkpoint: dict, model: nn.Module,
                     classes: Sequence[str] | None = None) -> None:
    """Raise a clear ValueError if `checkpoint` was not made for this model (and these classes)."""
    config = getattr(model, "config", None)
    theirs = checkpoint.get("model_config")
    if config is not None and theirs != config:
        diff = {k: (theirs.get(k), config.get(k)) for k in set(config) | set(theirs)
                if theirs.get(k) != config.get(k)}
        raise ValueError("the checkpoint was made for a different model: "
                         + ", ".join(f"{k}={a!r} in the checkpoint but {b!r} here"
                                     for k, (a, b) in sorted(diff.items()))
                         + "; build the model with AlexNet(**checkpoint['model_config']) or train "
                         "a new run in another folder")
    if classes is not None and list(classes) != list(checkpoint.get("classes", [])):
        raise ValueError(f"the checkpoint's classes {checkpoint.get('classes')} differ from the "
                         f"data's {list(classes)}: it belongs to another dataset")


def _rng_state() -> dict:
    """Every random number generator training touches, as tensors and lists (weights_only-safe)."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": [version, list(internal), py_gauss],
    }


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)   # also seeds every CUDA device


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------

def eval_transform(checkpoint: dict) -> nn.Module:
    """The evaluation transform a checkpoint needs: its input size, normalization and channels
    (its ``ten_crop_batch`` gives the paper's ten test patches)."""
    from .data import BatchTransform

    return BatchTransform(checkpoint["image_size"], tuple(checkpoint["mean"]),
                          tuple(checkpoint["std"]), train=False,
                          out_channels=checkpoint["model_config"]["in_channels"],
                          resize_size=checkpoint.get("resize_size"))


def _as_loader(data, batch_size: int) -> DataLoader:
    from .data import make_loader

    if isinstance(data, DataLoader):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2 and torch.is_tensor(data[0]):
        data = torch.utils.data.TensorDataset(data[0], torch.as_tensor(data[1]))
        return DataLoader(data, batch_size=batch_size, shuffle=False)
    return make_loader(data, batch_size, shuffle=False)


def _model_input_size(model: nn.Module) -> int:
    return int(getattr(model, "config", {}).get("image_size", getattr(model, "image_size", 227)))


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
    if isinstance(transform, dict):
        transform = eval_transform(transform)
    if tta not in (False, True, "flip"):
        raise ValueError(f"tta must be False, True (ten crops) or 'flip', got {tta!r}")
    if tta is True and not hasattr(transform, "ten_crop_batch"):
        raise ValueError("10-crop testing needs a data.BatchTransform (its ten_crop_batch); "
                         f"got {type(transform).__name__}")
    transform = transform.to(device)
    dtype = amp_dtype(amp, device)
    was_training = model.training
    model.eval()
    all_logp, all_probs, all_targets = [], [], []
    loader = _as_loader(data, batch_size)
    try:
        from tqdm.auto import tqdm

        for images, targets in tqdm(loader, desc="evaluate", leave=False, disable=not progress):
            images = images.to(device)
            with torch.autocast(device.type, dtype=dtype or torch.float32,
                                enabled=dtype is not None):
                if tta:   # Section 4.1: average the softmax of the ten patches (or two)
                    if tta is True:
                        crops = transform.ten_crop_batch(images)
                    else:   # the centre crop and its mirror image
                        centre = transform(images)
                        crops = torch.stack([centre, centre.flip(-1)], dim=1)
                    probs = average_crops(model, crops).float()
                    logp = probs.clamp_min(1e-12).log()
                else:
                    logp = model(transform(images)).float().log_softmax(-1)
                    probs = logp.exp()
            all_logp.append(logp.cpu())
            all_probs.append(probs.cpu())
            all_targets.append(torch.as_tensor(targets).long())
    finally:
        model.train(was_training)
    if not all_targets:
        raise ValueError("evaluate got an empty data set")
    logp, probs, targets = torch.cat(all_logp), torch.cat(all_probs), torch.cat(all_targets)
    classes = logp.shape[1]
    accuracy = topk_accuracy(logp, targets, [1] + ([5] if classes >= 5 else []))
    return {"loss": F.nll_loss(logp, targets).item(), "top1": accuracy[1],
            "top5": accuracy.get(5), "n": len(targets), "predictions": logp.argmax(1),
            "targets": targets, "probabilities": probs}


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

class _StopRequest:
    """Turns Ctrl-C / Jupyter's "interrupt kernel" (SIGINT) into a request to stop after the
    current batch, so that the weights are never saved half-updated. A second Ctrl-C stops at
    once."""

    def __init__(self):
        self.requested = False
        self.atomic = False   # inside an optimizer update or an epoch's bookkeeping
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        # Inside an atomic section (the optimizer step and the counters that say it happened;
        # an epoch's history, schedule and checkpoints) a second Ctrl-C waits for its end, where
        # `requested` stops the run: a saved state is always one a run really passed through.
        if self.requested and not self.atomic:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


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
            f"{_model_input_size(model)} px, batch {config.batch_size}, on "
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
    images = splits.train.images[:batch].to(device)
    targets = splits.train.labels[:batch].to(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        times = []
        for _ in range(steps + 1):   # the first step warms up (allocations, kernel choice)
            start = time.perf_counter()
            with torch.autocast(device.type, dtype=dtype or torch.float32,
                                enabled=dtype is not None):
                loss = F.cross_entropy(net(transform(images)).float(), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
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
    from tqdm.auto import tqdm

    from .data import BatchTransform, make_loader

    config = config or TrainConfig()
    device = pick_device(device, verbose=False) if device is None else torch.device(device)
    run_dir = Path(run_dir) if run_dir is not None else runs_dir() / splits.name
    run_dir.mkdir(parents=True, exist_ok=True)
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"

    classes, size = list(splits.classes), _model_input_size(model)
    model_channels = model.config["in_channels"]
    if model.config["num_classes"] != len(classes):
        raise ValueError(f"the model has {model.config['num_classes']} outputs but the data has "
                         f"{len(classes)} classes: build it with num_classes={len(classes)}")
    if model_channels not in (splits.in_channels, 3) or (model_channels == 1
                                                         and splits.in_channels != 1):
        raise ValueError(f"the model takes {model_channels} channel(s), the data has "
                         f"{splits.in_channels}: use in_channels={splits.in_channels}")
    if len(splits.val) == 0:
        raise ValueError("fit needs a validation split to select the model and schedule the "
                         "learning rate (load_splits(val_fraction=0.1)); never use the test split")

    model.to(device)
    channels_last = config.channels_last if config.channels_last is not None else (
        device.type == "cuda")
    if channels_last:
        model.to(memory_format=torch.channels_last)
    dtype = amp_dtype(config.amp, device)
    optimizer = make_optimizer(model, config, device)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=config.lr_factor, patience=config.patience,
        min_lr=config.min_lr)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    steps_per_epoch = math.ceil(len(splits.train) / config.batch_size)

    history: list[dict] = []
    start_epoch, start_batch, partial = 0, 0, {"loss": 0.0, "correct": 0, "seen": 0}
    best_val_acc = -1.0
    if resume and last_path.exists():
        checkpoint = load_checkpoint(last_path, map_location="cpu")
        check_compatible(checkpoint, model, classes)
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        scaler.load_state_dict(checkpoint["scaler"])
        history = list(checkpoint["history"])
        start_epoch, start_batch = checkpoint["epoch"], checkpoint["batch"]
        partial, best_val_acc = dict(checkpoint["partial"]), checkpoint["best_val_acc"]
        _set_rng_state(checkpoint["rng"])
        print(f"Resuming {shown_path(last_path)} at epoch {start_epoch + 1}"
              + (f", batch {start_batch + 1}" if start_batch else ""))
    else:
        if resume:
            print(f"Nothing to resume in {shown_path(run_dir)} (no last.pt): starting a new run")
        elif last_path.exists():
            print(f"Starting a new run: {shown_path(last_path)} will be overwritten "
                  "(resume=True continues it)")
        _seed_everything(config.seed)

    augment = BatchTransform(size, tuple(splits.mean), tuple(splits.std), train=True,
                             pca=splits.pca, pca_std=config.pca_std,
                             out_channels=model_channels).to(device)
    plain = BatchTransform(size, tuple(splits.mean), tuple(splits.std), train=False,
                           out_channels=model_channels).to(device)
    train_transform = augment if config.augment else plain
    net = torch.compile(model) if config.compile else model
    criterion = nn.CrossEntropyLoss()

    def checkpoint_now(epoch: int, batch: int, rng: dict | None = None) -> dict:
        return {
            "format": FORMAT, "model_config": dict(model.config),
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "classes": classes, "mean": [float(m) for m in splits.mean],
            "std": [float(s) for s in splits.std], "image_size": size,
            "in_channels_data": int(splits.in_channels), "dataset": splits.name,
            "synthetic": bool(getattr(splits, "synthetic", False)),
            "split": dict(getattr(splits, "recipe", {}) or {}),   # seed, fraction, fingerprints
            "epoch": epoch, "batch": batch, "partial": dict(partial),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(), "rng": rng or _rng_state(), "history": list(history),
            "best_val_acc": best_val_acc, "train_config": dataclasses.asdict(config),
        }

    writer = None
    if config.tensorboard:
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(str(run_dir / "tensorboard"))
    held_out = (getattr(splits, "recipe", None) or {}).get("test_images")   # fit never reads it
    print(f"Training {len(splits.train)} images ({len(splits.val)} for validation"
          + (f", {held_out} held out for the test split" if held_out is not None else "")
          + ") of "
          f"{splits.name} at {size} px on {describe_device(device)}, "
          f"{'autocast ' + str(dtype).replace('torch.', '') if dtype else 'float32'}"
          f"{', channels_last' if channels_last else ''}; checkpoints in {shown_path(run_dir)}")

    if config.progress and start_epoch < config.epochs:
        try:
            print(plan(model, splits, config, device, train_transform, dtype))
        except torch.OutOfMemoryError:
            raise _out_of_memory(config, size, device) from None
    # One bar over every batch of the run: its remaining time is the whole run's, from the first
    # batches on (a bar per epoch would say "?" for the first epoch).
    bar = tqdm(total=config.epochs * steps_per_epoch, initial=start_epoch * steps_per_epoch
               + start_batch, desc="training", unit="batch", disable=not config.progress)
    epoch, batch, batch_done, batch_rng = start_epoch, start_batch, False, None
    try:
        with _StopRequest() as stop:
            for epoch in range(start_epoch, config.epochs):
                model.train()
                # The order of epoch e depends on (seed, e) only, so a resumed run sees exactly
                # the batches an uninterrupted one would; a resumed epoch skips the done ones.
                loader = make_loader(splits.train, config.batch_size, shuffle=True,
                                     num_workers=config.num_workers,
                                     seed=config.seed * 1_000_003 + epoch)
                bar.set_description(f"epoch {epoch + 1}/{config.epochs}")
                t0, seen_now = time.perf_counter(), 0
                for batch, (images, targets) in enumerate(
                        itertools.islice(loader, start_batch, None), start=start_batch):
                    # An interruption inside this batch must replay it with the same random
                    # crops, flips and dropout masks: remember the RNG state it starts from.
                    batch_rng = _rng_state()
                    lr_now = step_lr(config, epoch * steps_per_epoch + batch, steps_per_epoch)
                    if lr_now is not None:   # warm-up or cosine: set per step
                        for group in optimizer.param_groups:
                            group["lr"] = lr_now
                    images = images.to(device, non_blocking=True)
                    targets = targets.to(device, non_blocking=True)
                    x = train_transform(images)
                    if channels_last:
                        x = x.contiguous(memory_format=torch.channels_last)
                    try:
                        with torch.autocast(device.type, dtype=dtype or torch.float32,
                                            enabled=dtype is not None):
                            logits = net(x)
                            loss = criterion(logits.float(), targets)
                        optimizer.zero_grad(set_to_none=True)
                        scaler.scale(loss).backward()
                    except torch.OutOfMemoryError:
                        raise _out_of_memory(config, size, device) from None
                    if config.grad_clip:
                        scaler.unscale_(optimizer)
                        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                    stop.atomic = True   # from here the batch counts as done (see _StopRequest)
                    scaler.step(optimizer)
                    scaler.update()
                    loss_value = loss.item()   # one host-device sync per step, not three
                    if not math.isfinite(loss_value):
                        raise FloatingPointError(
                            f"the loss became {loss_value} at epoch {epoch + 1}, batch "
                            f"{batch + 1}: lower the learning rate (config.lr) or clip gradients")
                    partial["loss"] += loss_value * len(targets)
                    partial["correct"] += (logits.argmax(1) == targets).sum().item()
                    partial["seen"] += len(targets)
                    seen_now += len(targets)
                    stop.atomic = False
                    bar.update()
                    bar.set_postfix(loss=f"{partial['loss'] / partial['seen']:.3f}",
                                    acc=f"{partial['correct'] / partial['seen']:.3f}",
                                    refresh=False)
                    if stop.requested:
                        batch, batch_done = batch + 1, True   # resume after this batch
                        raise KeyboardInterrupt
                seconds = time.perf_counter() - t0
                batch = steps_per_epoch

                val = evaluate(model, splits.val, plain, device, batch_size=config.eval_batch_size,
                               amp=config.amp)
                if not math.isfinite(val["loss"]):
                    raise FloatingPointError(
                        f"the model diverged: its validation loss is {val['loss']} after epoch "
                        f"{epoch + 1} (the training loss was still finite); lower the learning "
                        f"rate (now {optimizer.param_groups[0]['lr']:g}) and start again. "
                        f"{best_path.name} keeps the best finite epoch, if there was one")
                stop.atomic = True
                lr = optimizer.param_groups[0]["lr"]
                row = {"epoch": epoch + 1, "train_loss": partial["loss"] / partial["seen"],
                       "train_acc": partial["correct"] / partial["seen"],
                       "val_loss": val["loss"], "val_acc": val["top1"], "lr": lr,
                       "images_per_s": seen_now / max(seconds, 1e-9), "seconds": seconds}
                history.append(row)
                if config.schedule == "plateau":
                    # Section 5: "divide the learning rate by 10 when the validation error rate
                    # stopped improving" - the error rate, not the loss.
                    scheduler.step(1.0 - val["top1"])
                start_batch, batch = 0, 0
                partial = {"loss": 0.0, "correct": 0, "seen": 0}
                if val["top1"] > best_val_acc:
                    best_val_acc = val["top1"]
                    # best.pt is for *using* the model: no optimizer state (half the size)
                    best = checkpoint_now(epoch + 1, 0)
                    del best["optimizer"]
                    save_checkpoint(best, best_path)
                save_checkpoint(checkpoint_now(epoch + 1, 0), last_path)
                # the curves in a file any tool reads (the checkpoints hold them too)
                (run_dir / "history.json").write_text(json.dumps(history, indent=1))
                stop.atomic = False
                if writer is not None:
                    for key, value in row.items():
                        if key != "epoch":
                            writer.add_scalar(key, value, epoch + 1)
                    writer.flush()
                bar.write(f"epoch {epoch + 1:3d}  train loss {row['train_loss']:.3f} "
                             f"acc {row['train_acc']:.3f}  val loss {row['val_loss']:.3f} "
                             f"acc {row['val_acc']:.3f}  lr {lr:.0e}  "
                             f"{row['images_per_s']:.0f} img/s")
                if on_epoch_end is not None:
                    on_epoch_end(history)
                if stop.requested:
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        done_epoch = len(history)
        if batch:   # inside an epoch: save the batches done so far (resume skips them)
            rng = None if batch_done or batch == steps_per_epoch else batch_rng
            save_checkpoint(checkpoint_now(epoch, batch, rng), last_path)
            print(f"Interrupted in epoch {epoch + 1} after batch {batch}: saved "
                  f"{shown_path(last_path)}; fit(..., resume=True) continues exactly from there")
        else:
            print(f"Interrupted after epoch {done_epoch}: {shown_path(last_path)} holds it; "
                  "fit(..., resume=True) continues")
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    return history


# ---------------------------------------------------------------------------------------------
# A trained model for the later notebooks
# ---------------------------------------------------------------------------------------------

QUICK = dict(limit=600, image_size=67, epochs=3)   # a small model CPUs train in about a minute


def load_or_train(dataset: str, device: str | torch.device | None = None
                  ) -> tuple[AlexNet, dict, str]:
    """(model, checkpoint, how): ``runs_dir()/<dataset>/best.pt`` when notebook 04/05 trained
    one, else a small quick model (trained once into ``runs_dir()/quick/<dataset>``) - `how` says
    which, so notebooks can tell the reader."""
    from .data import load_splits

    name = Path(dataset).name if os.sep in str(dataset) else str(dataset)
    for path, how in ((runs_dir() / name / "best.pt", "the model trained by notebook 04/05"),
                      (runs_dir() / "quick" / name / "best.pt", "a quick model trained earlier")):
        if path.is_file():
            model, checkpoint = load_model(path, device)
            return model, checkpoint, f"loaded {how} ({shown_path(path)})"
    splits = load_splits(dataset, limit=QUICK["limit"])
    model = build_model(splits, image_size=QUICK["image_size"])
    config = TrainConfig(epochs=QUICK["epochs"], batch_size=64, progress=False)
    run = runs_dir() / "quick" / name
    fit(model, splits, config, run, device=device)
    model, checkpoint = load_model(run / "best.pt", device)
    how = (f"trained a quick model ({QUICK['limit']} images, {QUICK['image_size']} px, "
           f"{QUICK['epochs']} epochs) into {shown_path(run)} because "
           f"{shown_path(runs_dir() / name / 'best.pt')} does not "
           "exist yet - run notebook 04/05 for a real one")
    print(how)
    return model, checkpoint, how
