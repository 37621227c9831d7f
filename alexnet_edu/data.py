"""Data: Fashion-MNIST, STL-10 or your own folder of images, as uint8 tensors; the paper's
augmentations run on whole batches (on the GPU when there is one).

    splits = load_splits("fashion-mnist")              # or "stl10", or "path/to/folder"
    loader = make_loader(splits.train, batch_size=128, shuffle=True)
    transform = BatchTransform(227, splits.mean, splits.std, train=True, pca=splits.pca,
                               out_channels=3).to(device)
    for images, labels in loader:                      # images: uint8 N x C x H x W (native size)
        x = transform(images)                          # float N x 3 x 227 x 227, normalized

Why batches and not per-image PIL transforms in DataLoader workers: upsampling 28x28 or 96x96
to 227x227 image by image with PIL is the bottleneck on Colab's two CPU cores; one
`F.interpolate` on a whole batch (on the GPU) is cheap (notebook 03 measures both).

Paper sections: §2 (rescale the shorter side to 256, take the central 256x256 patch),
§4.1 (random 224 crops of 256 + horizontal reflections; PCA colour augmentation with
alpha ~ N(0, 0.1); test-time averaging over ten patches). We use 227 for 224 (see `shapes`).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import struct
import tempfile
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from .profiles import current_profile
from .settings import PROJECT_ROOT, data_root, smoke_mode

__all__ = [
    "DATASETS", "FASHION_MNIST_CLASSES", "STL10_CLASSES", "Splits", "TensorImageDataset",
    "load_splits", "load_image_folder", "channel_mean_std", "rgb_pca", "BatchTransform",
    "resize_batch", "crop_and_flip", "center_crop", "pca_lighting", "ten_crop", "make_loader",
    "generate_fashion_mnist", "generate_stl10", "STL10WithGenerated", "GENERATED_MARKER",
    "DataFileError", "read_image", "MAX_IMAGE_SIDE", "MAX_IMAGE_PIXELS", "stl10_source",
    "split_fingerprint",
]

DATASETS = ("fashion-mnist", "stl10")
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot"]
STL10_CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship",
                 "truck"]
FASHION_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"]
STL10_FILES = ["train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin", "class_names.txt",
               "fold_indices.txt"]
GENERATED_MARKER = "ALEXNET_EDU_GENERATED.json"   # written next to generated stand-in files
SMOKE_GENERATED_SIZES = (600, 200)                # (train, test) images of stand-in data
FOLDER_TEST_FRACTION = 0.2                        # one image folder: 20 % becomes the test split
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm",
                    ".pgm")
PAPER_RESIZE, PAPER_CROP = 256, 227               # §2 / §4.1 (the paper's 224 is 227, see shapes)
MAX_IMAGE_SIDE = 1024         # read_image shrinks larger images at once: memory stays bounded
MAX_IMAGE_PIXELS = 64_000_000  # larger images are refused (PIL only warns at 89.5 million)
FASHION_CLASSES_N = 10        # Fashion-MNIST labels are 0..9


class DataFileError(ValueError):
    """A data file that exists but cannot be used (empty, truncated, wrong format, bad values).
    The message names the file, says what is wrong with it and what to do."""


# --------------------------------------------------------------------------------------------
# Datasets as uint8 tensors
# --------------------------------------------------------------------------------------------

class TensorImageDataset(Dataset):
    """Images held in memory as one uint8 tensor N x C x H x W, with integer labels.

    `ds[i]` is `(uint8 C x H x W, int)`, so it works with any DataLoader or Subset;
    `make_loader` takes a whole batch `(uint8 N x C x H x W, int64 N)` with one indexing
    operation instead, so that no per-image Python work happens while training.
    """

    def __init__(self, images: Tensor, labels: Tensor, classes: list[str]):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 N x C x H x W, got {images.dtype} "
                             f"{tuple(images.shape)}")
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = labels.long()
        self.classes = list(classes)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.images[index], int(self.labels[index])

    def batch(self, indices: list[int] | Tensor) -> tuple[Tensor, Tensor]:
        """The images and labels at `indices`, stacked: (uint8 N x C x H x W, int64 N)."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        return self.images[idx], self.labels[idx]

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
    # How the splits were drawn (seed, val_fraction, limit): a checkpoint records it, so that
    # `evaluate` rebuilds exactly the splits its run held out (see train.split_identity).
    recipe: dict = field(default_factory=dict)
    image_size: int = field(init=False)

    def __post_init__(self) -> None:
        self.image_size = int(self.train.images.shape[-1])

    def __repr__(self) -> str:
        tag = " (synthetic stand-in data)" if self.synthetic else ""
        return (f"Splits({self.name}{tag}: train {len(self.train)}, val {len(self.val)}, "
                f"test {len(self.test)} images of {self.in_channels}x{self.image_size}x"
                f"{self.image_size}; {len(self.classes)} classes; mean "
                f"{tuple(round(m, 4) for m in self.mean)}, std "
                f"{tuple(round(s, 4) for s in self.std)})")


def stl10_source() -> str | Path:
    """What the notebooks load as STL-10: "stl10" (the official dataset) when its files are under
    `data_root()` or in the `full` profile (which downloads them); else the real 95-image sample
    folder ``stl10-sample/test`` when it is there (see data/README.md); else "stl10" again (smoke
    mode then generates stand-ins, other profiles raise an error naming the files)."""
    official = data_root() / "stl10_binary" / "train_X.bin"
    sample = data_root() / "stl10-sample" / "test"
    if official.is_file() or current_profile().name == "full" or not sample.is_dir():
        return "stl10"
    return sample


