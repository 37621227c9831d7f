"""Data: Fashion-MNIST, STL-10 or your own folder of images, as uint8 tensors in train /
validation / test splits, and loaders of whole uint8 batches (`transforms` makes what the network
sees from them). Where the files are and whether to download them is the caller's choice
(notebooks and the CLI ask `profiles.load_splits`); `official` and `images` read the files.

    splits = load_splits("fashion-mnist", root="data", download=True)   # or "stl10", or a folder
    for images, labels in make_loader(splits.train, batch_size=128, shuffle=True):
        ...                                    # images: uint8 N x C x H x W (native size)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, TensorDataset

from . import official
from .distributed import ShardBatches
from .images import (
    ImageFiles,
    TensorImageDataset,
    collate_files,
    first_images,
    folder_dataset,
    folder_splits,
    load_image_folder,
    sample_photos,
    split_fingerprint,
    statistics_sample,
)

__all__ = ["DATASETS", "FASHION_MNIST_CLASSES", "STL10_CLASSES", "Splits", "TensorImageDataset",
           "load_splits", "dataset_key", "load_image_folder", "ImageFiles", "folder_dataset",
           "first_images", "channel_mean_std", "rgb_pca", "make_loader", "as_loader",
           "split_fingerprint", "sample_photos", "STL10_DOWNLOAD_GB", "OFFICIAL_SIZES"]

DATASETS = ("fashion-mnist", "stl10")
FASHION_MNIST_CLASSES, STL10_CLASSES = official.CLASSES["fashion-mnist"], official.CLASSES["stl10"]
# what a full download holds: (training images, test images)
OFFICIAL_SIZES = {"fashion-mnist": (60_000, 10_000), "stl10": (5_000, 8_000)}
STL10_DOWNLOAD_GB = 2.6          # stl10_binary.tar.gz, with the unlabelled part


@dataclass
class Splits:
    """Train / validation / test splits of one dataset, plus what the transforms need."""

    train: TensorImageDataset
    val: TensorImageDataset
    test: TensorImageDataset
    classes: list[str]
    in_channels: int
    mean: tuple[float, ...]           # per channel, 0-1 scale, from the train split only
    std: tuple[float, ...]
    pca: tuple[Tensor, Tensor] | None  # (eigval (3,), eigvec (3, 3) columns) of the RGB covariance
    name: str
    synthetic: bool = False           # True: generated stand-in images, numbers mean nothing
    source: str = ""                  # the folder the files came from
    recipe: dict = field(default_factory=dict)   # how they were drawn: a checkpoint keeps it
    image_size: int = field(init=False)

    def __post_init__(self) -> None:
        self.image_size = int(first_images(self.train, 1).shape[-1])

    def __repr__(self) -> str:
        tag = " (synthetic stand-in data)" if self.synthetic else ""
        mean, std = (tuple(round(v, 4) for v in values) for values in (self.mean, self.std))
        return (f"Splits({self.name}{tag}: train {len(self.train)}, val {len(self.val)}, test "
                f"{len(self.test)} images of {self.in_channels}x{self.image_size}x"
                f"{self.image_size}; {len(self.classes)} classes; mean {mean}, std {std})")


# Statistics from the training split (normalization and PCA lighting) -----------------------------
def _stats(images: Tensor, chunk: int = 256) -> tuple[tuple[float, ...], tuple[float, ...],
                                                      Tensor]:
    """Mean, std (population) and covariance of the channels, 0-1 scale, in one float64 pass."""
    c = images.shape[1]
    total, outer = torch.zeros(c, dtype=torch.float64), torch.zeros(c, c, dtype=torch.float64)
    for start in range(0, len(images), chunk):
        x = images[start:start + chunk].to(torch.float64).div_(255)
        x = x.permute(1, 0, 2, 3).reshape(c, -1)           # C x pixels
        total += x.sum(dim=1)
        outer += x @ x.T
    n = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / n
    cov = outer / n - torch.outer(mean, mean)                # E[x x^T] - E[x] E[x]^T
    return tuple(mean.tolist()), tuple(cov.diagonal().clamp_min(0).sqrt().tolist()), cov


def channel_mean_std(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population std of uint8 N x C x H x W images, 0-1 scale: the numbers
    `Normalize` uses. Compute them on the TRAIN split only."""
    mean, std, _ = _stats(images)
    return mean, std


def rgb_pca(images: Tensor) -> tuple[Tensor, Tensor]:
    """Eigenvalues (3,) and eigenvectors (3 x 3 columns, largest first) of the covariance of
    uint8 `images`' RGB pixel values, 0-1 scale (§4.1)."""
    if images.shape[1] != 3:
        raise ValueError(f"PCA lighting needs RGB images, got {images.shape[1]} channel(s)")
    return _eig(_stats(images)[2])


def _eig(cov: Tensor) -> tuple[Tensor, Tensor]:
    eigval, eigvec = torch.linalg.eigh(cov)                 # ascending order
    order = eigval.argsort(descending=True)
    eigval, eigvec = eigval[order].clamp_min(0), eigvec[:, order]
    # fix the sign of each eigenvector (eigh's is arbitrary): largest component positive
    signs = torch.sign(eigvec.gather(0, eigvec.abs().argmax(0, keepdim=True)))
    return eigval.float(), (eigvec * signs).float()


