"""Stand-in datasets: small synthetic Fashion-MNIST and STL-10 in the official file formats, so
that every code path runs without the real files (smoke mode, tests), marked as stand-ins."""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .files import PROJECT_ROOT, write_atomic
from .official import CLASSES, FOLDERS, GENERATED_MARKER, writable

__all__ = ["generate_fashion_mnist", "generate_stl10", "provide_standins", "GENERATED_MARKER",
           "SMOKE_GENERATED_SIZES"]

SMOKE_GENERATED_SIZES = (600, 200)   # (train, test) images of stand-in data in smoke mode


def _idx_bytes(array: np.ndarray) -> bytes:
    """IDX format (LeCun): magic 0x0000 08 <ndim> (08 = unsigned byte), big-endian dims, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def _pattern(n: int, size: int, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Learnable patterns, n x size x size in [0, 1]: each class's own blocky silhouette, shifted a
    few pixels, times stripes at a class's orientation (18 degrees apart) and a random phase."""
    shapes = np.random.default_rng(2012).random((10, 1, 6, 6), dtype=np.float32)
    shapes = F.interpolate(torch.from_numpy(shapes), size=(size, size), mode="bilinear",
                           align_corners=False)[:, 0].numpy()
    shapes = (shapes > 0.5).astype(np.float32)
    steps = np.arange(size)
    dy, dx = rng.integers(-size // 14, size // 14 + 1, (2, n))
    rows = (steps[None] + dy[:, None]) % size
    cols = (steps[None] + dx[:, None]) % size
    silhouette = shapes[labels[:, None, None], rows[:, :, None], cols[:, None, :]]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    theta = labels.astype(np.float32) * (np.pi / 10)
    phase = rng.uniform(0, 2 * np.pi, n).astype(np.float32)
    along = np.cos(theta)[:, None, None] * xx + np.sin(theta)[:, None, None] * yy
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * along + phase[:, None, None])
    return silhouette * (0.6 + 0.4 * stripes)


def _labels(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.arange(n) % 10).astype(np.uint8)   # balanced classes


def _write_marker(folder: Path, kind: str, n_train: int, n_test: int, seed: int,
                  files: list[Path]) -> None:
    marker = {"generator": f"alexnet_edu.standin.generate_{kind}", "seed": seed,
              "n_train": n_train, "n_test": n_test,
              "note": "synthetic stand-in images, not the real dataset",
              "md5": {f.name: hashlib.md5(f.read_bytes()).hexdigest() for f in files}}
    write_atomic(folder / GENERATED_MARKER, json.dumps(marker, indent=1))


def generate_fashion_mnist(folder: str | Path, n_train: int = 1000, n_test: int = 300,
                           seed: int = 0) -> Path:
    """Stand-in Fashion-MNIST (28x28 grey class patterns) in `folder`/FashionMNIST/raw/."""
    rng = np.random.default_rng(seed)
    raw = Path(folder) / FOLDERS["fashion-mnist"]
    written = []
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = _labels(n, rng)
        level = 0.5 + 0.4 * labels.astype(np.float32)[:, None, None] / 9   # brightness cue
        noise = rng.standard_normal((n, 28, 28), dtype=np.float32) * 0.08
        img = level * _pattern(n, 28, labels, rng) + noise
        images = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            written.append(write_atomic(raw / f"{prefix}-{kind}-ubyte", _idx_bytes(array)))
    _write_marker(raw, "fashion_mnist", n_train, n_test, seed, written)
    return raw


def generate_stl10(folder: str | Path, n_train: int = 1000, n_test: int = 300,
                   seed: int = 0) -> Path:
    """Stand-in STL-10 (96x96 colour class patterns) in `folder`/stl10_binary/."""
    rng = np.random.default_rng(seed)
    out = Path(folder) / FOLDERS["stl10"]
    hues = np.linspace(0, 1, 10, endpoint=False)
    palette = np.stack([0.5 + 0.4 * np.cos(2 * np.pi * (hues + s)) for s in (0, 1 / 3, 2 / 3)], 1)
    written = []
    for prefix, n in (("train", n_train), ("test", n_test)):
        labels = _labels(n, rng)
        pattern = _pattern(n, 96, labels, rng)[:, None]                   # n x 1 x 96 x 96
        colour = palette[labels][:, :, None, None].astype(np.float32)     # n x 3 x 1 x 1
        background = rng.uniform(0.1, 0.6, (n, 3, 1, 1)).astype(np.float32)
        img = background * (1 - pattern) + colour * pattern
        img += rng.standard_normal((n, 3, 96, 96), dtype=np.float32) * 0.08
        images = (np.clip(img, 0, 1, out=img) * 255).round().astype(np.uint8)
        # the official files are column-major: N x 3 x W x H
        written += [write_atomic(out / f"{prefix}_X.bin",
                                 np.transpose(images, (0, 1, 3, 2)).tobytes()),
                    write_atomic(out / f"{prefix}_y.bin", (labels + 1).tobytes())]
    write_atomic(out / "class_names.txt", "\n".join(CLASSES["stl10"]) + "\n")
    folds = np.array_split(rng.permutation(n_train), 10)
    write_atomic(out / "fold_indices.txt", "".join(" ".join(map(str, f)) + " \n" for f in folds))
    _write_marker(out, "stl10", n_train, n_test, seed, written)
    return out


def _generated_root(root: Path) -> Path:
    """<data root>/generated, else the repository's, else a temporary one (writable ones)."""
    candidates = [root / "generated"] if root.is_dir() else []
    candidates += [PROJECT_ROOT / "data" / "generated",
                   Path(tempfile.gettempdir()) / "alexnet-edu-data" / "generated"]
    for folder in filter(writable, candidates):
        with contextlib.suppress(OSError):
            folder.mkdir(parents=True, exist_ok=True)
            return folder
    raise PermissionError(f"no writable folder for generated stand-in data among {candidates}")


def provide_standins(name: str, root: Path, why: str | None = None) -> Path:
    """The data root of stand-ins for `name`, made once in a writable folder; says so (and
    `why`, default: not found under `root`)."""
    gen_root = _generated_root(root)
    folder = gen_root / FOLDERS[name]
    n_train, n_test = SMOKE_GENERATED_SIZES
    marker = folder / GENERATED_MARKER
    reuse = marker.is_file() and json.loads(marker.read_text()).get("n_train") == n_train
    if not reuse:
        generate = generate_fashion_mnist if name == "fashion-mnist" else generate_stl10
        generate(gen_root, n_train, n_test, seed=0)
    why = why or f"Smoke mode: {name} not found in {root / FOLDERS[name]}"
    print(f"{why}; "
          f"{'using' if reuse else 'generated'} synthetic stand-in data in the official format "
          f"in {folder}. Numbers on it say nothing about the real dataset.")
    return gen_root
