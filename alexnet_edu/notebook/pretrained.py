"""A trained AlexNet and real images to look inside it (notebooks 07-09).

Which model, in order: the one notebook 05 (or 04) trained, if its checkpoint exists;
torchvision's ImageNet weights (Krizhevsky's one-tower "One weird trick" variant, 2014) when they
are cached or can be downloaded; else a quick small model (`load_or_train`). Which images: STL-10's
test images when they are here, else the six photos every install has (`data.sample_photos`),
or Fashion-MNIST's for a Fashion-MNIST model. Each function says which one it used, because
what a network learned depends entirely on that. None of this needs STL-10.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import torch
import torchvision

from ..checkpoint import FORMAT, load_model
from ..data import load_image_folder, sample_photos
from ..model import AlexNet
from ..official import FOLDERS
from ..profiles import current_profile, load_splits, runs_dir, stl10_source
from ..settings import data_root, shown_path
from ..train import TrainConfig, build_model, fit

__all__ = ["imagenet_alexnet", "model_to_inspect", "images_to_inspect", "load_or_train",
           "trained_model_path", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)   # torchvision's normalization for its ImageNet weights
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_alexnet(device: str | torch.device | None = None) -> tuple[AlexNet, dict]:
    """(model, checkpoint-like dict) with torchvision's ImageNet weights in our torchvision
    variant (eval mode). Raises RuntimeError, saying why, when the weights can be neither
    found in torch's cache nor downloaded."""
    weights = torchvision.models.AlexNet_Weights.DEFAULT
    try:
        # check_hash: the file must match the hash in its name (a damaged or substituted
        # download is refused); weights_only: unpickling runs no code, whatever the file holds.
        # torch.hub announces a download with the full cache path on stdout: keep it quiet
        # (a notebook's stored output must not show this machine's folders)
        with contextlib.redirect_stdout(io.StringIO()):
            state = torch.hub.load_state_dict_from_url(weights.url, progress=False,
                                                       check_hash=True, weights_only=True)
    except Exception as err:  # offline, proxy, disk: all mean "not available here"
        raise RuntimeError(f"torchvision's ImageNet AlexNet weights are not available "
                           f"({type(err).__name__}: {err}); they download from "
                           f"{weights.url} when online") from None
    model = AlexNet(num_classes=1000, variant="torchvision", init="pytorch", image_size=224)
    model.load_state_dict(state)   # our pre-hook renames torchvision's keys (features.0 -> conv1)
    checkpoint = {"format": FORMAT, "model_config": dict(model.config),
                  "classes": list(weights.meta["categories"]), "mean": IMAGENET_MEAN,
                  "std": IMAGENET_STD, "image_size": 224, "in_channels_data": 3,
                  # torchvision evaluates these weights at resize 256, crop 224 (the paper's
                  # 256 : 227 ratio would resize to 253)
                  "resize_size": 256,
                  "dataset": "imagenet"}
    return model.to(device or "cpu").eval(), checkpoint


def _stl10_here(file: str) -> bool:
    """Whether STL-10's official `file` is under the data root (07-09 never download STL-10)."""
    return (data_root() / FOLDERS["stl10"] / file).is_file()


MAX_INSPECT = 500   # images: enough for every figure; activations of all of them stay small


def model_to_inspect(dataset: str = "stl10", device: str | torch.device | None = None,
                     pretrained: bool = True) -> tuple[AlexNet, dict, str]:
    """(model, checkpoint, how): notebook 04/05's trained model for `dataset` when it exists,
    else torchvision's ImageNet weights (`pretrained`, when available: they are shown STL-10's
    test images when here, else the sample photos), else notebook 04's Fashion-MNIST model when
    it exists (offline, without STL-10's training images), else a quick model."""
    path, fashion = trained_model_path(dataset), trained_model_path("fashion-mnist")
    model, no_imagenet = None, "no ImageNet weights (not asked for)"
    if path.is_file():
        model, checkpoint = load_model(path, device)
        how = f"the {dataset} model trained by notebook 04/05 ({shown_path(path)})"
    elif pretrained:
        try:
            model, checkpoint = imagenet_alexnet(device)
            how = ("torchvision's ImageNet-trained AlexNet (1000 classes, 224 px) - "
                   f"no {shown_path(path)} yet")
        except RuntimeError:   # offline: the fallbacks below say so in their one line
            no_imagenet = "torchvision's ImageNet weights are not available here (offline?)"
    if model is None and fashion.is_file():
        model, checkpoint = load_model(fashion, device)
        how = (f"notebook 04's Fashion-MNIST model ({shown_path(fashion)}): there is no "
               f"{dataset} model and {no_imagenet}, so we look inside a grey-image model, with "
               "Fashion-MNIST test images")
    if model is None:
        # no training images of `dataset` here (and never STL-10's 2.6 GB download for this):
        # a quick Fashion-MNIST model
        elsewhere = Path(dataset).name == "stl10" and not _stl10_here("train_X.bin")
        try:
            model, checkpoint, how = load_or_train("fashion-mnist" if elsewhere else dataset,
                                                   device)
        except FileNotFoundError:
            if Path(dataset).name == "fashion-mnist":
                raise
            model, checkpoint, how = load_or_train("fashion-mnist", device)
            elsewhere = True
        if elsewhere:
            how = f"there are no {dataset} training images here, so on Fashion-MNIST: {how}"
        how += f" ({no_imagenet})"
    print(f"Model: {how}")   # one line: which model the figures show, and why
    return model.eval(), checkpoint, how


