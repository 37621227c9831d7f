"""Checks of what a user hands the trainer: every checkpoint field a command or a resume uses
(one ValueError naming it, never a KeyError, gigabytes allocated or NaN output), a checkpoint
file's checksums, whether it continues this run (its recipe) and its optimizer state made fit for
this run, a TrainConfig's ranges, whether a model fits the data; and what a failed checkpoint
write tells the user."""

from __future__ import annotations

import contextlib
import math
import shutil
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import NoReturn

import torch

from .model import ACTIVATIONS, INITS, VARIANTS, AlexNet, smallest_image_size

__all__ = ["MAX_IMAGE_SIZE", "MAX_CLASSES", "MAX_CHANNELS", "check_fields", "check_resumable",
           "check_train_config", "check_fits", "RECIPE", "check_continues", "check_archive",
           "raise_failed_write", "check_available", "check_tta", "load_optimizer_state"]

MAX_IMAGE_SIZE = 1024   # px: conv1's maps alone take 1.3 GB per 128-image batch at 1024
MAX_CLASSES = 100_000   # fc8 alone is 1.6 GB at 100k classes (ImageNet-21k has 21,841)
MAX_CHANNELS = 4        # grey, RGB, RGBA
# The TrainConfig fields a resumed run keeps (epochs, amp, workers, logging may change): the saved
# optimizer and scheduler would silently replace a new lr, momentum, weight decay or patience;
# another batch size, schedule, augmentation or seed makes the rest of it another run.
RECIPE = ("batch_size", "lr", "momentum", "weight_decay", "lr_factor", "patience", "min_lr",
          "warmup_epochs", "schedule", "augment", "pca_std", "seed")


def check_fields(checkpoint: dict, path: str | Path) -> None:
    """Every field `load_model` and `eval_transform` use: the model's configuration bounded, its
    weights exactly the tensors that configuration builds (checked on the meta device)."""
    bad = _complaint(path, "use the best.pt/last.pt that training wrote")
    config = checkpoint.get("model_config")
    if not isinstance(config, dict):
        raise bad("'model_config'", "is missing")
    _check_model_config(config, bad)
    size, n, model_channels = config["image_size"], config["num_classes"], config["in_channels"]
    channels = checkpoint.get("in_channels_data", model_channels)
    numbers = (lambda v: isinstance(v, list) and len(v) == channels
               and all(isinstance(x, float) and math.isfinite(x) for x in v))
    _check_table({"classes": None, "image_size": None, "mean": None, "std": None, **checkpoint}, {
        "classes": (lambda v: isinstance(v, list) and len(v) == n
                    and all(isinstance(c, str) for c in v), f"a list of {n} class names"),
        "image_size": (lambda v: v == size and type(v) is int, f"the model's ({size})"),
        "resize_size": (lambda v: v is None or (type(v) is int and size <= v <= 2 * MAX_IMAGE_SIZE),
                        f"an integer from the image size {size} to {2 * MAX_IMAGE_SIZE} or absent"),
        "in_channels_data": (lambda v: v in (model_channels, 1) and type(v) is int,
                             f"the model's {model_channels} channels (or 1, grey data repeated)"),
        "mean": (numbers, f"{channels} finite numbers (one per channel)"),
        "std": (lambda v: numbers(v) and min(v) > 0, f"{channels} positive finite numbers"),
        "dataset": (lambda v: isinstance(v, str), "the dataset's name")}, bad)
    _check_weights(checkpoint.get("model"), config, bad)
    split = checkpoint.get("split", {})   # what evaluate and --resume rebuild the data from
    if not isinstance(split, dict):
        raise bad("'split'", f"must be the run's split recipe, got {type(split).__name__}")
    _check_table(split, {
        "seed": (lambda v: type(v) is int and 0 <= v < 2**32, "an integer seed"),
        "val_fraction": (lambda v: type(v) in (int, float) and 0 <= v < 1, "a number in [0, 1)"),
        "limit": (lambda v: v is None or (type(v) is int and v >= 1), "a positive integer or None"),
        "test_images": (lambda v: type(v) is int and v >= 0, "a count"),
        "val": (lambda v: v is None or isinstance(v, str), "a fingerprint"),
        "test": (lambda v: v is None or isinstance(v, str), "a fingerprint")}, bad, "split[{!r}]")


