"""Checkpoints: the file format, saving and loading it safely, and exact resume.

A checkpoint is a dict saved with `torch.save` and loaded with ``torch.load(weights_only=True)``
(no code runs on load). It holds what is needed to *use* the model (its configuration, classes,
normalization, input size: `load_model`, `eval_transform`) and, in ``last.pt``, what is needed to
*continue* training exactly (optimizer, scheduler, AMP scaler, where in which epoch, and the
random-number generators' states: `RunFiles`, `Progress`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import math
import random
import shutil
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import distributed
from .files import write_atomic
from .model import ACTIVATIONS, INITS, VARIANTS, AlexNet, smallest_image_size
from .settings import shown_path
from .transforms import BatchTransform

__all__ = ["FORMAT", "MAX_IMAGE_SIZE", "MAX_CLASSES", "RECIPE", "save_checkpoint",
           "load_checkpoint", "load_model", "check_fields", "check_resumable", "check_compatible",
           "eval_transform", "Progress", "RunFiles", "rng_state", "set_rng_state",
           "seed_everything"]

FORMAT = "alexnet-edu/1"
MAX_IMAGE_SIZE = 1024   # px: conv1's maps alone take 1.3 GB per 128-image batch at 1024
MAX_CLASSES = 100_000   # fc8 alone is 1.6 GB at 100k classes (ImageNet-21k has 21,841)
MAX_CHANNELS = 4        # grey, RGB, RGBA
# The TrainConfig fields that make a run what it is: a resumed run keeps them (epochs may grow;
# amp, workers, logging may change). The optimizer's and scheduler's saved states would silently
# replace a new lr, momentum, weight decay or patience; another batch size would skip the wrong
# images mid-epoch; another schedule, augmentation or seed makes the rest of it another run.
RECIPE = ("batch_size", "lr", "momentum", "weight_decay", "lr_factor", "patience", "min_lr",
          "warmup_epochs", "schedule", "augment", "pca_std", "seed")


def save_checkpoint(checkpoint: dict, path: str | Path) -> Path:
    """Write `checkpoint` atomically (`files.write_atomic`): a crash or a full disk leaves the
    previous file at `path` untouched. A failed write raises an OSError that says which file,
    why, and that the previous one is intact -- also where torch.save reports a full disk as a
    RuntimeError from its zip writer."""
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
        raise OSError(getattr(err, "errno", None) or errno.EIO,
                      f"could not write the checkpoint {path} ({why.splitlines()[0]}); {kept}. "
                      f"Free disk space (or fix the folder's permissions), {then}") from err


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load an alexnet-edu checkpoint with ``torch.load(weights_only=True)`` (no code runs),
    after checking the CRC of every member of its zip archive: torch.load does not, and would
    return weights with damaged bytes as if they were right. A ValueError says what is wrong."""
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
        raise ValueError(f"{path} is damaged: {damaged} does not match the checksum stored when "
                         "it was saved (bytes changed on disk or in a copy), so its weights "
                         "cannot be trusted; use the run's other checkpoint (best.pt or "
                         "last.pt) or an intact copy, or train again")


def load_model(path: str | Path, device: str | torch.device | None = None
               ) -> tuple[AlexNet, dict]:
    """Rebuild the checkpoint's model (in eval mode, on `device`, default CPU) and return it with
    the checkpoint (classes, mean, std, image_size, history...)."""
    checkpoint = load_checkpoint(path)
    check_fields(checkpoint, path)
    model = AlexNet(**checkpoint["model_config"])
    model.load_state_dict(checkpoint["model"])
    return model.to(device or "cpu").eval(), checkpoint


def eval_transform(checkpoint: dict) -> nn.Module:
    """The evaluation transform a checkpoint needs: its input size, normalization and channels
    (its ``ten_crop_batch`` gives the paper's ten test patches)."""
    return BatchTransform(checkpoint["image_size"], tuple(checkpoint["mean"]),
                          tuple(checkpoint["std"]), train=False,
                          out_channels=checkpoint["model_config"]["in_channels"],
                          resize_size=checkpoint.get("resize_size"))