def split_fingerprint(dataset: TensorImageDataset) -> str:
    """SHA-256 of a split's images and labels: two splits with the same fingerprint hold the same
    images in the same order. A checkpoint records its validation and test fingerprints (in
    ``Splits.recipe``) so that `evaluate` can refuse a split its run did not hold out."""
    digest = hashlib.sha256()
    digest.update(dataset.images.contiguous().numpy().tobytes())
    digest.update(dataset.labels.to(torch.int64).contiguous().numpy().tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Statistics from the training split (normalization and PCA lighting)
# --------------------------------------------------------------------------------------------

def _moments(images: Tensor, chunk: int = 256) -> tuple[Tensor, Tensor, int]:
    """Sum of pixels (C,) and of pixel outer products (C, C) on the 0-1 scale, in float64."""
    c = images.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    outer = torch.zeros(c, c, dtype=torch.float64)
    for start in range(0, len(images), chunk):
        x = images[start:start + chunk].to(torch.float64).div_(255)
        x = x.permute(1, 0, 2, 3).reshape(c, -1)           # C x pixels
        total += x.sum(dim=1)
        outer += x @ x.T
    return total, outer, images.shape[0] * images.shape[2] * images.shape[3]


def _stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...], Tensor]:
    """Mean, std (population) and covariance matrix of the channels, 0-1 scale, in one pass."""
    total, outer, n = _moments(images)
    mean = total / n
    cov = outer / n - torch.outer(mean, mean)                # E[x x^T] - E[x] E[x]^T
    std = cov.diagonal().clamp_min(0).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist()), cov


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


# --------------------------------------------------------------------------------------------
# File formats: writing the official formats (stand-in data, tests) and reading them
# --------------------------------------------------------------------------------------------

_MD5_CACHE: dict[tuple[str, int, int], str] = {}


