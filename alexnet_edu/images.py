"""Image files, read safely by one reader (8-bit RGB, bounded memory, errors naming the file),
and folders of them (one sub-folder per class) as datasets: in memory or read from disk, split
into training pool and test split, fingerprinted so that a run's split can be checked later.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset, default_collate
from torchvision.datasets.folder import find_classes, make_dataset

from .transforms import PAPER_RESIZE, resize_batch

__all__ = ["DataFileError", "read_image", "read_image_tensor", "image_files", "scan_folder",
           "square", "TensorImageDataset", "ImageFiles", "load_image_folder", "folder_dataset",
           "first_images", "IMAGE_EXTENSIONS", "MAX_IMAGE_SIDE", "MAX_IMAGE_PIXELS",
           "IN_MEMORY_BYTES", "sample_photos", "held_out_folder", "folder_splits",
           "split_fingerprint", "statistics_sample", "collate_files"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm",
                    ".pgm")
MAX_IMAGE_SIDE = 1024         # read_image shrinks larger images at once: memory stays bounded
MAX_IMAGE_PIXELS = 64_000_000  # larger images are refused (PIL only warns at 89.5 million)
IN_MEMORY_BYTES = 2 * 1024**3  # folders whose 256 x 256 images need more are streamed
FOLDER_TEST_FRACTION = 0.2    # one image folder: 20 % becomes the test split
STATS_SAMPLE = 2_000          # images a streamed training split computes its statistics on
# Natural colour photos every install has: four public-domain / CC0 photos from scikit-image's
# sample data, shrunk to a 256 px shorter side (alexnet_edu/photos/), and scikit-learn's two
# sample photos (CC BY 2.0, read from the installed scikit-learn). Licences: data/README.md.
PHOTOS = ("astronaut", "cat", "coffee", "rocket")
SKLEARN_PHOTOS = {"temple": "china.jpg", "flower": "flower.jpg"}


class DataFileError(ValueError):
    """A data file that cannot be used; the message names it, says what is wrong and what to do."""


def _shrink(img: Image.Image, max_side: int | None, shorter_side: int | None) -> Image.Image:
    """`img` decoded and shrunk (aspect kept) to the bounds (None: none); never enlarged."""
    w, h = img.size
    scale = min(1.0, max_side / max(w, h) if max_side else 1.0,
                shorter_side / min(w, h) if shorter_side else 1.0)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    img.draft("RGB", size)     # JPEG only: decode at 1/2, 1/4 or 1/8 scale, >= size
    img.load()                 # a full decode: truncated files fail here
    if img.size == size:
        return img
    if img.mode in ("1", "P", "PA"):   # PIL resizes these with NEAREST only: aliasing
        img = img.convert("RGB")
    # reducing_gap: a fast integer reduce() first; PIL has no reduce() for the I;16 modes
    return img.resize(size, Image.BILINEAR, reducing_gap=None if "I;16" in img.mode else 2.0)


def _to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB from any PIL mode (convert("RGB") alone saturates 16-bit images to white and
    zeroes float ones): integers in 0..65535 / 257, floats in 0..1 * 255, else the finite
    min..max stretched to 0..255 (NaN, inf and constant images: black)."""
    if not (img.mode.startswith("I;16") or img.mode in ("I", "F")):
        return img.convert("RGB")
    a = np.asarray(img, dtype=np.float64)
    finite = np.isfinite(a)
    lo, hi = (a[finite].min(), a[finite].max()) if finite.any() else (0.0, 0.0)
    if img.mode == "F" and 0 <= lo and hi <= 1:
        a = a * 255
    elif img.mode != "F" and 0 <= lo and hi <= 65535:
        a = a / 257
    else:
        a = (a - lo) * (255 / (hi - lo)) if hi > lo else np.zeros_like(a)
    grey = np.clip(np.where(finite, a, 0), 0, 255).round().astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")


