"""A trained AlexNet and real images to look inside it (notebooks 07-09).

Which model, in order: the one notebook 05 (or 04) trained, if its checkpoint exists;
torchvision's ImageNet weights (Krizhevsky's one-tower "One weird trick" variant, 2014) when they
are cached or can be downloaded; else a quick small model (`train.load_or_train`). Each function
says which one it used, because what a network learned depends entirely on that.
"""

from __future__ import annotations

import torch

from .model import AlexNet
from .settings import shown_path

__all__ = ["imagenet_alexnet", "model_to_inspect", "images_to_inspect", "IMAGENET_MEAN",
           "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)   # torchvision's normalization for its ImageNet weights
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_alexnet(device: str | torch.device | None = None) -> tuple[AlexNet, dict]:
    """(model, checkpoint-like dict) with torchvision's ImageNet weights in our torchvision
    variant (eval mode). Raises RuntimeError, saying why, when the weights can be neither
    found in torch's cache nor downloaded."""
    import torchvision

    weights = torchvision.models.AlexNet_Weights.DEFAULT
    try:
        state = weights.get_state_dict(progress=False)
    except Exception as err:  # offline, proxy, disk: all mean "not available here"
        raise RuntimeError(f"torchvision's ImageNet AlexNet weights are not available "
                           f"({type(err).__name__}: {err}); they download from "
                           f"{weights.url} when online") from None
    model = AlexNet(num_classes=1000, variant="torchvision", init="pytorch", image_size=224)
    model.load_state_dict(state)   # our pre-hook renames torchvision's keys (features.0 -> conv1)
    checkpoint = {"format": "alexnet-edu/1", "model_config": dict(model.config),
                  "classes": list(weights.meta["categories"]), "mean": IMAGENET_MEAN,
                  "std": IMAGENET_STD, "image_size": 224, "in_channels_data": 3,
                  "dataset": "imagenet"}
    return model.to(device or "cpu").eval(), checkpoint


def model_to_inspect(dataset: str = "stl10", device: str | torch.device | None = None,
                     pretrained: bool = True) -> tuple[AlexNet, dict, str]:
    """(model, checkpoint, how): notebook 04/05's trained model for `dataset` when it exists,
    else torchvision's ImageNet weights (`pretrained`, when available), else a quick model."""
    from .train import load_model, load_or_train, runs_dir

    path = runs_dir() / dataset / "best.pt"
    if path.is_file():
        model, checkpoint = load_model(path, device)
        how = f"the {dataset} model trained by notebook 04/05 ({shown_path(path)})"
    else:
        model = None
        if pretrained:
            try:
                model, checkpoint = imagenet_alexnet(device)
                how = ("torchvision's ImageNet-trained AlexNet (1000 classes, 224 px) - "
                       f"no {shown_path(path)} yet")
            except RuntimeError as err:
                print(f"Not using ImageNet weights: {err}")
        if model is None:
            model, checkpoint, how = load_or_train(dataset, device)
    print(f"Model: {how}")
    return model.eval(), checkpoint, how


def images_to_inspect(limit: int | None = None):
    """(dataset of uint8 images with labels, how): the real STL-10 test sample under
    ``data_root()/stl10-sample/test`` when present, else STL-10's test split via
    `data.load_splits` (in smoke mode, generated stand-ins when offline)."""
    from .data import load_image_folder, load_splits
    from .settings import data_root

    folder = data_root() / "stl10-sample" / "test"
    if folder.is_dir():
        data = load_image_folder(folder)
        how = f"{len(data)} real STL-10 test images from {shown_path(folder)}"
    else:
        splits = load_splits("stl10", limit=limit)
        data = splits.test
        kind = "synthetic stand-ins for STL-10" if splits.synthetic else "STL-10 test images"
        how = f"{len(data)} {kind} ({shown_path(splits.source)})"
    if limit is not None and len(data) > limit:
        # every k-th image keeps all classes (the folder is sorted by class)
        data = data.subset(torch.linspace(0, len(data) - 1, limit).round().long())
    print(f"Images: {how}" + (f", using {len(data)}" if limit is not None else ""))
    return data, how
