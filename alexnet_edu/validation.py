"""Checks of what a user hands the trainer: every checkpoint field a command or a resume uses
(one ValueError naming it, never a KeyError, gigabytes allocated or NaN output), a TrainConfig's
ranges, and whether a model fits the data."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from .model import ACTIVATIONS, INITS, VARIANTS, AlexNet, smallest_image_size

__all__ = ["MAX_IMAGE_SIZE", "MAX_CLASSES", "MAX_CHANNELS", "check_fields", "check_resumable",
           "check_train_config", "check_fits"]

MAX_IMAGE_SIZE = 1024   # px: conv1's maps alone take 1.3 GB per 128-image batch at 1024
MAX_CLASSES = 100_000   # fc8 alone is 1.6 GB at 100k classes (ImageNet-21k has 21,841)
MAX_CHANNELS = 4        # grey, RGB, RGBA


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
    _check_table({"epoch": None, "scheduler": None, "history": None, "train_config": None,
                  **checkpoint}, {
        "epoch": (lambda v: type(v) is int and v >= 0, "a count"),
        "batch": (lambda v: v in (None, 0), "absent (a file saved inside an epoch, by an older "
                                            "alexnet-edu, cannot continue here)"),
        "scheduler": (lambda v: isinstance(v, dict), "a dict"),
        "scaler": (lambda v: v is None or isinstance(v, dict), "a dict"),
        "history": (lambda v: isinstance(v, list) and all(isinstance(r, dict) for r in v),
                    "a list of epoch rows"),
        "train_config": (lambda v: isinstance(v, dict), "a dict"),
        "processes": (lambda v: v is None or (type(v) is int and v >= 1), "a count")}, bad)


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