def read_image(path: str | Path, max_side: int | None = MAX_IMAGE_SIDE,
               max_pixels: int = MAX_IMAGE_PIXELS,
               shorter_side: int | None = None) -> Image.Image:
    """One image file as 8-bit RGB, its sides at most `max_side` and `shorter_side` (None: no
    bound); images over `max_pixels` are refused before decoding. FileNotFoundError, or a
    DataFileError naming the file when it is not an image, is damaged or too large."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image {path} does not exist")
    if path.is_dir():
        raise DataFileError(f"cannot read image {path}: it is a folder, not an image file")
    if not path.is_file():   # a pipe or a device would block the reader, or never end
        raise DataFileError(f"{path} is not a regular file (a named pipe, device or socket): "
                            "remove it, or copy the image into a file.")
    try:
        with warnings.catch_warnings():   # our own, lower limit below gives the clear message
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)        # the header only
        with img:
            w, h = img.size
            if w * h > max_pixels:
                raise DataFileError(f"image {path} is {w}x{h} = {w * h:,} pixels, more than the "
                                    f"{max_pixels:,} this reader accepts (a decompression bomb, "
                                    "or a huge scan): shrink it first, or remove it.")
            return _to_rgb(_shrink(img, max_side, shorter_side))
    except DataFileError:
        raise
    except Exception as err:   # a damaged or crafted file may raise anything from PIL's parsers
        why = ("not an image (PIL cannot identify it; use PNG, JPEG, ...)"
               if isinstance(err, UnidentifiedImageError) else err)
        raise DataFileError(f"cannot read image {path}: {why}. Remove or replace this file.") \
            from err


def read_image_tensor(path: str | Path, channels: int = 3, shorter_side: int | None = None,
                      max_side: int | None = MAX_IMAGE_SIDE) -> Tensor:
    """One image file as uint8 `channels` x H x W (3: RGB, 1: grey), read with `read_image`."""
    image = read_image(path, max_side, shorter_side=shorter_side)
    pixels = torch.from_numpy(np.array(image.convert("L") if channels == 1 else image))
    return pixels[None] if channels == 1 else pixels.permute(2, 0, 1).contiguous()


def _hidden(path: Path, folder: Path) -> bool:
    """Whether `path` or a folder on its way below `folder` is hidden (macOS's ._x.png, .git)."""
    return any(part.startswith(".") for part in path.relative_to(folder).parts)


def image_files(folder: Path, extensions: tuple[str, ...] | None = IMAGE_EXTENSIONS) -> list[Path]:
    """The files anywhere below `folder` with one of `extensions` (None: any), hidden ones
    skipped, sorted by their path below `folder`."""
    return sorted((p for p in folder.rglob("*") if p.is_file() and not _hidden(p, folder)
                   and (extensions is None or p.suffix.lower() in extensions)),
                  key=lambda p: p.relative_to(folder).parts)


def scan_folder(folder: Path) -> tuple[list[str], list[Path], list[int]]:
    """(classes, image paths, labels) of `folder`/<class>/... (torchvision's find_classes and
    make_dataset; hidden files and folders skipped), or a clear error."""
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    try:
        classes = [c for c in find_classes(folder)[0] if not c.startswith(".")]
    except FileNotFoundError:   # torchvision's "Couldn't find any class folder"
        classes = []
    if not classes:
        raise FileNotFoundError(f"{folder} has no class sub-folders: put the images in "
                                f"{folder}/<class name>/<image>.png (one folder per class)")

    def wanted(path: str) -> bool:   # FIFOs, sockets and hidden files are skipped
        return (Path(path).suffix.lower() in IMAGE_EXTENSIONS and os.path.isfile(path)
                and not _hidden(Path(path), folder))

    found = make_dataset(folder, {c: i for i, c in enumerate(classes)}, is_valid_file=wanted,
                         allow_empty=True)
    for label, name in enumerate(classes):
        parents = {Path(p).parent for p, y in found if y == label}
        if not parents:
            raise FileNotFoundError(f"class folder {folder / name} holds no images with an "
                                    f"extension among {IMAGE_EXTENSIONS} (hidden files skipped)")
        if len(classes) == 1 and folder / name not in parents:
            # one class whose images all sit in sub-folders: most likely a folder too high up
            raise FileNotFoundError(f"{folder} has one class folder, {name}, with all its images "
                                    f"in sub-folders: if those are the classes, pass "
                                    f"{folder / name}")
    return classes, [Path(p) for p, _ in found], [y for _, y in found]


def square(image: Tensor, side: int = PAPER_RESIZE) -> Tensor:
    """§2: rescale uint8 C x H x W so the shorter side is `side`, then take the central
    side x side patch."""
    return resize_batch(image[None].float(), side).round().clamp(0, 255).to(torch.uint8)[0]


class ImageFiles(Dataset):
    """An image folder too large for memory, as file paths: `ds[i]` reads image i (in the
    DataLoader's workers) and brings it to 256 x 256 RGB the paper's way (§2)."""

    def __init__(self, paths: list[Path], labels: Tensor, classes: list[str]):
        self.paths, self.labels, self.classes = list(paths), labels.long(), list(classes)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        image = read_image_tensor(self.paths[index], shorter_side=PAPER_RESIZE)
        return square(image), int(self.labels[index])

    def subset(self, indices: Tensor) -> ImageFiles:
        return ImageFiles([self.paths[i] for i in indices.tolist()], self.labels[indices].clone(),
                          self.classes)

    def __repr__(self) -> str:
        return (f"ImageFiles({len(self)} images read from disk as 3x{PAPER_RESIZE}x"
                f"{PAPER_RESIZE} uint8, {len(self.classes)} classes)")


class TensorImageDataset(Dataset):
    """Images held in memory as one uint8 tensor N x C x H x W, with integer labels."""

    def __init__(self, images: Tensor, labels: Tensor, classes: list[str]):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 N x C x H x W, got {images.dtype} "
                             f"{tuple(images.shape)}")
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels, self.classes = images, labels.long(), list(classes)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.images[index], int(self.labels[index])

    def subset(self, indices: Tensor) -> TensorImageDataset:
        """A new dataset with the images at `indices` (copied, so the parent can be freed)."""
        return TensorImageDataset(self.images[indices].clone(), self.labels[indices].clone(),
                                  self.classes)

    def __repr__(self) -> str:
        n, c, h, w = self.images.shape
        return f"TensorImageDataset({n} images, {c}x{h}x{w} uint8, {len(self.classes)} classes)"