def _complaint(path, what_to_do: str):
    return lambda field, why: ValueError(f"{path}: the checkpoint's {field} {why}; it was edited "
                                         f"or damaged - {what_to_do}")


def _check_table(values: dict, table: dict, bad, name: str = "{!r}") -> None:
    """Each key of `values` that `table` holds passes its (check, what it must be), or `bad`."""
    for key, (ok, what) in table.items():
        if key in values and not ok(values[key]):
            raise bad(name.format(key), f"must be {what}, got {values[key]!r:.60}")


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
        raise bad("'model_config'", f"has {'unknown' if unknown else 'no'} field(s) "
                                    f"{', '.join(unknown or missing)}")
    _check_table(config, allowed, bad, "model_config[{!r}]")
    smallest = smallest_image_size(config.get("variant", "paper"),
                                   3 if config.get("overlapping_pool", True) else 2)
    if config["image_size"] < smallest:
        raise bad("model_config['image_size']", f"must be at least {smallest} (the smallest input "
                  f"this layout takes), got {config['image_size']}")


def _check_weights(weights, config: dict, bad) -> None:
    """Floating-point, finite tensors of exactly the names and shapes `config`'s AlexNet has."""
    if not isinstance(weights, dict) or not weights:
        raise bad("'model'", "is missing (no weights)")
    odd = [str(k) for k, t in weights.items() if not (torch.is_tensor(t) and t.is_floating_point())]
    if odd:
        kind = weights[odd[0]].dtype if torch.is_tensor(weights[odd[0]]) else type(weights[odd[0]])
        raise bad("'model'", f"holds {odd[0]} as {kind}, not floating-point weights "
                           f"({len(odd)} such entries)")
    with torch.device("meta"):   # shapes only: nothing is allocated
        expected = AlexNet(**config)
    try:
        expected.load_state_dict(weights, assign=True)   # renames older layouts' keys too
    except RuntimeError as err:
        problem = next((line.strip() for line in str(err).splitlines()[1:] if line.strip()),
                       str(err))
        raise bad("'model'", f"does not fit its model_config ({problem[:200]})") from None
    broken = [name for name, t in weights.items() if not torch.isfinite(t).all()]
    if broken:
        raise bad("'model'", f"holds NaN or infinite weights in {', '.join(broken[:3])}"
                           f"{' ...' if len(broken) > 3 else ''} (a diverged run or corrupted "
                           "bytes), so every prediction would be meaningless")


def check_resumable(checkpoint: dict, path: str | Path) -> None:
    """Every field a resume uses, checked before anything is loaded: one clear ValueError for a
    best.pt copied to last.pt or an older or edited file, not a KeyError halfway through."""
    if not isinstance(checkpoint.get("optimizer"), dict):
        raise ValueError(f"{path} is not a resumable last.pt: it has no optimizer state (a "
                         "best.pt keeps only what using the model needs). Resume from the "
                         "run's own last.pt, or start a new run in another folder")

    bad = _complaint(path, "it cannot continue the run exactly; start a new run in another "
                           "folder (its best.pt still evaluates)")
    groups = checkpoint["optimizer"].get("param_groups")
    if not (isinstance(checkpoint["optimizer"].get("state"), dict) and isinstance(groups, list)
            and all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups)):
        raise bad("'optimizer'", "must be an optimizer's state_dict (a dict 'state' and a list "
                                 "'param_groups' of dicts with their 'params')")
    _check_table({"epoch": None, "scheduler": None, "history": None, "train_config": None,
                  **checkpoint}, {
        "epoch": (lambda v: type(v) is int and v >= 0, "a count"),
        "batch": (lambda v: v in (None, 0), "absent (a file saved inside an epoch, by an older "
                                            "alexnet-edu, cannot continue here)"),
        "scheduler": (lambda v: isinstance(v, dict), "a dict"),
        "scaler": (_scaler_state, "a dict: empty, or a GradScaler's state (finite scale > 0, "
                                  "growth_factor > 1, backoff_factor in (0, 1), ...)"),
        "history": (lambda v: isinstance(v, list) and all(isinstance(r, dict) for r in v),
                    "a list of epoch rows"),
        "train_config": (lambda v: isinstance(v, dict), "a dict"),
        "processes": (lambda v: v is None or (type(v) is int and v >= 1), "a count"),
        "split": (lambda v: v is None or isinstance(v, dict), "the run's split recipe (a dict)")},
        bad)