def _md5(path: Path) -> str:
    """md5 of a file, remembered per (path, size, mtime): the real STL-10 files are 360 MB."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _MD5_CACHE:
        _MD5_CACHE[key] = _md5_uncached(path)
    return _MD5_CACHE[key]


def _md5_uncached(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file and os.replace, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _idx_bytes(array: np.ndarray) -> bytes:
    """IDX format (LeCun): magic 0x0000 08 <ndim> (08 = unsigned byte), big-endian dims, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def _standin_pattern(n: int, size: int, labels: np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
    """Learnable stand-in patterns, n x size x size in [0, 1]. Each class has its own blocky
    silhouette (the same for every seed) shifted by a few pixels, overlaid with stripes whose
    orientation depends on the class (18 degrees apart) at a random phase."""
    shapes = np.random.default_rng(2012).random((10, 1, 6, 6), dtype=np.float32)
    shapes = F.interpolate(torch.from_numpy(shapes), size=(size, size), mode="bilinear",
                           align_corners=False)[:, 0].numpy()
    shapes = (shapes > 0.5).astype(np.float32)                             # crisp silhouettes
    steps = np.arange(size)
    dy, dx = rng.integers(-size // 14, size // 14 + 1, (2, n))             # +-2 px at 28
    rows = (steps[None] + dy[:, None]) % size
    cols = (steps[None] + dx[:, None]) % size
    silhouette = shapes[labels[:, None, None], rows[:, :, None], cols[:, None, :]]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    theta = labels.astype(np.float32) * (np.pi / 10)
    phase = rng.uniform(0, 2 * np.pi, n).astype(np.float32)
    along = np.cos(theta)[:, None, None] * xx + np.sin(theta)[:, None, None] * yy
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * along + phase[:, None, None])
    return silhouette * (0.6 + 0.4 * stripes)


def _standin_labels(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.arange(n) % 10).astype(np.uint8)   # balanced classes


def _write_marker(folder: Path, kind: str, n_train: int, n_test: int, seed: int,
                  files: list[Path]) -> None:
    marker = {"generator": f"alexnet_edu.data.generate_{kind}", "seed": seed,
              "n_train": n_train, "n_test": n_test,
              "note": "synthetic stand-in images, not the real dataset",
              "md5": {f.name: _md5(f) for f in files}}
    _write_atomic(folder / GENERATED_MARKER, json.dumps(marker, indent=1).encode())


def generate_fashion_mnist(folder: str | Path, n_train: int = 1000, n_test: int = 300,
                           seed: int = 0, compress: bool = False) -> Path:
    """Write stand-in Fashion-MNIST in the official IDX format to `folder`/FashionMNIST/raw/
    (gzipped `.gz` files when `compress`). 28x28 grey images whose stripe orientation and
    brightness depend on the class, plus noise: a network can learn them. Returns the raw folder."""
    rng = np.random.default_rng(seed)
    raw = Path(folder) / "FashionMNIST" / "raw"
    written = []
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = _standin_labels(n, rng)
        level = 0.5 + 0.4 * labels.astype(np.float32)[:, None, None] / 9   # brightness cue
        noise = rng.standard_normal((n, 28, 28), dtype=np.float32) * 0.08
        img = level * _standin_pattern(n, 28, labels, rng) + noise
        images = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            data = _idx_bytes(array)
            name = f"{prefix}-{kind}-ubyte"
            if compress:
                data, name = gzip.compress(data, mtime=0), name + ".gz"
            _write_atomic(raw / name, data)
            written.append(raw / name)
    _write_marker(raw, "fashion_mnist", n_train, n_test, seed, written)
    return raw


def generate_stl10(folder: str | Path, n_train: int = 1000, n_test: int = 300,
                   seed: int = 0) -> Path:
    """Write stand-in STL-10 in the official `stl10_binary` format to `folder`/stl10_binary/:
    96x96 colour images (class-dependent colour and stripe orientation, plus noise), stored
    column-major as in the real files, labels 1-10, class_names.txt, fold_indices.txt, and a
    marker file with their md5 sums (see `STL10WithGenerated`). Returns the folder."""
    rng = np.random.default_rng(seed)
    out = Path(folder) / "stl10_binary"
    hues = np.linspace(0, 1, 10, endpoint=False)
    palette = np.stack([0.5 + 0.4 * np.cos(2 * np.pi * (hues + s)) for s in (0, 1 / 3, 2 / 3)], 1)
    written = []
    for prefix, n in (("train", n_train), ("test", n_test)):
        labels = _standin_labels(n, rng)
        pattern = _standin_pattern(n, 96, labels, rng)[:, None]                  # n x 1 x 96 x 96
        colour = palette[labels][:, :, None, None].astype(np.float32)    # n x 3 x 1 x 1
        background = rng.uniform(0.1, 0.6, (n, 3, 1, 1)).astype(np.float32)
        noise = rng.standard_normal((n, 3, 96, 96), dtype=np.float32) * 0.08
        img = background * (1 - pattern) + colour * pattern
        img += noise
        images = (np.clip(img, 0, 1, out=img) * 255).round().astype(np.uint8)
        # the official files are column-major: N x 3 x W x H (torchvision transposes back)
        _write_atomic(out / f"{prefix}_X.bin", np.transpose(images, (0, 1, 3, 2)).tobytes())
        _write_atomic(out / f"{prefix}_y.bin", (labels + 1).tobytes())    # labels are 1..10
        written += [out / f"{prefix}_X.bin", out / f"{prefix}_y.bin"]
    _write_atomic(out / "class_names.txt", ("\n".join(STL10_CLASSES) + "\n").encode())
    folds = np.array_split(rng.permutation(n_train), 10)
    _write_atomic(out / "fold_indices.txt",
                  "".join(" ".join(map(str, f)) + " \n" for f in folds).encode())
    _write_marker(out, "stl10", n_train, n_test, seed, written)
    return out


class _FashionMNIST(torchvision.datasets.FashionMNIST):
    """torchvision's FashionMNIST that also reads gzipped IDX files where only `.gz` exist."""

    @property
    def raw_folder(self) -> str:   # torchvision names the folder after the class
        return os.path.join(self.root, "FashionMNIST", "raw")

    @property
    def processed_folder(self) -> str:
        return os.path.join(self.root, "FashionMNIST", "processed")

    def _path(self, name: str) -> str:
        plain = os.path.join(self.raw_folder, name)
        return plain if os.path.isfile(plain) else plain + ".gz"

    def _check_exists(self) -> bool:
        return all(os.path.isfile(self._path(name)) for name in FASHION_FILES)

    def _load_data(self) -> tuple[Tensor, Tensor]:
        # Our own checked reader instead of torchvision's: on a damaged file torchvision fails
        # with numpy's "offset must be non-negative" or a bare AssertionError.
        prefix = "train" if self.train else "t10k"
        images_path = Path(self._path(f"{prefix}-images-idx3-ubyte"))
        labels_path = Path(self._path(f"{prefix}-labels-idx1-ubyte"))
        images, labels = _read_idx(images_path, ndim=3), _read_idx(labels_path, ndim=1)
        if len(images) != len(labels):
            raise DataFileError(
                f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} "
                f"labels: the two files are from different downloads. {_IDX_FIX}")
        _check_labels(labels, labels_path)
        return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))


_IDX_FIX = ("Delete the file(s) and download again (load_splits(..., download=True)), or copy the "
            "official Fashion-MNIST files there.")


def _idx_bytes_of(path: Path) -> bytes:
    """The file's bytes, gunzipped for `.gz`; a damaged gzip stream is a DataFileError."""
    if path.stat().st_size == 0:     # a failed download often leaves an empty file
        raise DataFileError(f"{path} is empty (0 bytes). {_IDX_FIX}")
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as f:
            blob = f.read()
    except (OSError, EOFError, zlib.error) as err:   # BadGzipFile is an OSError
        raise DataFileError(f"{path} is not a complete gzip file ({err}). {_IDX_FIX}") from None
    if not blob:
        raise DataFileError(f"{path} is empty (0 bytes after decompression). {_IDX_FIX}")
    return blob


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """An IDX file of unsigned bytes with `ndim` dimensions (3: images, 1: labels) as a uint8
    array, after checking the header (magic 0x000008<ndim>, big-endian sizes) against the
    file's length, so that every kind of damage gets a message naming the file."""
    blob = _idx_bytes_of(path)
    what = "idx3-ubyte image" if ndim == 3 else "idx1-ubyte label"
    header_len = 4 + 4 * ndim
    if len(blob) < header_len:
        raise DataFileError(f"{path} is truncated: {len(blob)} bytes, shorter than the "
                            f"{header_len}-byte header of an {what} file. {_IDX_FIX}")
    magic = struct.unpack(">I", blob[:4])[0]
    if magic != 0x0800 + ndim:
        raise DataFileError(f"{path} has magic number 0x{magic:08X}, expected "
                            f"0x{0x0800 + ndim:08X} (an {what} file): it is another kind of "
                            f"file. {_IDX_FIX}")
    dims = struct.unpack(f">{ndim}I", blob[4:header_len])
    expected = header_len + int(np.prod(dims, dtype=np.int64))
    if 0 in dims or len(blob) != expected:
        state = ("is truncated" if len(blob) < expected else
                 "has extra bytes" if len(blob) > expected else "declares no items")
        raise DataFileError(f"{path} {state}: its header declares sizes {'x'.join(map(str, dims))} "
                            f"({expected} bytes in all) but the file holds {len(blob)} bytes. "
                            f"{_IDX_FIX}")
    return np.frombuffer(blob, np.uint8, offset=header_len).reshape(dims).copy()