def check_fields(checkpoint: dict, path: str | Path) -> None:
    """Every field `load_model` and `eval_transform` use, checked before anything is built, with
    the field named: a hand-edited or corrupted checkpoint gets a clear ValueError, never a
    KeyError, a traceback from deep inside, gigabytes allocated, or NaN output. The model's
    configuration is bounded and its weights must be exactly the tensors that configuration
    builds (compared on PyTorch's meta device, which allocates nothing)."""
    def bad(field: str, why: str) -> ValueError:
        return ValueError(f"{path}: the checkpoint's {field!r} {why}; it was edited or damaged - "
                          "use the best.pt/last.pt that training wrote")

    config = checkpoint.get("model_config")
    if not isinstance(config, dict):
        raise bad("model_config", "is missing")
    _check_model_config(config, bad)
    classes = checkpoint.get("classes")
    if (not isinstance(classes, list) or not all(isinstance(c, str) for c in classes)
            or len(classes) != config["num_classes"]):
        raise bad("classes", f"must be a list of {config['num_classes']} class names "
                             f"(one per output), got {type(classes).__name__} "
                             f"{len(classes) if isinstance(classes, list) else ''}".rstrip())
    size = checkpoint.get("image_size")
    if size != config["image_size"] or type(size) is not int:
        raise bad("image_size", f"({size!r}) must be the model's, model_config['image_size'] = "
                                f"{config['image_size']}")
    resize = checkpoint.get("resize_size")
    if resize is not None and (type(resize) is not int
                               or not size <= resize <= 2 * MAX_IMAGE_SIZE):
        raise bad("resize_size", f"must be an integer from the image size {size} to "
                                 f"{2 * MAX_IMAGE_SIZE} (or absent), got {resize!r}")
    channels = checkpoint.get("in_channels_data", config["in_channels"])
    if channels not in (config["in_channels"], 1) or type(channels) is not int:
        raise bad("in_channels_data", f"must be the model's {config['in_channels']} input "
                                      f"channels (or 1, grey data repeated), got {channels!r}")
    for name in ("mean", "std"):
        value = checkpoint.get(name)
        if (not isinstance(value, list) or len(value) != channels
                or not all(isinstance(v, float) and math.isfinite(v) for v in value)
                or (name == "std" and min(value) <= 0)):
            raise bad(name, f"must be {channels} finite numbers (one per channel"
                            f"{', positive' if name == 'std' else ''}), got {value!r}")
    _check_weights(checkpoint.get("model"), config, bad)
    _check_data_record(checkpoint, bad)


def _check_data_record(checkpoint: dict, bad) -> None:
    """What `evaluate` and `train --resume` rebuild the run's data from: the dataset's name and
    the split recipe (seed, fraction, limit, fingerprints of the held-out splits)."""
    if not isinstance(checkpoint.get("dataset", ""), str):
        raise bad("dataset", f"must be the dataset's name, got {checkpoint['dataset']!r}")
    split = checkpoint.get("split", {})
    if not isinstance(split, dict):
        raise bad("split", f"must be the run's split recipe, got {type(split).__name__}")
    checks = {"seed": (lambda v: type(v) is int and 0 <= v < 2**32, "an integer seed"),
              "val_fraction": (lambda v: type(v) in (int, float) and 0 <= v < 1,
                               "a number in [0, 1)"),
              "limit": (lambda v: v is None or (type(v) is int and v >= 1),
                        "a positive integer or None"),
              "test_images": (lambda v: type(v) is int and v >= 0, "a count"),
              "val": (lambda v: v is None or isinstance(v, str), "a fingerprint"),
              "test": (lambda v: v is None or isinstance(v, str), "a fingerprint")}
    for key, (ok, what) in checks.items():
        if key in split and not ok(split[key]):
            raise bad(f"split[{key!r}]", f"must be {what}, got {split[key]!r}")