# Splits ------------------------------------------------------------------------------------------
def dataset_key(dataset: str | Path) -> str:
    """"fashion-mnist" and "stl10" by any of their spellings."""
    key = str(dataset).lower().replace("_", "-")
    return {"fashionmnist": "fashion-mnist", "stl-10": "stl10"}.get(key, key)


def _split_counts(n_pool: int, val_fraction: float, limit: int | None) -> tuple[int, int]:
    least = int(val_fraction > 0)   # a validation split, when asked for, has an image at least
    n_val = max(least, round(n_pool * val_fraction))
    n_train = n_pool - n_val
    if limit is not None:
        n_train = min(n_train, limit)
        n_val = min(n_val, max(least, round(limit * val_fraction / (1 - val_fraction))))
    if n_train < 1:
        raise ValueError(f"{n_pool} training images are too few for val_fraction={val_fraction}")
    return n_train, n_val


def test_subset(test: Dataset, seed: int, limit: int | None) -> Dataset:
    """The test split under `limit`: a seeded random subset, which keeps the classes balanced."""
    if limit is None or len(test) <= limit:
        return test
    return test.subset(torch.randperm(len(test),
                                      generator=torch.Generator().manual_seed(seed + 2))[:limit])


def load_splits(dataset: str | Path, root: str | Path | None = None, val_fraction: float = 0.1,
                seed: int = 0, limit: int | None = None, download: bool = False) -> Splits:
    """Splits of "fashion-mnist" or "stl10" (official files below `root`, downloaded first if
    `download`) or of an image folder (its train/ and test/, else a seeded 20 % is the test
    split). Validation is carved from training with `seed`; `limit` caps the images per split."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    name = dataset_key(dataset)
    if name in DATASETS:
        (pool, test), synthetic, source = official.load(name, root, download)
    else:
        source, synthetic = Path(dataset).expanduser(), False
        if not source.is_dir():
            raise FileNotFoundError(f"unknown dataset {str(source)!r}: use one of {DATASETS} or "
                                    "the path of a folder of images in class sub-folders")
        pool, test = folder_splits(source, seed)
        # a folder named like a split (stl10-sample/test) is known by its parent too
        name = (f"{source.parent.name}-{source.name}"
                if source.name.lower() in ("train", "val", "test") else source.name)
    n_train, n_val = _split_counts(len(pool), val_fraction, limit)
    order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))
    train, val = pool.subset(order[n_val:n_val + n_train]), pool.subset(order[:n_val])
    test = test_subset(test, seed, limit)
    sample = statistics_sample(train, seed)   # all of it, or a streamed folder's random 2,000
    mean, std, cov = _stats(sample)
    channels = sample.shape[1]
    recipe = {"seed": seed, "val_fraction": val_fraction, "limit": limit, "test_images": len(test),
              "val": split_fingerprint(val), "test": split_fingerprint(test)}
    return Splits(train, val, test, pool.classes, int(channels), mean, std,
                  _eig(cov) if channels == 3 else None, name, synthetic, str(source), recipe)


# Loaders of uint8 batches ------------------------------------------------------------------------
def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, num_workers: int | None = None,
                seed: int = 0, shard: tuple[int, int] = (0, 1),
                device: str | torch.device = "cpu") -> DataLoader:
    """A DataLoader of uint8 batches `(images N x C x H x W, labels N)` for `device`, shuffled with
    `seed`; `shard` = (rank, processes): this process's share of every batch in data parallel."""
    in_memory = isinstance(dataset, TensorImageDataset)
    if num_workers is None:   # tensors in memory: nothing for workers to do; Colab has 2 cores
        num_workers = 0 if in_memory or isinstance(dataset, TensorDataset) else min(
            2, os.cpu_count() or 1)
    tensors = [dataset.images] if in_memory else getattr(dataset, "tensors", [])
    pin = torch.device(device).type == "cuda" and all(t.is_cpu for t in tensors)
    # The order comes from `seed` alone (distributed.ShardBatches deals it out to the processes),
    # and so do the workers' seeds: the global RNG's would make a run depend on what ran before.
    batches = ShardBatches(len(dataset), batch_size, shuffle, seed, shard)
    common = dict(num_workers=num_workers, pin_memory=pin, persistent_workers=num_workers > 0,
                  generator=torch.Generator().manual_seed(seed))
    if not in_memory:
        return DataLoader(dataset, batch_sampler=batches, collate_fn=collate_files, **common)
    # TensorDataset indexed by a batch's list of indices: the whole batch in one indexing operation
    return DataLoader(TensorDataset(dataset.images, dataset.labels), sampler=batches,
                      batch_size=None, collate_fn=tuple, **common)


def as_loader(data, batch_size: int, device: str | torch.device = "cpu") -> DataLoader:
    """Some data as a loader of (images, labels) batches, in order, for `device`: a DataLoader as
    it is, an (images, labels) pair of tensors, a tensor of images (labels -1), or any Dataset."""
    if isinstance(data, DataLoader):
        return data
    if torch.is_tensor(data):
        data = (data, torch.full((len(data),), -1, dtype=torch.long))
    if isinstance(data, (tuple, list)) and len(data) == 2 and torch.is_tensor(data[0]):
        data = TensorDataset(data[0], torch.as_tensor(data[1]))
    return make_loader(data, batch_size, shuffle=False, device=device)