def _check_labels(labels: np.ndarray, path: Path) -> None:
    """Fashion-MNIST labels are 0..9; a larger one means a wrong or damaged file."""
    bad = np.flatnonzero(labels >= FASHION_CLASSES_N)
    if len(bad):
        raise DataFileError(f"{path} holds label {int(labels[bad[0]])} at index {int(bad[0])} "
                            f"({len(bad)} labels >= {FASHION_CLASSES_N}); Fashion-MNIST labels "
                            f"are 0-{FASHION_CLASSES_N - 1}. {_IDX_FIX}")


class STL10WithGenerated(torchvision.datasets.STL10):
    """torchvision's STL10 with THE ONE PLACE where the md5 check is relaxed.

    torchvision verifies each file's md5 against the official archive. Stand-in files made by
    `generate_stl10` cannot match, so a file also passes when its md5 equals the one recorded
    in the marker file written next to it (`ALEXNET_EDU_GENERATED.json`). We check only the
    files the train/test splits need (`unlabeled_X.bin`, 2.5 GB, is not needed).
    """

    def _check_integrity(self) -> bool:
        folder = Path(self.root) / self.base_folder
        marker = folder / GENERATED_MARKER
        generated = json.loads(marker.read_text())["md5"] if marker.is_file() else {}
        for name, md5 in self.train_list[:2] + self.test_list:
            path = folder / name
            if not path.is_file():
                return False
            actual = _md5(path)
            if actual != md5 and actual != generated.get(name):
                return False
        return True


def _is_generated(folder: Path) -> bool:
    return (folder / GENERATED_MARKER).is_file()


# --------------------------------------------------------------------------------------------
# Loading: the official datasets, stand-ins when offline in smoke mode, image folders
# --------------------------------------------------------------------------------------------

def _writable(folder: Path) -> bool:
    """Whether we may write in `folder` (or create it): the nearest existing folder must be
    writable AND carry a write permission bit, so that running as root does not write into a
    folder deliberately made read-only (e.g. a shared data mount)."""
    folder = folder.absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return (folder.is_dir() and os.access(folder, os.W_OK)
            and bool(folder.stat().st_mode & 0o222))


def _writable_generated_root(root: Path) -> Path:
    """A folder for stand-in data: <data root>/generated, else the repo's data/generated, else
    the system's temporary folder (the data root may be read-only, e.g. a shared mount)."""
    # a data root that does not exist is not created here (see _check_data_root)
    candidates = [root / "generated"] if root.is_dir() else []
    candidates += [PROJECT_ROOT / "data" / "generated",
                   Path(tempfile.gettempdir()) / "alexnet-edu-data" / "generated"]
    for folder in candidates:
        if not _writable(folder):
            continue
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        return folder
    raise PermissionError(f"no writable folder for generated stand-in data among {candidates}")


def _missing_message(name: str, folder: Path, files: list[str], err: Exception | None) -> str:
    listed = "\n".join(f"  {folder / f}" for f in files)
    missing = [f for f in files
               if not (folder / f).is_file() and not (folder / (f + ".gz")).is_file()]
    if not missing:
        return (f"the {name} files in {folder} do not match the official md5 sums (a partial "
                f"download or other files?): delete them and download again, or put the "
                f"official files there:\n{listed}")
    why = ""
    if err is not None:
        why = " and the download failed (" + " ".join(
            line.strip() for line in str(err).splitlines() if line.strip())[:300] + ")"
    # name the missing files: with some files present, "not found" alone does not say which
    what = (f"{name} was not found in {folder}" if len(missing) == len(files) else
            f"{name} is incomplete in {folder}: missing {', '.join(missing)}")
    return (f"{what}{why}.\nPut the official files there:\n{listed}\n"
            f"or set ALEXNET_EDU_DATA to a folder that holds them (see data/README.md). "
            f"To try the notebooks without data, set ALEXNET_EDU_SMOKE=1: they then generate "
            f"small synthetic stand-in data.")


def _load_official(name: str, root: Path, download: bool) -> tuple[Tensor, Tensor, Tensor,
                                                                   Tensor, list[str]]:
    """(train images, train labels, test images, test labels, classes) via torchvision."""
    if name == "fashion-mnist":
        train = _FashionMNIST(str(root), train=True, download=download)
        test = _FashionMNIST(str(root), train=False, download=False)
        return (train.data[:, None].contiguous(), train.targets, test.data[:, None].contiguous(),
                test.targets, list(FASHION_MNIST_CLASSES))
    train = STL10WithGenerated(str(root), split="train", download=download)
    test = STL10WithGenerated(str(root), split="test", download=False)
    classes = list(getattr(train, "classes", STL10_CLASSES))
    return (torch.from_numpy(np.ascontiguousarray(train.data)),
            torch.from_numpy(train.labels.astype(np.int64)),
            torch.from_numpy(np.ascontiguousarray(test.data)),
            torch.from_numpy(test.labels.astype(np.int64)), classes)