def _check_model_config(config: dict, bad) -> None:
    """Each AlexNet argument in `config` of the right type, within bounds (none missing, no
    other): a crafted in_channels=50000 must not allocate gigabytes before it is refused."""
    number = (lambda lo, hi: lambda v: type(v) is int and lo <= v <= hi)
    allowed = {
        "num_classes": (number(2, MAX_CLASSES), f"an integer from 2 to {MAX_CLASSES:,}"),
        "in_channels": (number(1, MAX_CHANNELS), f"an integer from 1 to {MAX_CHANNELS}"),
        "image_size": (number(1, MAX_IMAGE_SIZE), f"an integer up to {MAX_IMAGE_SIZE}"),
        "variant": (lambda v: v in VARIANTS, f"one of {VARIANTS}"),
        "groups": (lambda v: v in (1, 2) and type(v) is int, "1 or 2"),
        "lrn": (lambda v: type(v) is bool, "True or False"),
        "dropout": (lambda v: type(v) in (int, float) and 0 <= v < 1, "a number in [0, 1)"),
        "init": (lambda v: v in INITS, f"one of {INITS}"),
        "activation": (lambda v: v in ACTIVATIONS, f"one of {tuple(ACTIVATIONS)}"),
        "overlapping_pool": (lambda v: type(v) is bool, "True or False"),
    }
    unknown = sorted(map(str, set(config) - set(allowed)))
    missing = [k for k in ("num_classes", "in_channels", "image_size") if k not in config]
    if unknown or missing:
        raise bad("model_config", f"has {'unknown' if unknown else 'no'} field(s) "
                                  f"{', '.join(unknown or missing)}")
    for key, (ok, what) in allowed.items():
        if key in config and not ok(config[key]):
            raise bad(f"model_config[{key!r}]", f"must be {what}, got {config[key]!r}")
    smallest = smallest_image_size(config.get("variant", "paper"),
                                   3 if config.get("overlapping_pool", True) else 2)
    if config["image_size"] < smallest:
        raise bad("model_config['image_size']", f"must be at least {smallest} (the smallest "
                                                 f"input this layout takes), got "
                                                 f"{config['image_size']}")


def _check_weights(weights, config: dict, bad) -> None:
    """Floating-point, finite tensors of exactly the names and shapes `config`'s AlexNet has."""
    if not isinstance(weights, dict) or not weights:
        raise bad("model", "is missing (no weights)")
    odd = [str(k) for k, t in weights.items() if not (torch.is_tensor(t) and t.is_floating_point())]
    if odd:
        kind = weights[odd[0]].dtype if torch.is_tensor(weights[odd[0]]) else type(weights[odd[0]])
        raise bad("model", f"holds {odd[0]} as {kind}, not floating-point weights "
                           f"({len(odd)} such entries)")
    with torch.device("meta"):   # shapes only: nothing is allocated
        expected = AlexNet(**config)
    try:
        expected.load_state_dict(weights, assign=True)   # renames older layouts' keys too
    except RuntimeError as err:
        problem = next((line.strip() for line in str(err).splitlines()[1:] if line.strip()),
                       str(err))
        raise bad("model", f"does not fit its model_config ({problem[:200]})") from None
    broken = [name for name, t in weights.items() if not torch.isfinite(t).all()]
    if broken:
        raise bad("model", f"holds NaN or infinite weights in {', '.join(broken[:3])}"
                           f"{' ...' if len(broken) > 3 else ''} (a diverged run or corrupted "
                           "bytes), so every prediction would be meaningless")