def load_image_folder(folder: str | Path) -> TensorImageDataset:
    """Every image below `folder`/<class>/ as one uint8 tensor; images of one size (shorter side
    at most 256) keep it, others are brought to 256 x 256 the paper's way (§2)."""
    return _load_files(*scan_folder(Path(folder).expanduser()))


def _load_files(classes: list[str], paths: list[Path], labels: list[int]) -> TensorImageDataset:
    images: list[Tensor] = []
    squared = False
    for path in paths:
        image = read_image_tensor(path)
        if not squared and (image.shape != images[0].shape if images
                            else min(image.shape[1:]) > PAPER_RESIZE):
            # a second size, or a large first one: square all, one at a time (memory bounded)
            images, squared = [square(x) for x in images], True
        images.append(square(image) if squared else image)
    return TensorImageDataset(torch.stack(images), torch.tensor(labels), classes)


def folder_dataset(folder: str | Path) -> TensorImageDataset | ImageFiles:
    """`load_image_folder` when the images fit in IN_MEMORY_BYTES at 256 x 256, else (saying so)
    `ImageFiles`."""
    folder = Path(folder).expanduser()
    classes, paths, labels = scan_folder(folder)
    needed = len(paths) * 3 * PAPER_RESIZE**2
    if needed <= IN_MEMORY_BYTES:
        return _load_files(classes, paths, labels)   # the folder is listed once
    print(f"{folder}: {len(paths):,} images would need {needed / 1024**3:.1f} GiB in memory "
          f"(more than {IN_MEMORY_BYTES / 1024**3:.0f} GiB): reading them from disk as needed")
    return ImageFiles(paths, torch.tensor(labels), classes)


