"""Data: Fashion-MNIST, STL-10 or your own folder of images, as uint8 tensors in train /
validation / test splits, and loaders of whole uint8 batches (what the network then sees is made
from them in `transforms`).

    splits = load_splits("fashion-mnist")              # or "stl10", or "path/to/folder"
    loader = make_loader(splits.train, batch_size=128, shuffle=True)
    for images, labels in loader:                      # images: uint8 N x C x H x W (native size)
        ...

The official files are read and checked here (torchvision only downloads them); image files are
read by `images.read_image`.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, TensorDataset, default_collate

from .distributed import ShardBatches
from .images import IMAGE_EXTENSIONS, DataFileError, image_files, read_image_tensor
from .profiles import current_profile
from .settings import data_root, shown_path, smoke_mode
from .standin import FOLDERS, STL10_CLASSES, is_standin, provide_standins, writable
from .transforms import PAPER_RESIZE, resize_batch

__all__ = [
    "DATASETS", "FASHION_MNIST_CLASSES", "STL10_CLASSES", "Splits", "TensorImageDataset",
    "load_splits", "load_test_split", "load_image_folder", "ImageFiles", "folder_dataset",
    "image_shape", "first_images", "channel_mean_std", "rgb_pca", "make_loader", "as_loader",
    "stl10_source", "split_fingerprint", "DataFileError", "sample_photos", "try_load",
    "STL10_DOWNLOAD_GB", "OFFICIAL_SIZES",
]

DATASETS = ("fashion-mnist", "stl10")
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot"]
# The official files; the first four hold the images and labels and are the ones read.
FILES = {"fashion-mnist": ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                           "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"],
         "stl10": ["train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin", "class_names.txt",
                   "fold_indices.txt"]}
FOLDER_TEST_FRACTION = 0.2                        # one image folder: 20 % becomes the test split
# what a full download holds: (training images, test images)
OFFICIAL_SIZES = {"fashion-mnist": (60_000, 10_000), "stl10": (5_000, 8_000)}
STL10_DOWNLOAD_GB = 2.6                           # stl10_binary.tar.gz, with the unlabelled part
# Natural colour photos every install has: four public-domain / CC0 photos from scikit-image's
# sample data, shrunk to a 256 px shorter side (alexnet_edu/photos/), and scikit-learn's two
# sample photos (CC BY 2.0, read from the installed scikit-learn). Licences: data/README.md.
PHOTOS = ("astronaut", "cat", "coffee", "rocket")
SKLEARN_PHOTOS = {"temple": "china.jpg", "flower": "flower.jpg"}


# Datasets as uint8 tensors -----------------------------------------------------------------------
class TensorImageDataset(Dataset):
    """Images held in memory as one uint8 tensor N x C x H x W, with integer labels. `ds[i]` is
    `(uint8 C x H x W, int)`; `make_loader` takes whole batches with one indexing operation."""

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
        self.image_size = int(image_shape(self.train)[-1])

    def __repr__(self) -> str:
        tag = " (synthetic stand-in data)" if self.synthetic else ""
        mean, std = (tuple(round(v, 4) for v in values) for values in (self.mean, self.std))
        return (f"Splits({self.name}{tag}: train {len(self.train)}, val {len(self.val)}, test "
                f"{len(self.test)} images of {self.in_channels}x{self.image_size}x"
                f"{self.image_size}; {len(self.classes)} classes; mean {mean}, std {std})")


def stl10_source() -> str | Path:
    """What the notebooks load as STL-10: "stl10" when its files are under `data_root()` or in the
    `full` profile (which downloads them), else the real sample ``stl10-sample/test`` if there."""
    sample = data_root() / "stl10-sample" / "test"
    official = (data_root() / FOLDERS["stl10"] / "train_X.bin").is_file()
    use_sample = sample.is_dir() and not official and current_profile().name != "full"
    return sample if use_sample else "stl10"


def sample_photos() -> TensorImageDataset:
    """Six natural colour photos that every install has (no download), brought to 256 x 256 the
    paper's way (§2: shorter side to 256, central crop), one class per photo, named after what
    it shows: astronaut, cat, coffee, flower, rocket, temple. For the colour lessons (crops,
    flips, PCA lighting, ten patches) and for looking inside an ImageNet model."""
    # scikit-learn is a dependency, and its two sample photos ship with it
    from sklearn.datasets import load_sample_image

    found = {name: read_image_tensor(Path(__file__).parent / "photos" / f"{name}.jpg")
             for name in PHOTOS}
    for name, file in SKLEARN_PHOTOS.items():
        found[name] = torch.from_numpy(load_sample_image(file).copy()).permute(2, 0, 1)
    classes = sorted(found)
    images = torch.stack([_square(found[name], PAPER_RESIZE) for name in classes])
    return TensorImageDataset(images, torch.arange(len(classes)), classes)


def try_load(dataset: str | Path, **kwargs) -> Splits | None:
    """`load_splits(dataset, **kwargs)`, or None when its files are not here and could not be
    downloaded: then it prints what is missing, how big the download is and how to get it, so
    that a notebook can go on without it (its cells that need the data say so and skip)."""
    try:
        return load_splits(dataset, **kwargs)
    except FileNotFoundError as err:
        print(_missing_brief(dataset, kwargs.get("root"), err))
        return None


def _missing_brief(dataset: str | Path, root: str | Path | None, err: Exception) -> str:
    """The few lines `try_load` prints: no machine paths beyond the data folder's short name
    ($ALEXNET_EDU_DATA or data/), so that a stored notebook output shows none."""
    key = _dataset_key(dataset)
    if key not in DATASETS:
        return f"Not loaded: {err}"
    where = (shown_path(root) if root is not None else "$ALEXNET_EDU_DATA"
             if os.environ.get("ALEXNET_EDU_DATA", "").strip() else shown_path(data_root()))
    folder = (Path(root) if root is not None else data_root()) / FOLDERS[key]
    missing = _missing(key, folder) or FILES[key][:4]
    failed = " (the download failed: offline?)" if "download failed" in str(err) else ""
    size = f"{STL10_DOWNLOAD_GB} GB" if key == "stl10" else "30 MB"
    return (f"{key} is not here: {where}/{FOLDERS[key].as_posix()}/ lacks {', '.join(missing)}"
            f"{failed}. Get it with data.load_splits({key!r}, download=True) ({size}), or copy "
            "the official files there (data/README.md). The cells that need it skip.")


def split_fingerprint(dataset: TensorImageDataset | ImageFiles) -> str:
    """SHA-256 of a split's images and labels: a checkpoint records them (``Splits.recipe``) so
    that `evaluate` can refuse a split its run did not hold out. A streamed folder's images are
    known by their file names and sizes (reading them all would take an epoch)."""
    digest = hashlib.sha256()
    if isinstance(dataset, ImageFiles):
        for path in dataset.paths:
            digest.update(f"{path.parent.name}/{path.name}:{path.stat().st_size}\n".encode())
    else:
        digest.update(dataset.images.contiguous().numpy().tobytes())
    digest.update(dataset.labels.to(torch.int64).contiguous().numpy().tobytes())
    return digest.hexdigest()


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
    """Per-channel mean and (population) standard deviation of uint8 images N x C x H x W,
    on the 0-1 scale: the numbers `Normalize` uses. Compute them on the TRAIN split only."""
    mean, std, _ = _stats(images)
    return mean, std


def rgb_pca(images: Tensor) -> tuple[Tensor, Tensor]:
    """Eigenvalues (3,) and eigenvectors (3 x 3, one per column, largest first) of the 3 x 3
    covariance of RGB pixel values (0-1 scale) over all pixels of uint8 `images` (§4.1)."""
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


# The official files, read and checked here; torchvision only downloads them ----------------------
_FIX = ("Delete the file(s) and download again (load_splits(..., download=True)), or copy the "
        "official files there.")


def _present(path: Path) -> Path | None:
    """`path`, else its gzipped `path.gz`, else None."""
    gz = path.with_name(path.name + ".gz")
    return path if path.is_file() else gz if gz.is_file() else None


def _file_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped for `.gz`."""
    if path.stat().st_size == 0:     # a failed download often leaves an empty file
        raise DataFileError(f"{path} is empty (0 bytes). {_FIX}")
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as f:
            blob = f.read()
    except (OSError, EOFError, zlib.error) as err:   # BadGzipFile is an OSError
        raise DataFileError(f"{path} is not a complete gzip file ({err}). {_FIX}") from None
    if not blob:
        raise DataFileError(f"{path} is empty (0 bytes after decompression). {_FIX}")
    return blob


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """An IDX file of unsigned bytes with `ndim` dimensions (3: images, 1: labels), its header
    (magic 0x000008<ndim>, big-endian sizes) checked against the file's length."""
    blob = _file_bytes(path)
    what = "idx3-ubyte image" if ndim == 3 else "idx1-ubyte label"
    header_len = 4 + 4 * ndim
    if len(blob) < header_len:
        raise DataFileError(f"{path} is truncated: {len(blob)} bytes, shorter than the "
                            f"{header_len}-byte header of an {what} file. {_FIX}")
    magic = struct.unpack(">I", blob[:4])[0]
    if magic != 0x0800 + ndim:
        raise DataFileError(f"{path} has magic number 0x{magic:08X}, expected "
                            f"0x{0x0800 + ndim:08X} (an {what} file): it is another kind of "
                            f"file. {_FIX}")
    dims = struct.unpack(f">{ndim}I", blob[4:header_len])
    expected = header_len + int(np.prod(dims, dtype=np.int64))
    if 0 in dims or len(blob) != expected:
        state = ("is truncated" if len(blob) < expected else
                 "has extra bytes" if len(blob) > expected else "declares no items")
        raise DataFileError(f"{path} {state}: its header declares sizes {'x'.join(map(str, dims))} "
                            f"({expected} bytes in all) but the file holds {len(blob)} bytes. "
                            f"{_FIX}")
    return np.frombuffer(blob, np.uint8, offset=header_len).reshape(dims)