def _check_data_root(root: Path, named_by: str | None) -> None:
    """A data root the user named (`named_by`: the `root` argument or $ALEXNET_EDU_DATA) must
    exist: a typo there would otherwise create a new folder and download into it. Only the
    default root (`named_by` None: the repository's data/) may be created by a download."""
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"the data root {root} is a file, not a folder: set "
                                 f"ALEXNET_EDU_DATA (or pass root=) to the folder of datasets")
    if named_by is not None and not root.exists():
        raise FileNotFoundError(f"the data root {root} (from {named_by}) does not exist: create it "
                                f"(mkdir -p {root}) or set ALEXNET_EDU_DATA to the folder that "
                                f"holds the datasets. Nothing was created or downloaded.")


def _official_or_standin(name: str, root: Path, download: bool):
    """Load the real files; offline and missing: stand-ins in smoke mode, else a clear error."""
    folder, files = ((root / "FashionMNIST" / "raw", FASHION_FILES) if name == "fashion-mnist"
                     else (root / "stl10_binary", STL10_FILES))
    # never try a download into a read-only data root (it would fail, or, as root, write there);
    # a root that does not exist yet is only created when it is the default one (_check_data_root)
    attempt = download and _writable(root)
    try:
        loaded = _load_official(name, root, attempt)
        return (*loaded, _is_generated(folder), folder)   # stand-ins passed as root stay marked
    except (RuntimeError, OSError) as err:   # not found, download failed, read-only root
        failure: Exception = err
    if not smoke_mode():
        message = _missing_message(name, folder, files, failure if attempt else None)
        if download and not attempt:
            message += f"\n({root} is read-only, so nothing was downloaded.)"
        if not download and name == "stl10":
            message += ("\n(The cpu profile does not start STL-10's 2.6 GB download: pass "
                        "download=True, or set ALEXNET_EDU_PROFILE=full.)")
        raise FileNotFoundError(message) from failure
    gen_root = _writable_generated_root(root)
    generate = generate_fashion_mnist if name == "fashion-mnist" else generate_stl10
    n_train, n_test = SMOKE_GENERATED_SIZES
    gen_folder = (gen_root / "FashionMNIST" / "raw" if name == "fashion-mnist"
                  else gen_root / "stl10_binary")
    marker = gen_folder / GENERATED_MARKER
    reuse = marker.is_file() and json.loads(marker.read_text()).get("n_train") == n_train
    if not reuse:
        generate(gen_root, n_train, n_test, seed=0)
    print(f"Smoke mode: {name} not found in {folder} (offline); "
          f"{'using' if reuse else 'generated'} synthetic stand-in data in the official format "
          f"in {gen_folder}. Numbers on it say nothing about the real dataset.")
    return (*_load_official(name, gen_root, download=False), True, gen_folder)


def _open_image(path: Path, max_pixels: int):
    """PIL's lazily opened image (header read only), or a clear error naming the file: missing,
    not an image, or more than `max_pixels` pixels (refused before anything is decoded)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image {path} does not exist")
    try:
        with warnings.catch_warnings():   # our own, lower limit below gives the clear message
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as err:
        raise DataFileError(f"cannot read image {path}: {err}. Remove or replace this file.") \
            from err
    w, h = img.size
    if w * h > max_pixels:
        img.close()
        raise DataFileError(f"image {path} is {w}x{h} = {w * h:,} pixels, more than the "
                            f"{max_pixels:,} this reader accepts (a decompression bomb, or a "
                            f"huge scan): shrink it first, or remove it.")
    return img


def _shrink(img, max_side: int | None):
    """`img` with its longer side at most `max_side` (aspect kept), shrunk right after decoding
    so that a folder of large photos never holds more than one full-size image at a time."""
    from PIL import Image

    w, h = img.size
    if max_side is None or max(w, h) <= max_side:
        return img
    scale = max_side / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if img.mode in ("1", "P", "PA"):   # PIL resizes these with NEAREST only: aliasing
        img = img.convert("RGB")
    # reducing_gap: a fast integer reduce() first; PIL has no reduce() for the I;16 modes
    gap = None if img.mode.startswith("I;16") else 2.0
    return img.resize(size, Image.BILINEAR, reducing_gap=gap)


def _to_rgb(img):
    """8-bit RGB from any PIL mode. convert("RGB") alone saturates 16-bit images to white and
    zeroes float ones, so high-bit-depth modes are rescaled first:

    - "I;16", "I;16B", "I;16L" (16-bit grey, e.g. PNG): value / 257, so 0..65535 -> 0..255.
    - "I" (32-bit integer): when every value lies in 0..65535 it is 16-bit data (PIL holds 16-bit
      PGM/PPM and some TIFFs this way) and is divided by 257 too; otherwise the image's own
      min..max is stretched to 0..255.
    - "F" (32-bit float): values within 0..1 (the usual float convention) are multiplied by 255;
      otherwise the min..max of the finite values is stretched to 0..255 (NaN, inf -> 0).
    A constant image outside those ranges has no contrast to stretch and becomes black.
    """
    from PIL import Image

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
               max_pixels: int = MAX_IMAGE_PIXELS):
    """One image file as an 8-bit RGB `PIL.Image.Image`, its longer side at most `max_side`
    pixels (None: full size); the one reader that image folders (and `predict`) use.

    - Memory is bounded: a JPEG is decoded at a reduced scale (`Image.draft`), any other image
      is shrunk right after decoding; images over `max_pixels` are refused before decoding.
    - 16-bit, 32-bit integer and float images are rescaled to 8 bits (see `_to_rgb`) instead of
      being saturated or zeroed; palette, grey, CMYK and alpha images become plain RGB.
    - Errors name the file: FileNotFoundError when it is missing, DataFileError (a ValueError)
      when it is not an image, is truncated or damaged, or is too large.
    """
    path = Path(path)
    img = _open_image(path, max_pixels)
    try:
        with img:
            if max_side is not None:   # JPEG only: decode at 1/2, 1/4 or 1/8 scale, >= max_side
                img.draft("RGB", (max_side, max_side))
            img.load()                 # a full decode: truncated files fail here
            return _to_rgb(_shrink(img, max_side))
    except (OSError, ValueError, SyntaxError, EOFError) as err:
        raise DataFileError(f"cannot read image {path}: {err}. Remove or replace this file.") \
            from err


def _read_image(path: Path, max_side: int | None = MAX_IMAGE_SIDE) -> Tensor:
    """Decode one image file to uint8 3 x H x W (RGB) with `read_image`."""
    rgb = read_image(path, max_side)
    return torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1).contiguous()


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file's header, or a clear error for a file that is no image."""
    with _open_image(path, MAX_IMAGE_PIXELS) as img:
        return img.size