def check_resumable(checkpoint: dict, path: str | Path) -> None:
    """Every field `RunFiles.resume` uses, checked before anything is loaded: a best.pt copied
    to last.pt, an older or edited file gets one clear ValueError, not a KeyError or torch's
    internals halfway through a resume."""
    if not isinstance(checkpoint.get("optimizer"), dict):
        raise ValueError(f"{path} is not a resumable last.pt: it has no optimizer state (a "
                         "best.pt keeps only what using the model needs). Resume from the "
                         "run's own last.pt, or start a new run in another folder")

    def bad(field: str, why: str) -> ValueError:
        return ValueError(f"{path}: the checkpoint's {field!r} {why}; it was edited or damaged "
                          "- it cannot continue the run exactly; start a new run in another "
                          "folder (its best.pt still evaluates)")

    count = (lambda v: type(v) is int and v >= 0)
    for key, ok, what in (
            ("epoch", count, "a count"), ("batch", count, "a count"),
            ("scheduler", lambda v: isinstance(v, dict), "a dict"),
            ("history", lambda v: isinstance(v, list) and all(isinstance(r, dict) for r in v),
             "a list of epoch rows"),
            ("best_val_acc", lambda v: type(v) in (int, float), "a number"),
            ("train_config", lambda v: isinstance(v, dict), "a dict"),
            ("partial", _partial_ok, "the epoch's sums (loss, correct, seen)")):
        if not ok(checkpoint.get(key)):
            raise bad(key, f"must be {what}, got {type(checkpoint.get(key)).__name__}")
    others = checkpoint.get("other_ranks", [])   # data-parallel: the other processes' own
    states = [checkpoint.get("rng"), *(r.get("rng") if isinstance(r, dict) else None
                                       for r in (others if isinstance(others, list) else [0]))]
    for rank, state in enumerate(states):
        problem = _rng_problem(state)
        if problem:
            raise bad("rng" if rank == 0 else f"other_ranks[{rank - 1}]['rng']", problem)


def _partial_ok(sums) -> bool:
    return (isinstance(sums, dict) and type(sums.get("loss")) in (int, float)
            and all(type(sums.get(k)) is int and sums[k] >= 0 for k in ("correct", "seen")))


def _rng_problem(state) -> str | None:
    """What is wrong with a saved `rng_state()` (None: it can be put back)."""
    if not isinstance(state, dict):
        return f"must be the saved random generators' states, got {type(state).__name__}"
    now = torch.get_rng_state()
    torch_state, cuda = state.get("torch"), state.get("cuda")
    if not (torch.is_tensor(torch_state) and torch_state.dtype == now.dtype
            and torch_state.shape == now.shape):
        return f"['torch'] must be a {now.numel()}-byte generator state"
    if not (isinstance(cuda, list) and all(torch.is_tensor(c) and c.dtype == torch.uint8
                                           and c.dim() == 1 for c in cuda)):
        return "['cuda'] must be a list of CUDA generator states"
    n = state.get("numpy")
    word = (lambda v: type(v) is int and 0 <= v < 2**32)
    if not (isinstance(n, dict) and torch.is_tensor(n.get("keys")) and n["keys"].shape == (624,)
            and not n["keys"].is_floating_point() and 0 <= n["keys"].min()
            and n["keys"].max() < 2**32 and type(n.get("pos")) is int and 0 <= n["pos"] <= 624
            and n.get("has_gauss") in (0, 1) and type(n.get("gauss")) is float):
        return "['numpy'] must be NumPy's MT19937 state (624 keys, pos, has_gauss, gauss)"
    python = state.get("python")
    if not (isinstance(python, list) and len(python) == 3 and type(python[0]) is int
            and isinstance(python[1], list) and len(python[1]) == 625
            and all(map(word, python[1])) and python[1][-1] <= 624
            and (python[2] is None or type(python[2]) is float)):
        return "['python'] must be Python's random state (version, 625 words, gauss)"
    return None


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


# ---------------------------------------------------------------------------------------------
# Exact resume
# ---------------------------------------------------------------------------------------------

def rng_state() -> dict:
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


def set_rng_state(state: dict) -> None:
    """Put back what `rng_state` returned."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's generators (every CUDA device's too)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _zero_sums() -> dict:
    return {"loss": 0.0, "correct": 0, "seen": 0}


@dataclass
class Progress:
    """Where a run stands: with the model and optimizer, all that exact resume needs.

    A run is between batches (``batch_rng`` None) or inside batch number ``batch`` of epoch
    ``epoch`` (both counted from 0), which started from the random state ``batch_rng``: an
    interrupted batch is replayed from there, with the same crops, flips and dropout masks."""

    epoch: int = 0                # epochs finished
    batch: int = 0                # batches of the current epoch finished
    sums: dict = field(default_factory=_zero_sums)   # loss, correct, seen in the current epoch
    best_val_acc: float = -1.0
    history: list[dict] = field(default_factory=list)
    batch_rng: dict | None = None

    def start_batch(self) -> None:
        self.batch_rng = rng_state()

    def end_batch(self, loss: float, correct: int, seen: int) -> None:
        self.sums["loss"] += loss * seen
        self.sums["correct"] += correct
        self.sums["seen"] += seen
        self.batch, self.batch_rng = self.batch + 1, None

    def end_epoch(self, row: dict) -> bool:
        """Record the epoch's history row; True if its validation accuracy is the best yet."""
        self.history.append(row)
        self.epoch, self.batch, self.sums = self.epoch + 1, 0, _zero_sums()
        best = row["val_acc"] > self.best_val_acc
        self.best_val_acc = max(self.best_val_acc, row["val_acc"])
        return best