def _checked(images: np.ndarray, labels: np.ndarray, images_path: Path, labels_path: Path,
             low: int) -> tuple[Tensor, Tensor]:
    """(images, labels - low) as tensors, once the counts agree and every label is in low..low+9."""
    if len(images) != len(labels):
        raise DataFileError(f"{images_path} holds {len(images)} images but {labels_path} holds "
                            f"{len(labels)} labels: the two files are from different downloads. "
                            f"{_FIX}")
    bad = np.flatnonzero((labels < low) | (labels > low + 9))
    if len(bad):
        raise DataFileError(f"{labels_path} holds label {int(labels[bad[0]])} at index "
                            f"{int(bad[0])} ({len(bad)} labels out of range); this dataset's "
                            f"labels are {low}-{low + 9}. {_FIX}")
    return (torch.from_numpy(images.copy(order="C")),   # a writable copy of the file's bytes
            torch.from_numpy(labels.astype(np.int64) - low))


def _read_split(name: str, folder: Path, split: str) -> TensorImageDataset:
    """One split of a named dataset, read from its official files."""
    if name == "fashion-mnist":
        prefix = "train" if split == "train" else "t10k"
        images_path = _present(folder / f"{prefix}-images-idx3-ubyte")
        labels_path = _present(folder / f"{prefix}-labels-idx1-ubyte")
        images, labels = _read_idx(images_path, ndim=3)[:, None], _read_idx(labels_path, ndim=1)
        return TensorImageDataset(*_checked(images, labels, images_path, labels_path, low=0),
                                  FASHION_MNIST_CLASSES)
    images_path = _present(folder / f"{split}_X.bin")
    labels_path = _present(folder / f"{split}_y.bin")
    pixels = np.frombuffer(_file_bytes(images_path), np.uint8)
    if len(pixels) % (3 * 96 * 96):
        raise DataFileError(f"{images_path} holds {len(pixels)} bytes, not a whole number of "
                            f"3x96x96 images ({3 * 96 * 96} bytes each): it is truncated or "
                            f"another kind of file. {_FIX}")
    images = pixels.reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2)   # stored column-major
    labels = np.frombuffer(_file_bytes(labels_path), np.uint8)   # 1..10 on disk
    return TensorImageDataset(*_checked(images, labels, images_path, labels_path, low=1),
                              STL10_CLASSES)