def _hidden(path: Path, top: Path) -> bool:
    """Whether any part of `path` below `top` starts with "." (macOS's ._x.png, .git, ...)."""
    return any(part.startswith(".") for part in path.relative_to(top).parts)


def _image_files(folder: Path) -> list[Path]:
    """The image files anywhere below `folder` (nested sub-folders too), hidden files and
    folders skipped, sorted by their path below `folder` so that the order is deterministic."""
    return sorted((p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS
                   and not _hidden(p, folder) and p.is_file()),
                  key=lambda p: p.relative_to(folder).parts)


def _square(image: Tensor, side: int) -> Tensor:
    """§2: rescale so the shorter side is `side`, then take the central side x side patch."""
    return resize_batch(image[None].float(), side).round().clamp(0, 255).to(torch.uint8)[0]


def load_image_folder(folder: str | Path) -> TensorImageDataset:
    """Every image in `folder`/<class>/ (nested sub-folders included, hidden files and folders
    skipped) as one uint8 tensor (class = sub-folder name, sorted), read with `read_image`.

    Images of one common size (shorter side at most 256) keep it; otherwise every image is
    brought to 256 x 256 the paper's way (§2: shorter side to 256, central crop), one at a
    time. Raises a clear error for a missing or empty folder, no class folders, a class folder
    without images, or an unreadable image."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise FileNotFoundError(f"{folder} has no class sub-folders: put the images in "
                                f"{folder}/<class name>/<image>.png (one folder per class)")
    paths, labels = [], []
    for label, name in enumerate(classes):
        files = _image_files(folder / name)
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
    sizes = {_image_size(p) for p in paths}                 # headers only: cheap
    keep = len(sizes) == 1 and min(next(iter(sizes))) <= PAPER_RESIZE
    images = [_read_image(p) if keep else _square(_read_image(p), PAPER_RESIZE) for p in paths]
    return TensorImageDataset(torch.stack(images), torch.tensor(labels), classes)


def _split_counts(n_pool: int, val_fraction: float, limit: int | None) -> tuple[int, int]:
    n_val = round(n_pool * val_fraction)
    if val_fraction > 0:
        n_val = max(1, n_val)
    n_train = n_pool - n_val
    if limit is not None:
        n_train = min(n_train, limit)
        n_val = min(n_val, max(1 if val_fraction > 0 else 0,
                               round(limit * val_fraction / (1 - val_fraction))))
    if n_train < 1:
        raise ValueError(f"{n_pool} training images are too few for val_fraction={val_fraction}")
    return n_train, n_val


def load_splits(dataset: str | Path, root: str | Path | None = None, val_fraction: float = 0.1,
                seed: int = 0, limit: int | None = None, download: bool | None = None) -> Splits:
    """Train/val/test splits of "fashion-mnist", "stl10" or an image folder (class sub-folders;
    with train/ and test/ inside, those are used, else a seeded 20 % becomes the test split).

    Missing files are downloaded when `download` is True; None (the default) downloads
    Fashion-MNIST (30 MB) always but STL-10 (2.6 GB) only in the `full` profile, so that no
    laptop run starts a 2.6 GB download unasked (`download=True` forces it).

    The validation split is carved from the training set with a fixed `seed`; the test split is
    meant for the final figures only. `limit` caps the images per split (smoke runs): train gets
    at most `limit`, val the same proportion. Mean, std and PCA come from the train split only.
    """
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    key = str(dataset).lower().replace("_", "-")
    key = {"fashionmnist": "fashion-mnist", "stl-10": "stl10"}.get(key, key)
    named_by = ("the root argument" if root is not None else
                "$ALEXNET_EDU_DATA" if os.environ.get("ALEXNET_EDU_DATA", "").strip() else None)
    root = Path(root).expanduser() if root is not None else data_root()
    if download is None:
        download = key != "stl10" or current_profile().name == "full"
    if key in DATASETS:
        _check_data_root(root, named_by)
        (train_x, train_y, test_x, test_y, classes, synthetic,
         source) = _official_or_standin(key, root, download)
        name = key
    else:
        folder = Path(dataset).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(f"unknown dataset {dataset!r}: use one of {DATASETS} or the "
                                    f"path of a folder of images in class sub-folders")
        if (folder / "train").is_dir() and (folder / "test").is_dir():
            train_ds = load_image_folder(folder / "train")
            test_ds = load_image_folder(folder / "test")
            if test_ds.classes != train_ds.classes:
                raise ValueError(f"{folder}/train and {folder}/test have different class folders")
        else:
            full = load_image_folder(folder)
            order = torch.randperm(len(full), generator=torch.Generator().manual_seed(seed + 1))
            n_test = max(1, round(len(full) * FOLDER_TEST_FRACTION))
            test_ds, train_ds = full.subset(order[:n_test]), full.subset(order[n_test:])
        train_x, train_y, test_x, test_y = (train_ds.images, train_ds.labels, test_ds.images,
                                            test_ds.labels)
        classes, synthetic, source, name = train_ds.classes, False, folder, folder.name

    # validation split: a seeded permutation of the training pool
    n_train, n_val = _split_counts(len(train_x), val_fraction, limit)
    order = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = order[:n_val], order[n_val:n_val + n_train]
    test_idx = torch.arange(len(test_x))
    if limit is not None and len(test_x) > limit:   # a seeded subset keeps classes balanced
        test_idx = torch.randperm(len(test_x),
                                  generator=torch.Generator().manual_seed(seed + 2))[:limit]
    pool = TensorImageDataset(train_x, train_y, classes)
    train, val = pool.subset(train_idx), pool.subset(val_idx)
    test = TensorImageDataset(test_x, test_y, classes).subset(test_idx)

    mean, std, cov = _stats(train.images)
    pca = _eig(cov) if train.images.shape[1] == 3 else None
    return Splits(train=train, val=val, test=test, classes=classes,
                  in_channels=int(train.images.shape[1]), mean=mean, std=std, pca=pca, name=name,
                  synthetic=synthetic, source=str(source),
                  recipe={"seed": seed, "val_fraction": val_fraction, "limit": limit,
                          "test_images": len(test), "val": split_fingerprint(val),
                          "test": split_fingerprint(test)})


# --------------------------------------------------------------------------------------------
# Batch transforms (§2, §4.1): whole uint8 batches -> normalized float, on any device
# --------------------------------------------------------------------------------------------

def resize_batch(images: Tensor, size: int) -> Tensor:
    """Float batch N x C x H x W -> N x C x size x size: shorter side to `size` (bilinear,
    antialiased when shrinking), then the central square (§2). Square inputs are just resized."""
    h, w = images.shape[-2:]
    if (h, w) == (size, size):
        return images
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    out = F.interpolate(images, size=(new_h, new_w), mode="bilinear", align_corners=False,
                        antialias=min(h, w) > size)
    return center_crop(out, size)


def center_crop(images: Tensor, size: int) -> Tensor:
    """The central size x size patch of N x C x H x W."""
    h, w = images.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return images[..., top:top + size, left:left + size]


def crop_and_flip(images: Tensor, size: int, top: Tensor, left: Tensor, flip: Tensor) -> Tensor:
    """Per-image crops `images[n, :, top[n]:top[n]+size, left[n]:left[n]+size]`, mirrored
    left-right where `flip[n]`, done as one gather for the whole batch (no Python loop)."""
    n = images.shape[0]
    steps = torch.arange(size, device=images.device)
    rows = top.to(images.device)[:, None] + steps                           # N x size
    cols = left.to(images.device)[:, None] + torch.where(
        flip.to(images.device)[:, None], size - 1 - steps, steps)           # N x size
    batch = torch.arange(n, device=images.device)[:, None, None]
    # advanced indices around a slice: result is N x size x size x C
    out = images[batch, :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2)


def pca_lighting(images: Tensor, eigval: Tensor, eigvec: Tensor, alpha: Tensor) -> Tensor:
    """§4.1: add [p1 p2 p3][a1 l1, a2 l2, a3 l3]^T to every RGB pixel of image n, with the
    eigenvectors p_i (columns of `eigvec`), eigenvalues l_i and that image's alpha (N x 3)."""
    shift = (alpha.to(eigval) * eigval) @ eigvec.T                           # N x 3
    return images + shift[:, :, None, None].to(images.dtype)


