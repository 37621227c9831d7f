"""Checkpoints: a dict saved with `torch.save` and loaded with ``torch.load(weights_only=True)``
(no code runs). best.pt holds what *using* the model needs, last.pt also what *continuing* needs.
A run resumes at an epoch boundary, as torchvision's reference script does, bit-exactly: every
epoch draws its randomness from (seed, epoch, rank) alone (`seed_epoch`)."""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import distributed
from .files import shown_path, write_atomic
from .model import AlexNet
from .transforms import BatchTransform
from .validation import check_fields, check_resumable

__all__ = ["FORMAT", "RECIPE", "save_checkpoint",
           "load_checkpoint", "load_model", "check_fields", "check_resumable", "check_continues",
           "eval_transform", "seed_epoch", "run_checkpoint", "save_run", "start_run"]

FORMAT = "alexnet-edu/1"
# The TrainConfig fields a resumed run keeps (epochs, amp, workers, logging may change): the saved
# optimizer and scheduler would silently replace a new lr, momentum, weight decay or patience;
# another batch size, schedule, augmentation or seed makes the rest of it another run.
RECIPE = ("batch_size", "lr", "momentum", "weight_decay", "lr_factor", "patience", "min_lr",
          "warmup_epochs", "schedule", "augment", "pca_std", "seed")


def save_checkpoint(checkpoint: dict, path: str | Path) -> Path:
    """Write `checkpoint` atomically (`files.write_atomic`). A failed write, also one torch.save
    reports as a RuntimeError from its zip writer, is an OSError saying why and what is intact."""
    path = Path(path)
    try:
        return write_atomic(path, lambda tmp: torch.save(checkpoint, tmp))
    except (OSError, RuntimeError) as err:
        if isinstance(err, RuntimeError) and not any(
                sign in str(err) for sign in ("unexpected pos", "StreamWriter", "write")):
            raise   # not a failed write (e.g. an object torch.save cannot pickle)
        why = err.strerror if isinstance(err, OSError) and err.strerror else str(err).strip()
        with contextlib.suppress(OSError):
            why += f"; {shutil.disk_usage(path.parent).free / 2**20:.0f} MB free there"
        kept = (f"the previous {path.name} is intact" if path.exists()
                else f"no {path.name} was written")
        # the run's last.pt, where there is one, is what a resume continues from
        then = ("then resume the run" if (path.parent / "last.pt").is_file() else
                "then start the run again: no last.pt was written, so there is nothing to resume")
        raise OSError(f"could not write the checkpoint {path} ({why.splitlines()[0]}); {kept}. "
                      f"Free disk space (or fix the folder's permissions), {then}") from err


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with ``torch.load(weights_only=True)`` once the CRC of every member of its
    zip archive is checked (torch.load does not: damaged bytes would load as weights)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path} (train one with alexnet_edu.train.fit "
                                "or notebook 04)")
    _check_archive(path)
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


def _check_archive(path: Path) -> None:
    """A ValueError unless `path` is a zip archive (what torch.save writes) whose every member
    matches the CRC-32 stored at save (zipfile's testzip: the whole file is read once)."""
    try:
        if not zipfile.is_zipfile(path):
            raise ValueError(f"{path} is not a checkpoint: not the zip archive torch.save "
                             "writes (another kind of file, or a truncated one); use a "
                             "best.pt/last.pt that training wrote")
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
        damaged = f"its archive ({err})"
    if damaged is not None:
        raise ValueError(f"{path} is damaged: {damaged} does not match the checksum saved with "
                         "it (bytes changed on disk or in a copy): its weights cannot be trusted; "
                         "use the run's best.pt or last.pt, an intact copy, or train again")


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


def check_continues(checkpoint: dict, model_config: dict | None = None,
                    classes: Sequence[str] | None = None, train_config=None,
                    processes: int | None = None) -> None:
    """One ValueError naming all that keeps `checkpoint` from continuing as this run: another model,
    classes, recipe (`RECIPE`) or number of processes; an argument None is not checked."""
    problems, theirs = [], checkpoint.get("model_config") or {}
    saved = checkpoint.get("train_config") or {}
    if model_config is not None and theirs != model_config:
        problems.append("a different model: " + ", ".join(
            f"{k}={theirs.get(k)!r} in the checkpoint but {model_config.get(k)!r} here"
            for k in sorted(set(model_config) | set(theirs))
            if theirs.get(k) != model_config.get(k)))
    if classes is not None and list(classes) != list(checkpoint.get("classes") or []):
        problems.append(f"the checkpoint's classes {checkpoint.get('classes')} differ from the "
                        f"data's {list(classes)}: it belongs to another dataset")
    mine = train_config if isinstance(train_config, dict | None) else asdict(train_config)
    changed = [f"{k}={mine[k]!r} (the run's: {saved[k]!r})" for k in RECIPE
               if k in saved and k in (mine or {}) and saved[k] != mine[k]]
    if changed:
        problems.append(f"another recipe: {', '.join(changed)}")
    trained_by, batch = checkpoint.get("processes", 1), saved.get("batch_size") or 0
    if processes is not None and trained_by != processes:   # the batch size is per process
        problems.append(
            f"trained by {trained_by} process(es) with batch {batch} each, {processes} would "
            f"make its steps of {batch * processes} images instead of {batch * trained_by} at "
            "the same learning rate: resume it " + ("in one process (without torchrun)" if
            trained_by == 1 else f"with torchrun --nproc-per-node {trained_by}"))
    if problems:
        raise ValueError(f"the checkpoint cannot continue this run: {'; '.join(problems)}. A "
                         "resumed run keeps its model, classes and recipe (epochs may grow): "
                         "resume with the run's own, or start a new run in another folder")


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


def start_run(run_dir: Path, resume: bool, model: AlexNet, classes: Sequence[str], config,
              optimizer, scheduler, scaler) -> tuple[int, list[dict]]:
    """(epochs done, history): with `resume`, ``run_dir/last.pt``'s, loaded into the model,
    optimizer, scheduler and scaler once it is checked to continue this run; else (0, [])."""
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
    check_continues(checkpoint, model.config, classes, config, distributed.world_size())
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
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