def _missing(name: str, folder: Path) -> list[str]:
    return [f for f in FILES[name][:4] if _present(folder / f) is None]


def _load_official(name: str, root: Path, download: bool) -> tuple:
    """(pool, test, synthetic, folder) from the official files, downloaded first if `download`."""
    folder = root / FOLDERS[name]
    if download and _missing(name, folder):   # torchvision's public dataset classes download
        {"fashion-mnist": torchvision.datasets.FashionMNIST,
         "stl10": torchvision.datasets.STL10}[name](str(root), download=True)
    missing = _missing(name, folder)
    if missing:
        raise FileNotFoundError(f"{name}: {', '.join(missing)} missing in {folder}")
    synthetic = is_standin(folder)   # first: stand-ins changed since generated are refused
    return _read_split(name, folder, "train"), _read_split(name, folder, "test"), synthetic, folder


def _check_data_root(root: Path, named_by: str | None) -> None:
    """A data root the user named (`named_by`) must exist: a typo would otherwise create a folder
    and download into it. Only the default root may be created by a download."""
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"the data root {root} is a file, not a folder: set "
                                 f"ALEXNET_EDU_DATA (or pass root=) to the folder of datasets")
    if named_by is not None and not root.exists():
        raise FileNotFoundError(f"the data root {root} (from {named_by}) does not exist: create it "
                                f"(mkdir -p {root}) or set ALEXNET_EDU_DATA to the folder that "
                                f"holds the datasets. Nothing was created or downloaded.")