def load_optimizer_state(optimizer: torch.optim.Optimizer, saved: dict) -> None:
    """Load `saved` (an optimizer's state_dict) into `optimizer`, fit for this run:
    - with this run's kernel flags (fused, foreach): load_state_dict would take the saved run's,
      and a float16 resume of a float32 run must not step with fused SGD (train.make_optimizer);
    - each momentum buffer in its weight's memory layout: load_state_dict keeps the saved one
      (channels_last on a GPU), and fused SGD pairs weight, gradient and momentum by their place
      in memory, so a run resumed in the other layout (a GPU run continued on a CPU below 128 px)
      would add to each weight another weight's momentum."""
    flags = [{k: g[k] for k in ("fused", "foreach") if k in g} for g in optimizer.param_groups]
    if len(saved["param_groups"]) == len(flags):   # else torch's load_state_dict says what is wrong
        saved = {**saved, "param_groups": [{**group, **mine} for group, mine in
                                           zip(saved["param_groups"], flags)]}
    optimizer.load_state_dict(saved)
    for p, state in optimizer.state.items():
        buf = state.get("momentum_buffer")
        if buf is None:
            continue
        if buf.shape != p.shape:   # copy_ would broadcast it
            raise ValueError(f"the checkpoint's optimizer state has a momentum of shape "
                             f"{tuple(buf.shape)} for a weight of shape {tuple(p.shape)}: it is "
                             "not this model's (start a new run, or resume the run it came from)")
        if buf.stride() != p.stride():
            state["momentum_buffer"] = torch.empty_like(p).copy_(buf)


def _scaler_state(v) -> bool:
    """None, {} (no loss scaling), or what ``torch.amp.GradScaler.state_dict()`` writes, with
    values it can go on from (a scale of 0 turns every weight into NaN at the next step)."""
    if v is None or v == {}:
        return True
    finite = (lambda x: type(x) in (int, float) and math.isfinite(x))
    whole = (lambda x: type(x) is int)
    # >=: a later torch may save more keys
    return (isinstance(v, dict) and set(v) >= {"scale", "growth_factor", "backoff_factor",
                                               "growth_interval", "_growth_tracker"}
            and finite(v["scale"]) and v["scale"] > 0
            and finite(v["growth_factor"]) and v["growth_factor"] > 1
            and finite(v["backoff_factor"]) and 0 < v["backoff_factor"] < 1
            and whole(v["growth_interval"]) and v["growth_interval"] >= 1
            and whole(v["_growth_tracker"]) and v["_growth_tracker"] >= 0)


def check_train_config(config) -> None:
    """Each `train.TrainConfig` field in range, or a ValueError naming it."""
    for name, allowed in (("schedule", ("plateau", "cosine")),
                          ("amp", ("auto", "bf16", "fp16", "off"))):
        if getattr(config, name) not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, got {getattr(config, name)!r}")
    # (name, lowest, above it only, below): NaN fails every comparison, so is refused too
    for name, low, strict, high in (
            ("epochs", 1, False, math.inf), ("batch_size", 1, False, math.inf),
            ("patience", 0, False, math.inf), ("seed", 0, False, 2**32),   # NumPy's seeds
            ("lr", 0, True, math.inf), ("momentum", 0, False, 1), ("weight_decay", 0, False, 1),
            ("lr_factor", 0, True, 1), ("min_lr", 0, False, math.inf),
            ("warmup_epochs", 0, False, math.inf), ("pca_std", 0, False, math.inf)):
        value, whole = getattr(config, name), name in ("epochs", "batch_size", "patience", "seed")
        if not (isinstance(value, int if whole else (int, float)) and math.isfinite(value)
                and value < high and (value > low if strict else value >= low)):
            raise ValueError(f"{name} must be a {'whole' if whole else 'finite'} number in "
                             f"{'(' if strict else '['}{low}, {high}), got {value!r}")