def ten_crop(images: Tensor, size: int) -> Tensor:
    """§4.1 test-time patches: N x C x H x W -> N x 10 x C x size x size, in the order
    top-left, top-right, bottom-left, bottom-right, centre, then the same five mirrored."""
    h, w = images.shape[-2:]
    if h < size or w < size:
        raise ValueError(f"ten_crop: images {h}x{w} are smaller than the crop {size}")
    top, left = (h - size) // 2, (w - size) // 2
    five = [images[..., :size, :size], images[..., :size, w - size:],
            images[..., h - size:, :size], images[..., h - size:, w - size:],
            images[..., top:top + size, left:left + size]]
    crops = five + [c.flip(-1) for c in five]
    return torch.stack(crops, dim=1)


class BatchTransform(nn.Module):
    """uint8 batch N x C x H x W -> normalized float N x out_channels x S x S, on the device of
    this module (move it with `.to(device)`; the input follows).

    train: resize to R = round(S * 256 / 227), random S x S crop, random horizontal flip and PCA
    lighting (§4.1). eval: resize to R and take the central S x S crop (the single-patch version
    of the paper's test). `ten_crop_batch` gives the ten test patches (§4.1).
    With 1-channel data and `out_channels=3` the grey channel is repeated (after resizing, so
    resizing costs a third).
    """

    def __init__(self, image_size: int = PAPER_CROP, mean: tuple[float, ...] = (0.5,),
                 std: tuple[float, ...] = (0.5,), train: bool = False,
                 pca: tuple[Tensor, Tensor] | None = None, pca_std: float = 0.1,
                 flip: bool = True, out_channels: int | None = None,
                 resize_size: int | None = None):
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(f"mean has {len(mean)} channels but std has {len(std)}")
        self.image_size = int(image_size)
        # The paper's ratio 256 : 227 by default; weights trained with another recipe need their
        # own (torchvision's ImageNet AlexNet: resize 256, crop 224, where the ratio gives 253).
        self.resize_size = int(resize_size or round(image_size * PAPER_RESIZE / PAPER_CROP))
        self.train_mode, self.flip, self.pca_std = train, flip, float(pca_std)
        self.in_channels = len(mean)
        self.out_channels = out_channels or self.in_channels
        if self.out_channels not in (self.in_channels, 3) or (
                self.out_channels != self.in_channels and self.in_channels != 1):
            raise ValueError(f"cannot turn {self.in_channels}-channel data into "
                             f"{self.out_channels} channels (only grey -> 3 by repetition)")
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)
        self.use_pca = pca is not None and self.pca_std > 0
        eigval, eigvec = pca if pca is not None else (torch.zeros(3), torch.eye(3))
        self.register_buffer("eigval", torch.as_tensor(eigval, dtype=torch.float32),
                             persistent=False)
        self.register_buffer("eigvec", torch.as_tensor(eigvec, dtype=torch.float32),
                             persistent=False)

    def _to_float(self, images: Tensor) -> Tensor:
        if images.shape[1] != self.in_channels:
            raise ValueError(f"expected {self.in_channels}-channel images (the mean/std given), "
                             f"got shape {tuple(images.shape)}")
        x = images.to(self.mean.device, non_blocking=True)
        x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
        return resize_batch(x, self.resize_size)

    def _finish(self, x: Tensor) -> Tensor:
        x = (x - self.mean) / self.std
        if self.out_channels != self.in_channels:
            x = x.expand(*x.shape[:-3], self.out_channels, *x.shape[-2:]).contiguous()
        return x

    def forward(self, images: Tensor) -> Tensor:
        x = self._to_float(images)
        n, size, r = x.shape[0], self.image_size, self.resize_size
        if not self.train_mode:
            return self._finish(center_crop(x, size).contiguous())
        top = torch.randint(0, r - size + 1, (n,), device=x.device)
        left = torch.randint(0, r - size + 1, (n,), device=x.device)
        flip = (torch.rand(n, device=x.device) < 0.5) if self.flip else torch.zeros(
            n, dtype=torch.bool, device=x.device)
        x = crop_and_flip(x, size, top, left, flip)
        if self.use_pca and self.in_channels == 3:
            alpha = torch.randn(n, 3, device=x.device) * self.pca_std
            x = pca_lighting(x, self.eigval, self.eigvec, alpha)
        return self._finish(x.contiguous())

    def ten_crop_batch(self, images: Tensor) -> Tensor:
        """The ten test patches of each image, normalized: N x 10 x out_channels x S x S."""
        return self._finish(ten_crop(self._to_float(images), self.image_size))

    def extra_repr(self) -> str:
        return (f"image_size={self.image_size}, resize_size={self.resize_size}, "
                f"train={self.train_mode}, flip={self.flip}, pca={self.use_pca} "
                f"(std {self.pca_std}), channels {self.in_channels}->{self.out_channels}")