def _not_found(name: str, root: Path, err: Exception, download: bool, attempted: bool) -> str:
    """What is missing, why nothing was downloaded (or that the download failed), what to do."""
    folder = root / FOLDERS[name]
    missing = _missing(name, folder)
    if not missing:
        return str(err)
    listed = "\n".join(f"  {folder / f}" for f in FILES[name])
    why = f" and the download failed ({' '.join(str(err).split())[:300]})" if attempted else ""
    what = (f"{name} was not found in {folder}" if len(missing) == 4 else
            f"{name} is incomplete in {folder}: missing {', '.join(missing)}")
    message = (f"{what}{why}.\nPut the official files there:\n{listed}\n"
               f"or set ALEXNET_EDU_DATA to a folder that holds them (see data/README.md). "
               f"To try the notebooks without data, set ALEXNET_EDU_SMOKE=1: they then generate "
               f"small synthetic stand-in data.")
    if download and not attempted:
        message += f"\n({root} is read-only, so nothing was downloaded.)"
    if not download and name == "stl10":
        message += ("\n(The cpu profile does not start STL-10's 2.6 GB download: pass "
                    "download=True, or set ALEXNET_EDU_PROFILE=full.)")
    return message


def _official_or_standin(name: str, root: Path, download: bool) -> tuple:
    """`_load_official`; without the files, stand-ins in smoke mode, else a clear error."""
    attempt = download and writable(root)   # never download into a read-only data root
    try:
        return _load_official(name, root, attempt)
    except (RuntimeError, OSError) as err:   # not found, download failed, changed stand-ins
        if not smoke_mode():
            raise FileNotFoundError(_not_found(name, root, err, download, attempt)) from err
    return _load_official(name, provide_standins(name, root), download=False)


# Image folders -----------------------------------------------------------------------------------
def _square(image: Tensor, side: int) -> Tensor:
    """§2: rescale so the shorter side is `side`, then take the central side x side patch."""
    return resize_batch(image[None].float(), side).round().clamp(0, 255).to(torch.uint8)[0]


def _class_files(folder: Path) -> tuple[list[str], list[Path], list[int]]:
    """(classes, image paths, labels) of `folder`/<class>/..., or a clear error."""
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise FileNotFoundError(f"{folder} has no class sub-folders: put the images in "
                                f"{folder}/<class name>/<image>.png (one folder per class)")
    paths, labels = [], []
    for label, name in enumerate(classes):
        files = image_files(folder / name)
        if not files:
            raise FileNotFoundError(f"class folder {folder / name} holds no images with an "
                                    f"extension among {IMAGE_EXTENSIONS} (hidden files skipped)")
        if len(classes) == 1 and all(f.parent != folder / name for f in files):
            # one class whose images all sit in sub-folders: most likely a folder too high up
            raise FileNotFoundError(f"{folder} has one class folder, {name}, with all its images "
                                    f"in sub-folders: if those are the classes, pass "
                                    f"{folder / name}")
        paths += files
        labels += [label] * len(files)
    return classes, paths, labels