def check_fits(model_config: dict, splits) -> None:
    """A ValueError unless a model of `model_config` can train on `splits`."""
    classes, channels = len(splits.classes), model_config["in_channels"]
    if classes < 2:   # softmax over one class is 1 for every image: "100 %" learns nothing
        raise ValueError(f"{splits.name} has {classes} class{'es' if classes != 1 else ''} "
                         f"({', '.join(map(repr, splits.classes))}): a classifier needs at "
                         "least two (one folder of images per class)")
    if model_config["num_classes"] != classes:
        raise ValueError(f"the model has {model_config['num_classes']} outputs but the data has "
                         f"{classes} classes: build it with num_classes={classes}")
    if channels not in (splits.in_channels, 3):   # 3: grey data, repeated
        raise ValueError(f"the model takes {channels} channel(s), the data has "
                         f"{splits.in_channels}: use in_channels={splits.in_channels}")
    if len(splits.val) == 0:
        raise ValueError("fit needs a validation split to select the model and schedule the "
                         "learning rate (load_splits(val_fraction=0.1)); never use the test split")


def raise_failed_write(err: OSError | RuntimeError, path: Path) -> NoReturn:
    """For a checkpoint write that failed with `err`: an OSError saying why (with the free
    space), what is intact and what to do; `err` itself where it is not a failed write
    (torch.save reports one as a RuntimeError from its zip writer)."""
    if isinstance(err, RuntimeError) and not any(
            sign in str(err) for sign in ("unexpected pos", "StreamWriter", "write")):
        raise err   # not a failed write (e.g. an object torch.save cannot pickle)
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


def check_archive(path: Path) -> None:
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


def check_continues(checkpoint: dict, model_config: dict | None = None,
                    classes: Sequence[str] | None = None, train_config=None,
                    processes: int | None = None, val_images: str | None = None) -> None:
    """One ValueError naming all that keeps `checkpoint` from continuing as this run: another model,
    classes, recipe (`RECIPE`), number of processes or validation images (`val_images`, their
    `split_fingerprint`: the same names may hold other pixels); an argument None is not checked."""
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
    split = checkpoint.get("split") if isinstance(checkpoint.get("split"), dict) else {}
    if None not in (val_images, split.get("val")) and val_images != split.get("val"):
        problems.append(
            "its validation images are not these (it trained on "
            f"{'generated stand-ins' if checkpoint.get('synthetic') else 'real data'} of "
            f"{checkpoint.get('dataset')!r}, split with seed {split.get('seed')!r}, limit "
            f"{split.get('limit')!r}): resume it on the data it trained on (the command line: "
            "--data-root or ALEXNET_EDU_DATA, --limit; a notebook: the same profile)")
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


def check_available(device: torch.device) -> torch.device:
    """`device`, or a ValueError saying PyTorch does not see it (a CUDA index, Apple's MPS)."""
    gpus = torch.cuda.device_count()
    if device.type == "cuda" and not (torch.cuda.is_available() and (device.index or 0) < gpus):
        raise ValueError(f"device {str(device)!r} was asked for, but PyTorch sees "
                         f"{f'only {gpus}' if torch.cuda.is_available() else 'no'} CUDA GPU(s) "
                         "(indices start at 0; on Colab: Runtime > Change runtime type > GPU)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {str(device)!r} was asked for, but Apple MPS is not available")
    return device


def check_tta(tta: bool | str, transform: torch.nn.Module) -> None:
    """A ValueError unless `evaluate` can average over `tta`'s crops with `transform`."""
    if tta not in (False, True, "flip"):
        raise ValueError(f"tta must be False, True (ten crops) or 'flip', got {tta!r}")
    if tta is True and not hasattr(transform, "ten_crop_batch"):
        raise ValueError("10-crop testing needs a transforms.BatchTransform (its ten_crop_batch); "
                         f"got {type(transform).__name__}")