class RunFiles:
    """A run's folder: ``last.pt`` after every epoch (and at an interruption), ``best.pt`` at the
    best validation accuracy (no optimizer state: it is for *using* the model), ``history.json``
    (the curves, for any tool). `resume` puts the objects back exactly as `save` found them."""

    def __init__(self, run_dir: Path, model: AlexNet, optimizer, scheduler, scaler, splits,
                 config) -> None:
        self.dir, self.last, self.best = run_dir, run_dir / "last.pt", run_dir / "best.pt"
        self.model, self.optimizer, self.scheduler, self.scaler = (model, optimizer, scheduler,
                                                                   scaler)
        self.splits, self.config = splits, config

    def checkpoint(self, progress: Progress) -> dict | None:
        """`progress` as a checkpoint, on rank 0 (None on the others). In data-parallel training
        a collective: every process sends its own random state and partial sums, which the
        checkpoint holds in rank order, ``rng`` and ``partial`` rank 0's, ``other_ranks`` the
        rest's (``processes`` - 1 of them)."""
        ranks = distributed.gather({"rng": progress.batch_rng or rng_state(),
                                    "partial": dict(progress.sums)})
        if ranks is None:
            return None
        splits = self.splits
        return {
            "format": FORMAT, "model_config": dict(self.model.config),
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "classes": list(splits.classes), "mean": [float(m) for m in splits.mean],
            "std": [float(s) for s in splits.std], "image_size": self.model.config["image_size"],
            "in_channels_data": int(splits.in_channels), "dataset": splits.name,
            "synthetic": bool(getattr(splits, "synthetic", False)),
            "split": dict(getattr(splits, "recipe", {}) or {}),   # seed, fraction, fingerprints
            "epoch": progress.epoch, "batch": progress.batch, "partial": ranks[0]["partial"],
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(), "rng": ranks[0]["rng"],
            "other_ranks": ranks[1:],
            "history": list(progress.history), "best_val_acc": progress.best_val_acc,
            "train_config": dataclasses.asdict(self.config),
            "processes": distributed.world_size(),   # data-parallel processes that trained it
        }

    def save(self, progress: Progress, best: bool = False) -> None:
        """last.pt (and best.pt when `best`) and history.json, each written atomically (by
        rank 0 alone in data-parallel training: the processes hold the same weights; every
        process must call it, to send its random state)."""
        checkpoint = self.checkpoint(progress)
        if checkpoint is None:   # not rank 0
            return
        if best:
            save_checkpoint({k: v for k, v in checkpoint.items() if k != "optimizer"}, self.best)
        save_checkpoint(checkpoint, self.last)
        write_atomic(self.dir / "history.json", json.dumps(progress.history, indent=1))

    def resume(self) -> Progress | None:
        """Load last.pt into the model, optimizer, scheduler, scaler and RNGs; None if absent."""
        if not self.last.exists():
            if distributed.is_main():
                print(f"Nothing to resume in {shown_path(self.dir)} (no last.pt): starting a new "
                      "run")
            return None
        checkpoint = load_checkpoint(self.last, map_location="cpu")
        check_resumable(checkpoint, self.last)
        check_compatible(checkpoint, self.model, self.splits.classes)
        saved = checkpoint.get("train_config") or {}
        changed = [f"{k}={getattr(self.config, k)!r} (the run's: {saved[k]!r})" for k in RECIPE
                   if k in saved and saved[k] != getattr(self.config, k)]
        if changed:
            raise ValueError(f"{self.last} was trained with another recipe: {', '.join(changed)}."
                             " A resumed run keeps its recipe (epochs may grow): resume "
                             "with the run's TrainConfig, or start a new run in another folder")
        mine = self._this_process(checkpoint, saved.get("batch_size"))
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self._resume_scaler(checkpoint.get("scaler") or {}, saved.get("amp"))
        set_rng_state(mine["rng"])
        progress = Progress(checkpoint["epoch"], checkpoint["batch"], dict(mine["partial"]),
                            checkpoint["best_val_acc"], list(checkpoint["history"]))
        if distributed.is_main():
            print(f"Resuming {shown_path(self.last)} at epoch {progress.epoch + 1}"
                  + (f", batch {progress.batch + 1}" if progress.batch else ""))
        return progress

    def _this_process(self, checkpoint: dict, batch_size: int | None) -> dict:
        """This process's random state and partial sums in `checkpoint` (``rng`` and ``partial``
        in one process), after checking that as many processes resume it as trained it: the
        batch size is per process, so another number would change the images per step (and
        the gradient's noise) at the same learning rate, and each process continues its own
        random stream."""
        trained_by, now = checkpoint.get("processes", 1), distributed.world_size()
        if trained_by != now:
            how = ("in one process (without torchrun)" if trained_by == 1 else
                   f"with {trained_by} processes (torchrun --nproc-per-node {trained_by})")
            raise ValueError(f"{self.last} was trained by {trained_by} process(es) with batch "
                             f"{batch_size} each, {now} would make its steps of "
                             f"{(batch_size or 0) * now} images instead of "
                             f"{(batch_size or 0) * trained_by} at the same learning rate: "
                             f"resume it {how}, or start a new run in another folder")
        others = checkpoint.get("other_ranks", [])
        states = [{"rng": checkpoint["rng"], "partial": checkpoint["partial"]},
                  *(others if isinstance(others, list) else [])]
        if len(states) != trained_by or not all(
                isinstance(s, dict) and isinstance(s.get("rng"), dict)
                and isinstance(s.get("partial"), dict) for s in states):
            raise ValueError(f"{self.last} holds the random states of {len(states)} of the "
                             f"{trained_by} processes that trained it (an older alexnet-edu "
                             "kept rank 0's only, or the file was edited): it cannot continue "
                             "exactly; start a new run in another folder")
        return states[distributed.rank()]

    def _resume_scaler(self, state: dict, saved_amp: str | None) -> None:
        """The float16 loss scale, when both runs use one. A run may change its precision
        (--amp) at a resume: a scaler that was off then starts fresh (its first steps find
        the scale again, skipping a few updates); one that is off now has nothing to load."""
        if not self.scaler.is_enabled():
            return
        if state:
            self.scaler.load_state_dict(state)
        elif distributed.is_main():
            print(f"{shown_path(self.last)} was trained without loss scaling (amp="
                  f"{saved_amp or '?'}): float16 continues with a fresh loss scaler")

    def save_interrupted(self, progress: Progress) -> None:
        """Save where an interrupted run stands (inside an epoch) and say how to continue
        (data-parallel: every process calls it, at the same step; rank 0 alone speaks)."""
        speak = print if distributed.is_main() else _silent
        if progress.epoch == progress.batch == 0:   # nothing was trained: nothing to save
            speak("Interrupted before the first batch finished: nothing was saved"
                  + (f" ({shown_path(self.last)} is an earlier run's)" if self.last.exists()
                     else ""))
            return
        if progress.batch == 0:
            speak(f"Interrupted after epoch {progress.epoch}: {shown_path(self.last)} holds it; "
                  "fit(..., resume=True) continues")
            return
        checkpoint = self.checkpoint(progress)   # every process sends its random state
        if checkpoint is None:
            return
        save_checkpoint(checkpoint, self.last)
        print(f"Interrupted in epoch {progress.epoch + 1} after batch {progress.batch}: saved "
              f"{shown_path(self.last)}; fit(..., resume=True) continues exactly from there")


def _silent(*args, **kwargs) -> None:
    """print's stand-in in the data-parallel processes other than rank 0."""