def load_image_folder(folder: str | Path) -> TensorImageDataset:
    """Every image below `folder`/<class>/ as one uint8 tensor (class = sub-folder name, sorted).
    Images of one common size (shorter side at most 256) keep it; otherwise every image is
    brought to 256 x 256 the paper's way (§2: shorter side to 256, central crop)."""
    return _load_files(*_class_files(Path(folder).expanduser()))


def _load_files(classes: list[str], paths: list[Path], labels: list[int]) -> TensorImageDataset:
    images: list[Tensor] = []
    squared = False
    for path in paths:
        image = read_image_tensor(path)
        if not squared and (image.shape != images[0].shape if images
                            else min(image.shape[1:]) > PAPER_RESIZE):
            # a second size, or a large first one: square all, one at a time (memory bounded)
            images, squared = [_square(x, PAPER_RESIZE) for x in images], True
        images.append(_square(image, PAPER_RESIZE) if squared else image)
    return TensorImageDataset(torch.stack(images), torch.tensor(labels), classes)


class ImageFiles(Dataset):
    """An image folder too large for memory, as file paths: `ds[i]` decodes image i when it is
    asked for (in DataLoader workers), shrinking it as it is read, and brings it to side x side
    the paper's way (§2: shorter side to 256, central crop). Memory stays that of a few batches
    whatever the folder's size; `BatchTransform` then crops and augments whole batches."""

    def __init__(self, paths: list[Path], labels: Tensor, classes: list[str],
                 side: int = PAPER_RESIZE, channels: int = 3):
        self.paths, self.labels, self.classes = list(paths), labels.long(), list(classes)
        self.side, self.channels = side, channels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        image = read_image_tensor(self.paths[index], self.channels, shorter_side=self.side)
        return _square(image, self.side), int(self.labels[index])

    def subset(self, indices: Tensor) -> ImageFiles:
        return ImageFiles([self.paths[i] for i in indices.tolist()], self.labels[indices].clone(),
                          self.classes, self.side, self.channels)

    def sample(self, n: int, seed: int = 0) -> Tensor:
        """n images (at most all), drawn with `seed`, decoded: enough for channel statistics."""
        pick = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n]
        return torch.stack([self[i][0] for i in pick.tolist()])

    def __repr__(self) -> str:
        return (f"ImageFiles({len(self)} images read from disk as {self.channels}x{self.side}x"
                f"{self.side} uint8, {len(self.classes)} classes)")


IN_MEMORY_BYTES = 2 * 1024**3   # folders whose 256 x 256 images need more are streamed
STATS_SAMPLE = 2_000            # images a streamed training split computes its statistics on


def folder_dataset(folder: str | Path) -> TensorImageDataset | ImageFiles:
    """`load_image_folder` when the folder's images fit in IN_MEMORY_BYTES at 256 x 256, else
    `ImageFiles` (read from disk batch by batch); says which it chose, and why."""
    folder = Path(folder).expanduser()
    classes, paths, labels = _class_files(folder)
    needed = len(paths) * 3 * PAPER_RESIZE**2
    if needed <= IN_MEMORY_BYTES:
        return _load_files(classes, paths, labels)   # the folder is listed once
    print(f"{folder}: {len(paths):,} images would need {needed / 1024**3:.1f} GiB in memory "
          f"(more than {IN_MEMORY_BYTES / 1024**3:.0f} GiB): reading them from disk as needed")
    return ImageFiles(paths, torch.tensor(labels), classes)


def image_shape(dataset: Dataset) -> tuple[int, int, int]:
    """(channels, height, width) of every image of a TensorImageDataset or ImageFiles."""
    if isinstance(dataset, ImageFiles):
        return dataset.channels, dataset.side, dataset.side
    return tuple(dataset.images.shape[1:])


def first_images(dataset: Dataset, n: int) -> Tensor:
    """The first n images (at most all) as one uint8 batch, from memory or from disk."""
    if isinstance(dataset, TensorImageDataset):
        return dataset.images[:n]
    return torch.stack([dataset[i][0] for i in range(min(n, len(dataset)))])