def images_to_inspect(limit: int | None = None, checkpoint: dict | None = None):
    """(dataset of uint8 images with labels, how) for the model of `checkpoint`: Fashion-MNIST
    test images for a Fashion-MNIST model; else STL-10's test images when here (its official
    test files, else the real sample ``stl10-sample/test``), else the six sample photos
    (`data.sample_photos`): never a download. At most `limit` images (default and upper bound:
    MAX_INSPECT), evenly spread over the classes."""
    source = stl10_source()   # the official STL-10 when its files are here, else the sample
    if checkpoint is not None and checkpoint.get("dataset") == "fashion-mnist":
        splits = load_splits("fashion-mnist", limit=checkpoint.get("split", {}).get("limit"),
                             seed=checkpoint.get("split", {}).get("seed", 0))
        data = splits.test
        data = data.subset(data.labels.argsort(stable=True))   # sorted by class, as a folder
        how = f"{len(data)} Fashion-MNIST test images"
    elif source != "stl10":
        data = load_image_folder(source)
        how = f"{len(data)} real STL-10 test images from {shown_path(source)}"
    elif _stl10_here("test_X.bin"):
        splits = load_splits("stl10", limit=limit, download=False)
        data = splits.test
        kind = "synthetic stand-ins for STL-10" if splits.synthetic else "STL-10 test images"
        how = f"{len(data)} {kind} ({shown_path(splits.source)})"
    else:   # no STL-10 here, and none is downloaded for looking inside a model
        data = sample_photos()
        how = (f"the {len(data)} sample photos every install has (data.sample_photos; no "
               "STL-10 test images here)")
    limit, total = min(limit or MAX_INSPECT, MAX_INSPECT), len(data)
    if total > limit:
        # every k-th image keeps all classes (sorted by class)
        data = data.subset(torch.linspace(0, len(data) - 1, limit).round().long())
    print(f"Images: {how}" + (f", using {len(data)}" if len(data) < total else ""))
    return data, how


# The quick model (no notebook 04/05 run here, e.g. 06-09 alone on a fresh Colab VM): notebook
# 04's cpu recipe cut to 4 epochs, with a cosine decay that ends them at a small learning rate.
# Its time and test accuracy: python benchmarks/time_to_accuracy.py --limit 7500 --epochs 4
# --schedule cosine --lr 0.02. The smoke profile shrinks it: CI checks the path, not the number.
QUICK = dict(limit=7_500, image_size=67, epochs=4, lr=0.02, schedule="cosine")
QUICK_SMOKE = dict(limit=384, epochs=2)


def quick_size() -> dict:
    """QUICK, shrunk to QUICK_SMOKE's sizes in the smoke profile."""
    if current_profile().name != "smoke":
        return dict(QUICK)
    return {**QUICK, **{k: min(QUICK[k], v) for k, v in QUICK_SMOKE.items()}}


def _finished(run: Path, epochs: int) -> bool:
    """Did the run in `run` train all `epochs` (its history.json has a row for each)?"""
    try:
        return len(json.loads((run / "history.json").read_text())) >= epochs
    except (OSError, ValueError, TypeError):
        return False


def trained_model_path(dataset: str) -> Path:
    """Where notebook 04/05 (or `alexnet-edu train`) leaves the best model for `dataset`."""
    return runs_dir() / Path(dataset).name / "best.pt"


def load_or_train(dataset: str, device: str | torch.device | None = None
                  ) -> tuple[AlexNet, dict, str]:
    """(model, checkpoint, how): the model notebook 04/05 trained (`trained_model_path`), else a
    small quick model (trained once into ``runs_dir()/quick/<dataset>``) - `how` says which, so
    notebooks can tell the reader."""
    name = Path(dataset).name
    size, run = quick_size(), runs_dir() / "quick" / name
    found = [(trained_model_path(name), "the model trained by notebook 04/05")]
    if _finished(run, size["epochs"]):   # an interrupted quick run is trained again
        found.append((run / "best.pt", "a quick model trained earlier"))
    for path, how in found:
        if path.is_file():
            model, checkpoint = load_model(path, device)
            return model, checkpoint, f"loaded {how} ({shown_path(path)})"
    splits = load_splits(dataset, limit=size["limit"])
    model = build_model(splits, image_size=size["image_size"])
    fit(model, splits, TrainConfig(epochs=size["epochs"], lr=size["lr"],
                                   schedule=size["schedule"], progress=False), run, device=device)
    model, checkpoint = load_model(run / "best.pt", device)
    how = (f"trained a quick model ({len(splits.train):,} images, {size['image_size']} px, "
           f"{size['epochs']} epochs) into {shown_path(run)} because "
           f"{shown_path(trained_model_path(name))} does not exist yet - run notebook 04/05 for "
           "a real one")
    return model, checkpoint, how
