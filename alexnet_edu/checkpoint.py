"""Checkpoints: a dict saved with `torch.save` and loaded with ``torch.load(weights_only=True)``
(no code runs). best.pt holds what *using* the model needs, last.pt also what *continuing* needs.
A run resumes at an epoch boundary, as torchvision's reference script does, bit-exactly on a CPU
(GPUs' fast kernels are not deterministic): each epoch draws from (seed, epoch, rank) alone."""

from __future__ import annotations

import json
import random
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import distributed, validation
from .files import shown_path, write_atomic
from .model import AlexNet
from .transforms import BatchTransform
from .validation import (
    check_archive,
    check_continues,
    check_fields,
    check_resumable,
    raise_failed_write,
)

__all__ = ["FORMAT", "save_checkpoint",
           "load_checkpoint", "load_model", "check_fields", "check_resumable", "check_continues",
           "eval_transform", "seed_epoch", "run_checkpoint", "save_run", "start_run"]

FORMAT = "alexnet-edu/1"


def save_checkpoint(checkpoint: dict, path: str | Path) -> Path:
    """Write `checkpoint` atomically (`files.write_atomic`); a failed write is an OSError saying
    why and what is intact (`validation.raise_failed_write`)."""
    path = Path(path)
    try:
        return write_atomic(path, lambda tmp: torch.save(checkpoint, tmp))
    except (OSError, RuntimeError) as err:
        raise_failed_write(err, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with ``torch.load(weights_only=True)`` once the CRC of every member of its
    zip archive is checked (torch.load does not: damaged bytes would load as weights)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: train one (alexnet-edu train "
                                "--dataset fashion-mnist, notebook 04, or train.fit)")
    check_archive(path)
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


def load_model(path: str | Path, device: str | torch.device | None = None) -> tuple[AlexNet, dict]:
    """(the checkpoint's model, in eval mode on `device` (default CPU), the checkpoint)."""
    checkpoint = load_checkpoint(path)
    check_fields(checkpoint, path)
    model = AlexNet(**checkpoint["model_config"])
    model.load_state_dict(checkpoint["model"])
    return model.to(device or "cpu").eval(), checkpoint


def eval_transform(checkpoint: dict) -> nn.Module:
    """The checkpoint's evaluation BatchTransform: its input size, normalization, channels."""
    return BatchTransform(checkpoint["image_size"], tuple(checkpoint["mean"]),
                          tuple(checkpoint["std"]), train=False,
                          out_channels=checkpoint["model_config"]["in_channels"],
                          resize_size=checkpoint.get("resize_size"))


def seed_epoch(seed: int, epoch: int, rank: int = 0) -> None:
    """Seed Python's, NumPy's and PyTorch's generators (every device's) from (seed, epoch, rank)
    alone: a run resumed at `epoch` draws the crops, flips and dropout masks a straight run does."""
    state = np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0]
    random.seed(int(state))
    np.random.seed(state)
    torch.manual_seed(int(state))


def run_checkpoint(model: AlexNet, splits, config, history: list[dict], optimizer=None,
                   scheduler=None, scaler=None) -> dict:
    """A run's checkpoint: last.pt's with optimizer, scheduler and scaler, else best.pt's."""
    checkpoint = {
        "format": FORMAT, "model_config": dict(model.config),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "classes": list(splits.classes), "mean": [float(m) for m in splits.mean],
        "std": [float(s) for s in splits.std], "image_size": model.config["image_size"],
        "in_channels_data": int(splits.in_channels), "dataset": splits.name,
        "synthetic": bool(getattr(splits, "synthetic", False)),
        "split": dict(getattr(splits, "recipe", {}) or {}),   # seed, fraction, fingerprints
        "epoch": len(history), "history": list(history),
        "best_val_acc": max((row["val_acc"] for row in history), default=-1.0),
        "train_config": asdict(config),
        "processes": distributed.world_size(),   # data-parallel processes that trained it
    }
    if optimizer is not None:
        checkpoint.update(optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                          scaler=scaler.state_dict())
    return checkpoint


def save_run(run_dir: Path, model: AlexNet, splits, config, history: list[dict], optimizer,
             scheduler, scaler) -> None:
    """last.pt, best.pt when the last epoch is the best yet, history.json; each atomically."""
    if history[-1]["val_acc"] > max((r["val_acc"] for r in history[:-1]), default=-1.0):
        save_checkpoint(run_checkpoint(model, splits, config, history), run_dir / "best.pt")
    save_checkpoint(run_checkpoint(model, splits, config, history, optimizer, scheduler, scaler),
                    run_dir / "last.pt")
    write_atomic(run_dir / "history.json", json.dumps(history, indent=1))


def start_run(run_dir: Path, resume: bool, model: AlexNet, splits, config, optimizer, scheduler,
              scaler) -> tuple[int, list[dict]]:
    """(epochs done, history): with `resume`, ``run_dir/last.pt``'s, loaded into the model,
    optimizer, scheduler and scaler once checked to continue this run on `splits`; else (0, [])."""
    run_dir.mkdir(parents=True, exist_ok=True)
    last, say = run_dir / "last.pt", print if distributed.is_main() else (lambda text: None)
    if not (resume and last.exists()):
        if resume or last.exists():
            say(f"Nothing to resume in {shown_path(run_dir)} (no last.pt): starting a new run"
                if resume else f"Starting a new run: {shown_path(last)} will be overwritten "
                "(resume=True continues it)")
        return 0, []
    checkpoint = load_checkpoint(last)
    check_resumable(checkpoint, last)
    check_continues(checkpoint, model.config, splits.classes, config, distributed.world_size(),
                    (getattr(splits, "recipe", None) or {}).get("val"))
    model.load_state_dict(checkpoint["model"])
    validation.load_optimizer_state(optimizer, checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    # --amp may change at a resume: a float16 scaler after a run without one starts fresh (its
    # first steps find the scale again); one that is off now has nothing to load
    if scaler.is_enabled() and checkpoint.get("scaler"):
        scaler.load_state_dict(checkpoint["scaler"])
    elif scaler.is_enabled():
        say(f"{shown_path(last)} was trained without loss scaling: float16 continues with a "
            "fresh loss scaler")
    say(f"Resuming {shown_path(last)} after epoch {checkpoint['epoch']}")
    return checkpoint["epoch"], list(checkpoint["history"])