# Splits ------------------------------------------------------------------------------------------
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


def _held_out_folder(folder: Path) -> Path | None:
    """A folder's own test split: test/ beside train/, else val/ (ImageNet's layout, whose
    labelled validation set is the test split here: our validation split comes from train/)."""
    if not (folder / "train").is_dir():
        return None
    return next((folder / name for name in ("test", "val") if (folder / name).is_dir()), None)


def _folder_splits(folder: Path, seed: int) -> tuple[TensorImageDataset, TensorImageDataset]:
    """(training pool, test split): the folder's train/ and test/ (or val/), else a seeded
    random split."""
    if (held_out := _held_out_folder(folder)) is not None:
        train, test = folder_dataset(folder / "train"), folder_dataset(held_out)
        if test.classes != train.classes:
            raise ValueError(f"{folder}/train and {held_out} have different class folders")
        return train, test
    full = folder_dataset(folder)
    order = torch.randperm(len(full), generator=torch.Generator().manual_seed(seed + 1))
    n_test = max(1, round(len(full) * FOLDER_TEST_FRACTION))
    return full.subset(order[n_test:]), full.subset(order[:n_test])


def load_splits(dataset: str | Path, root: str | Path | None = None, val_fraction: float = 0.1,
                seed: int = 0, limit: int | None = None, download: bool | None = None) -> Splits:
    """Train/val/test splits of "fashion-mnist", "stl10" or an image folder (class sub-folders;
    with train/ and test/ inside, those are used, else a seeded 20 % becomes the test split).

    Missing files are downloaded when `download` is True; None downloads Fashion-MNIST (30 MB)
    always, STL-10 (2.6 GB) only in the `full` profile. The validation split is carved from the
    training set with `seed`. `limit` caps the images per split (val: the same proportion).
    Mean, std and PCA come from the train split only."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    key = _dataset_key(dataset)
    if key in DATASETS:
        named_by = ("the root argument" if root is not None else "$ALEXNET_EDU_DATA"
                    if os.environ.get("ALEXNET_EDU_DATA", "").strip() else None)
        root = Path(root).expanduser() if root is not None else data_root()
        _check_data_root(root, named_by)
        if download is None:
            download = key != "stl10" or current_profile().name == "full"
        pool, test, synthetic, source = _official_or_standin(key, root, download)
        name = key
    else:
        source = Path(dataset).expanduser()
        if not source.is_dir():
            raise FileNotFoundError(f"unknown dataset {dataset!r}: use one of {DATASETS} or the "
                                    f"path of a folder of images in class sub-folders")
        pool, test = _folder_splits(source, seed)
        # a folder named like a split (stl10-sample/test) is known by its parent too
        name = (f"{source.parent.name}-{source.name}"
                if source.name.lower() in ("train", "val", "test") else source.name)
        synthetic = False

    n_train, n_val = _split_counts(len(pool), val_fraction, limit)
    order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))
    train, val = pool.subset(order[n_val:n_val + n_train]), pool.subset(order[:n_val])
    test = _test_subset(test, seed, limit)
    # a streamed folder: the statistics of a random sample of its training images
    mean, std, cov = _stats(train.images if isinstance(train, TensorImageDataset)
                            else train.sample(STATS_SAMPLE, seed))
    channels = image_shape(train)[0]
    pca = _eig(cov) if channels == 3 else None
    return Splits(train=train, val=val, test=test, classes=pool.classes,
                  in_channels=int(channels), mean=mean, std=std, pca=pca, name=name,
                  synthetic=synthetic, source=str(source),
                  recipe={"seed": seed, "val_fraction": val_fraction, "limit": limit,
                          "test_images": len(test), "val": split_fingerprint(val),
                          "test": split_fingerprint(test)})


def _dataset_key(dataset: str | Path) -> str:
    key = str(dataset).lower().replace("_", "-")
    return {"fashionmnist": "fashion-mnist", "stl-10": "stl10"}.get(key, key)


def _test_subset(test: TensorImageDataset, seed: int, limit: int | None) -> TensorImageDataset:
    """The test split under `limit`: a seeded random subset, which keeps the classes balanced."""
    if limit is None or len(test) <= limit:
        return test
    return test.subset(torch.randperm(len(test),
                                      generator=torch.Generator().manual_seed(seed + 2))[:limit])


def load_test_split(dataset: str | Path, root: str | Path | None = None, seed: int = 0,
                    limit: int | None = None) -> tuple[TensorImageDataset, bool]:
    """(test split, synthetic): the test split `load_splits` gives with the same seed and limit,
    read without the training files when the dataset keeps its test images apart (the named
    datasets' official test files, an image folder's test/): evaluating a model needs no more."""
    key = _dataset_key(dataset)
    if key in DATASETS:
        folder = (Path(root).expanduser() if root is not None else data_root()) / FOLDERS[key]
        if all(_present(folder / name) for name in FILES[key][2:4]):   # the two test files
            test = _read_split(key, folder, "test")
            return _test_subset(test, seed, limit), is_standin(folder)
    elif (held_out := _held_out_folder(Path(dataset))) is not None:
        return _test_subset(folder_dataset(held_out), seed, limit), False
    # a single image folder (its test split is drawn from it), or files that are missing:
    # load_splits downloads, generates stand-ins in smoke mode, or says what to do
    splits = load_splits(dataset, root, seed=seed, limit=limit)
    return splits.test, splits.synthetic


# Loaders of uint8 batches ------------------------------------------------------------------------
class _WholeBatches(Dataset):
    """Indexed by a list of indices (from a BatchSampler): one whole batch per item."""

    def __init__(self, dataset: TensorImageDataset):
        self.dataset = dataset

    def __getitem__(self, indices: list[int]) -> tuple[Tensor, Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return self.dataset.images[idx], self.dataset.labels[idx]


def _as_is(batch):
    return batch


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, num_workers: int | None = None,
                seed: int = 0, shard: tuple[int, int] = (0, 1)) -> DataLoader:
    """A DataLoader of uint8 batches `(images N x C x H x W, labels N)`, shuffled with `seed`.
    `shard` = (rank, processes): this process's share of every batch in data-parallel training.
    A `TensorImageDataset` is indexed a whole batch at a time in the main process; other
    datasets get min(2, CPUs) workers by default (Colab has two cores)."""
    in_memory = isinstance(dataset, TensorImageDataset)
    if num_workers is None:   # tensors in memory: nothing for workers to do but copy
        num_workers = 0 if in_memory or isinstance(dataset, TensorDataset) else min(
            2, os.cpu_count() or 1)
    # The order: torch.randperm drawn from `seed` alone, dealt out to the processes in turn, so
    # W processes with batch B see in each step the images 1 process sees with batch W*B
    # (distributed.ShardBatches; nothing repeated, so a process's last share may be empty). The
    # workers' base seed comes from its own generator: the global RNG's would break exact
    # resumption.
    batches = ShardBatches(len(dataset), batch_size, shuffle, seed, shard)
    common = dict(num_workers=num_workers, pin_memory=torch.cuda.is_available(),
                  persistent_workers=num_workers > 0,
                  generator=torch.Generator().manual_seed(seed))
    if not in_memory:
        return DataLoader(dataset, batch_sampler=batches, collate_fn=_collate, **common)
    return DataLoader(_WholeBatches(dataset), sampler=batches, batch_size=None,
                      collate_fn=_as_is, **common)


def _collate(batch: list) -> tuple[Tensor, Tensor]:
    """default_collate, and an empty share (data-parallel's last step) as empty tensors."""
    if not batch:
        return torch.empty(0, dtype=torch.uint8), torch.empty(0, dtype=torch.long)
    return default_collate(batch)


def as_loader(data, batch_size: int) -> DataLoader:
    """Some data as a loader of (images, labels) batches, in order: a DataLoader as it is, an
    (images, labels) pair of tensors, a tensor of images (labels -1), or any Dataset."""
    if isinstance(data, DataLoader):
        return data
    if torch.is_tensor(data):
        data = (data, torch.full((len(data),), -1, dtype=torch.long))
    if isinstance(data, (tuple, list)) and len(data) == 2 and torch.is_tensor(data[0]):
        data = TensorDataset(data[0], torch.as_tensor(data[1]))
    return make_loader(data, batch_size, shuffle=False)