def first_images(dataset: Dataset, n: int) -> Tensor:
    """The first n images (at most all) as one uint8 batch, from memory or from disk."""
    if isinstance(dataset, TensorImageDataset):
        return dataset.images[:n]
    return torch.stack([dataset[i][0] for i in range(min(n, len(dataset)))])


def sample_photos() -> TensorImageDataset:
    """Six natural colour photos every install has, 256 x 256 (§2), one class per photo."""
    from sklearn.datasets import load_sample_image  # a dependency; ships two photos

    found = {name: read_image_tensor(Path(__file__).parent / "photos" / f"{name}.jpg")
             for name in PHOTOS}
    for name, file in SKLEARN_PHOTOS.items():
        found[name] = torch.from_numpy(load_sample_image(file).copy()).permute(2, 0, 1)
    classes = sorted(found)
    images = torch.stack([square(found[name]) for name in classes])
    return TensorImageDataset(images, torch.arange(len(classes)), classes)


def held_out_folder(folder: Path) -> Path | None:
    """A folder's own test split: test/ beside train/, else val/ (ImageNet's layout: our
    validation split comes from train/)."""
    found = [folder / name for name in ("test", "val") if (folder / name).is_dir()]
    return found[0] if found and (folder / "train").is_dir() else None


def folder_splits(folder: Path, seed: int) -> tuple[Dataset, Dataset]:
    """(training pool, test split): train/ and test/ (or val/), else a seeded random split."""
    if (held_out := held_out_folder(folder)) is not None:
        train, test = folder_dataset(folder / "train"), folder_dataset(held_out)
        if test.classes != train.classes:
            raise ValueError(f"{folder}/train and {held_out} have different class folders")
        return train, test
    full = folder_dataset(folder)
    order = torch.randperm(len(full), generator=torch.Generator().manual_seed(seed + 1))
    n_test = max(1, round(len(full) * FOLDER_TEST_FRACTION))
    return full.subset(order[n_test:]), full.subset(order[:n_test])


def split_fingerprint(dataset: TensorImageDataset | ImageFiles) -> str:
    """SHA-256 of a split's images and labels (a streamed folder's: file names and sizes, since
    reading them all would take an epoch); `held_out_split` checks it."""
    digest = hashlib.sha256()
    if isinstance(dataset, ImageFiles):
        for path in dataset.paths:
            digest.update(f"{path.parent.name}/{path.name}:{path.stat().st_size}\n".encode())
    else:
        digest.update(dataset.images.contiguous().numpy().tobytes())
    digest.update(dataset.labels.to(torch.int64).contiguous().numpy().tobytes())
    return digest.hexdigest()


def statistics_sample(train: TensorImageDataset | ImageFiles, seed: int) -> Tensor:
    """The images a training split's statistics are computed on: all of an in-memory split, a
    seeded random `STATS_SAMPLE` of a streamed folder (reading them all would take an epoch)."""
    if isinstance(train, TensorImageDataset):
        return train.images
    pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    return first_images(train.subset(pick[:STATS_SAMPLE]), STATS_SAMPLE)


def collate_files(batch: list) -> tuple[Tensor, Tensor]:
    """A streamed folder's batch: default_collate, and an empty share (data-parallel's last
    step) as empty tensors."""
    if not batch:
        return torch.empty(0, dtype=torch.uint8), torch.empty(0, dtype=torch.long)
    return default_collate(batch)
