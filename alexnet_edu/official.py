"""The official Fashion-MNIST and STL-10 files: torchvision downloads them, they are read and
checked here, so that a damaged or half-downloaded file is one clear error naming it."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import Tensor

from .images import DataFileError, TensorImageDataset

__all__ = ["CLASSES", "FOLDERS", "FILES", "GENERATED_MARKER", "folder", "load", "read_split",
           "missing", "is_standin", "writable"]

CLASSES = {"fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                             "Shirt", "Sneaker", "Bag", "Ankle boot"],
           # labels 1..10 on disk, in the order of its class_names.txt
           "stl10": ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship",
                     "truck"]}

# where torchvision's downloads put each dataset's files below a data root
FOLDERS = {"fashion-mnist": Path("FashionMNIST", "raw"), "stl10": Path("stl10_binary")}
# the official files; the first four hold the images and labels and are the ones read
FILES = {"fashion-mnist": ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                           "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"],
         "stl10": ["train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin", "class_names.txt",
                   "fold_indices.txt"]}
GENERATED_MARKER = "ALEXNET_EDU_GENERATED.json"   # beside generated stand-ins (standin.py)
_FIX = ("Delete the file(s) and download again (load_splits(..., download=True)), or copy the "
        "official files there.")


def _present(path: Path) -> Path | None:
    """`path`, else its gzipped `path.gz`, else None."""
    gz = path.with_name(path.name + ".gz")
    return path if path.is_file() else gz if gz.is_file() else None


def missing(name: str, folder: Path, files: slice = slice(0, 4)) -> list[str]:
    """The files of `name` (default: the four read) that are not in `folder`."""
    return [f for f in FILES[name][files] if _present(folder / f) is None]


def _file_bytes(path: Path) -> bytes:   # gunzipped for .gz
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
    """An IDX file of `ndim` (3: images, 1: labels) dimensions of unsigned bytes (magic
    0x000008<ndim>, big-endian sizes), its header checked against the file's length."""
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


def _checked(images: np.ndarray, labels: np.ndarray, paths: tuple[Path, Path],
             low: int) -> tuple[Tensor, Tensor]:
    """(images, labels - low) as tensors; the counts must agree, the labels lie in low..low+9."""
    if len(images) != len(labels):
        raise DataFileError(f"{paths[0]} holds {len(images)} images but {paths[1]} holds "
                            f"{len(labels)} labels: the two files are from different downloads. "
                            f"{_FIX}")
    bad = np.flatnonzero((labels < low) | (labels > low + 9))
    if len(bad):
        raise DataFileError(f"{paths[1]} holds label {int(labels[bad[0]])} at index "
                            f"{int(bad[0])} ({len(bad)} labels out of range); this dataset's "
                            f"labels are {low}-{low + 9}. {_FIX}")
    return (torch.from_numpy(images.copy(order="C")),   # a writable copy of the file's bytes
            torch.from_numpy(labels.astype(np.int64) - low))


def read_split(name: str, folder: Path, split: str) -> TensorImageDataset:
    """One split ("train", "test") of a named dataset, read from its official files in `folder`."""
    files = FILES[name][0:2] if split == "train" else FILES[name][2:4]   # images, labels
    paths = tuple(_present(folder / f) for f in files)
    if name == "fashion-mnist":
        images, labels = _read_idx(paths[0], ndim=3)[:, None], _read_idx(paths[1], ndim=1)
        return TensorImageDataset(*_checked(images, labels, paths, low=0), CLASSES[name])
    pixels = np.frombuffer(_file_bytes(paths[0]), np.uint8)
    if len(pixels) % (3 * 96 * 96):
        raise DataFileError(f"{paths[0]} holds {len(pixels)} bytes, not a whole number of "
                            f"3x96x96 images ({3 * 96 * 96} bytes each): it is truncated or "
                            f"another kind of file. {_FIX}")
    images = pixels.reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2)   # stored column-major
    labels = np.frombuffer(_file_bytes(paths[1]), np.uint8)        # 1..10 on disk
    return TensorImageDataset(*_checked(images, labels, paths, low=1), CLASSES[name])


def folder(name: str, root: str | Path | None, download: bool,
           needed: slice = slice(0, 4)) -> Path:
    """The folder of `name`'s official files (the `needed` ones) below `root`, downloaded first
    when `download` (never into a read-only root)."""
    if root is None:
        raise ValueError(f"{name}: pass root=, the folder that holds the datasets "
                         "(profiles.load_splits picks it for you)")
    root = Path(root).expanduser()
    if not root.is_dir():   # a typo must not create a folder and download into it
        state = "is a file, not a folder" if root.exists() else "does not exist"
        raise (NotADirectoryError if root.exists() else FileNotFoundError)(
            f"the data root {root} {state}: create it (mkdir -p {root}) or name the folder that "
            "holds the datasets. Nothing was created or downloaded.")
    where, failed = root / FOLDERS[name], ""
    how = f"download them (load_splits({name!r}, root, download=True))"
    if download and missing(name, where, needed):
        if not writable(root):
            failed = f" ({root} is read-only, so nothing was downloaded)"
            how = "name a data root you can write to"
        else:
            try:   # torchvision's dataset classes know the URLs and checksums
                {"fashion-mnist": torchvision.datasets.FashionMNIST,
                 "stl10": torchvision.datasets.STL10}[name](str(root), download=True)
            except (RuntimeError, OSError) as err:   # offline, proxy, full disk
                failed = f" and the download failed ({' '.join(str(err).split())[:300]})"
                # torchvision words an unreachable server as urlopen's error
                how = ("try again where the internet is reachable" if "urlopen" in str(err)
                       or "Name or service" in str(err) else "fix what stopped the download "
                       "(above) and try again")
            else:
                how = "download them again: not every file arrived"
    if absent := missing(name, where, needed):
        listed = "\n".join(f"  {where / f}" for f in FILES[name][needed])
        raise FileNotFoundError(f"{name} is not complete in {where}: missing "
                                f"{', '.join(absent)}{failed}.\nPut the official files there:\n"
                                f"{listed}\nor {how}.")
    return where


def load(name: str, root: str | Path | None, download: bool, splits: tuple[str, ...] = (
        "train", "test")) -> tuple[list[TensorImageDataset], bool, Path]:
    """(the `splits` of `name`, whether they are generated stand-ins, their folder)."""
    where = folder(name, root, download, slice(0, 4) if "train" in splits else slice(2, 4))
    synthetic = is_standin(where)   # first: stand-ins changed since they were made are refused
    return [read_split(name, where, split) for split in splits], synthetic, where


def is_standin(folder: Path) -> bool:
    """Whether `folder` holds generated stand-ins (a marker); files changed since are refused."""
    marker = folder / GENERATED_MARKER
    if not marker.is_file():
        return False
    changed = [name for name, md5 in json.loads(marker.read_text()).get("md5", {}).items()
               if not (folder / name).is_file()
               or hashlib.md5((folder / name).read_bytes()).hexdigest() != md5]
    if changed:
        raise FileNotFoundError(
            f"{', '.join(changed)} in {folder} changed since they were generated (their md5 sums "
            f"differ from those {GENERATED_MARKER} records): delete the folder and generate it "
            "again, or put the official files there instead")
    return True


def writable(folder: Path) -> bool:
    """Whether we may write in (or create) `folder`: also for root, only where a write bit is set
    (a folder made read-only on purpose stays so)."""
    folder = folder.absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return (folder.is_dir() and os.access(folder, os.W_OK)
            and bool(folder.stat().st_mode & 0o222))
