"""A trained AlexNet and real images to look inside it (notebooks 07-09), never needing STL-10.
Each function says which model or images it used: what a network learned depends on them.
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

__all__ = ["imagenet_alexnet", "initial_model", "model_to_inspect", "images_to_inspect",
           "load_or_train",
           "trained_model_path"]


def imagenet_alexnet(device: str | torch.device | None = None) -> tuple[AlexNet, dict]:
    """(model, checkpoint-like dict): torchvision's ImageNet weights (Krizhevsky's one-tower
    variant, 2014) in eval mode; RuntimeError, saying why, when neither cached nor downloadable."""
    weights = torchvision.models.AlexNet_Weights.DEFAULT
    try:
        # check_hash: a damaged or substituted download is refused; quiet: torch.hub prints the
        # cache path, and a notebook's stored output must not show this machine's folders
        with contextlib.redirect_stdout(io.StringIO()):
            state = torch.hub.load_state_dict_from_url(weights.url, progress=False,
                                                       check_hash=True, weights_only=True)
    except Exception as err:  # offline, proxy, disk: all mean "not available here"
        raise RuntimeError(f"torchvision's ImageNet AlexNet weights are not available "
                           f"({type(err).__name__}: {err}); they download from "
                           f"{weights.url} when online") from None
    preset = weights.transforms()   # the resize, crop and normalization they were trained with
    model = AlexNet(num_classes=1000, variant="torchvision", init="pytorch",
                    image_size=preset.crop_size[0])
    model.load_state_dict(state)   # our pre-hook renames torchvision's keys (features.0 -> conv1)
    checkpoint = {"format": FORMAT, "model_config": dict(model.config),
                  "classes": list(weights.meta["categories"]), "mean": tuple(preset.mean),
                  "std": tuple(preset.std), "image_size": preset.crop_size[0],
                  "resize_size": preset.resize_size[0], "in_channels_data": 3,
                  "dataset": "imagenet"}
    return model.to(device or "cpu").eval(), checkpoint


def _stl10_here(file: str) -> bool:
    """Whether STL-10's official `file` is under the data root (07-09 never download STL-10)."""
    return (data_root() / FOLDERS["stl10"] / file).is_file()


MAX_INSPECT = 500   # images: enough for every figure; activations of all of them stay small


def model_to_inspect(dataset: str = "stl10", device: str | torch.device | None = None,
                     pretrained: bool = True) -> tuple[AlexNet, dict, str]:
    """(model, checkpoint, how): notebook 04/05's model for `dataset`, else torchvision's ImageNet
    weights (`pretrained`, when available), else notebook 04's Fashion-MNIST model, else a
    quick model (on Fashion-MNIST when `dataset`'s training images are not here)."""
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
    if model is None:   # a quick model
        try:
            if Path(dataset).name == "stl10" and not _stl10_here("train_X.bin"):
                raise FileNotFoundError   # never STL-10's 2.6 GB download for this
            model, checkpoint, how = load_or_train(dataset, device)
        except FileNotFoundError:
            if Path(dataset).name == "fashion-mnist":
                raise
            model, checkpoint, how = load_or_train("fashion-mnist", device)
            how = f"there are no {dataset} training images here, so on Fashion-MNIST: {how}"
        how += f" ({no_imagenet})"
    print(f"Model: {how}")   # one line: which model the figures show, and why
    return model.eval(), checkpoint, how


def images_to_inspect(limit: int | None = None, checkpoint: dict | None = None):
    """(uint8 images with labels, how) for `checkpoint`'s model, never downloaded: Fashion-MNIST's
    test images for a Fashion-MNIST model, else STL-10's (or its sample) when here, else the
    sample photos; at most `limit` (and MAX_INSPECT) images, spread over the classes."""
    source = stl10_source()   # the official STL-10 when its files are here, else the sample
    if checkpoint is not None and checkpoint.get("dataset") == "fashion-mnist":
        recipe = checkpoint.get("split", {})
        data = load_splits("fashion-mnist", limit=recipe.get("limit"),
                           seed=recipe.get("seed", 0)).test
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


# The quick model (06-09 alone on a fresh Colab VM): notebook 04's cpu recipe cut to 5 epochs,
# with a cosine decay that ends them at a small learning rate. Batch 64 and no crops or flips:
# in so few epochs more steps help and augmentation only slows learning (it pays off over
# longer runs, against overfitting). benchmarks/README.md has the runs behind this choice.
QUICK = dict(limit=7_500, image_size=67, epochs=5, lr=0.02, schedule="cosine", batch_size=64,
             augment=False)
QUICK_SMOKE = dict(limit=384, epochs=2)


def quick_size() -> dict:
    """QUICK, shrunk to QUICK_SMOKE's sizes in the smoke profile (CI checks the path)."""
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
    """(model, checkpoint, how): notebook 04/05's model, else a quick one (trained once into
    ``runs_dir()/quick/<dataset>``); `how` says which."""
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
    fit(model, splits, TrainConfig(epochs=size["epochs"], lr=size["lr"], schedule=size["schedule"],
                                   batch_size=size["batch_size"], augment=size["augment"],
                                   progress=False), run, device=device)
    model, checkpoint = load_model(run / "best.pt", device)
    how = (f"trained a quick model ({len(splits.train):,} images, {size['image_size']} px, "
           f"{size['epochs']} epochs{'' if size['augment'] else ', no augmentation'}) into "
           f"{shown_path(run)} because {shown_path(trained_model_path(name))} does not exist "
           "yet - run notebook 04/05 for a real one")
    return model, checkpoint, how


def initial_model(checkpoint: dict) -> AlexNet:
    """The model a run started from, rebuilt from its checkpoint's seed (for runs whose model
    `train.build_model` made with that seed: the notebooks, the CLI, the ablations)."""
    seed = (checkpoint.get("train_config") or {}).get("seed")
    if seed is None or "model_config" not in checkpoint:
        raise ValueError("this checkpoint records no training run's seed (pretrained weights?): "
                         "its initial weights cannot be rebuilt")
    torch.manual_seed(seed)   # as build_model drew them
    return AlexNet(**checkpoint["model_config"])