# --------------------------------------------------------------------------------------------
# Loaders of uint8 batches
# --------------------------------------------------------------------------------------------

class _WholeBatches(Dataset):
    """Indexed by a list of indices (from a BatchSampler): one whole batch per item."""

    def __init__(self, dataset: TensorImageDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, indices: list[int]) -> tuple[Tensor, Tensor]:
        return self.dataset.batch(indices)


def _as_is(batch):
    return batch


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, num_workers: int | None = None,
                seed: int = 0) -> DataLoader:
    """A DataLoader of uint8 batches `(images N x C x H x W, labels N)`.

    In-memory `TensorImageDataset`s are indexed a whole batch at a time in the main process
    (num_workers 0: workers would only add copying). Other datasets get min(2, CPUs) workers by
    default (Colab has two cores). Shuffling is seeded, so epochs are reproducible."""
    in_memory = isinstance(dataset, TensorImageDataset)
    if num_workers is None:   # tensors in memory: nothing for workers to do but copy
        num_workers = 0 if in_memory or isinstance(dataset, TensorDataset) else min(
            2, os.cpu_count() or 1)
    # The loader draws its workers' base seed from `generator` too (else from the global RNG,
    # which would shift the augmentations' random numbers and break exact resumption).
    generator = torch.Generator().manual_seed(seed)
    common = dict(num_workers=num_workers, pin_memory=torch.cuda.is_available(),
                  persistent_workers=num_workers > 0, generator=generator)
    if not in_memory:
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, **common)
    order = (torch.utils.data.RandomSampler(dataset, generator=generator) if shuffle
             else torch.utils.data.SequentialSampler(dataset))
    batches = torch.utils.data.BatchSampler(order, batch_size, drop_last=False)
    return DataLoader(_WholeBatches(dataset), sampler=batches, batch_size=None,
                      collate_fn=_as_is, **common)
