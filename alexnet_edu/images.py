"""Image files, read safely: one reader for the whole package (datasets, streamed folders and
`alexnet-edu predict`), which turns any file PIL can open into 8-bit RGB with bounded memory, and
says which file is wrong and what to do when it cannot.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

__all__ = ["DataFileError", "read_image", "read_image_tensor", "image_files", "IMAGE_EXTENSIONS",
           "MAX_IMAGE_SIDE", "MAX_IMAGE_PIXELS"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm",
                    ".pgm")
MAX_IMAGE_SIDE = 1024         # read_image shrinks larger images at once: memory stays bounded
MAX_IMAGE_PIXELS = 64_000_000  # larger images are refused (PIL only warns at 89.5 million)


class DataFileError(ValueError):
    """A data file that cannot be used; the message names it, says what is wrong and what to do."""


def _open_image(path: Path, max_pixels: int) -> Image.Image:
    """PIL's lazily opened image (header read only), or a clear error naming the file."""
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
            img = Image.open(path)
    except Exception as err:   # a damaged or crafted file may raise anything from PIL's parsers
        why = ("not an image (PIL cannot identify it; use PNG, JPEG, ...)"
               if isinstance(err, UnidentifiedImageError) else err)
        raise DataFileError(f"cannot read image {path}: {why}. Remove or replace this file.") \
            from err
    w, h = img.size
    if w * h > max_pixels:
        img.close()
        raise DataFileError(f"image {path} is {w}x{h} = {w * h:,} pixels, more than the "
                            f"{max_pixels:,} this reader accepts (a decompression bomb, or a "
                            f"huge scan): shrink it first, or remove it.")
    return img


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
    """8-bit RGB from any PIL mode; convert("RGB") alone would saturate 16-bit images to white
    and zero float ones. 16-bit modes, and "I" (32-bit integer) with values in 0..65535 (16-bit
    PGM, some TIFFs), are divided by 257; "F" (float) in 0..1 is multiplied by 255; otherwise the
    finite values' min..max is stretched to 0..255 (NaN, inf and constant images: black)."""
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
    """One image file as an 8-bit RGB `PIL.Image.Image` (the package's one image reader), its
    longer side at most `max_side` and its shorter side at most `shorter_side` (None: no bound).

    Memory stays bounded: images over `max_pixels` are refused before decoding, a JPEG is decoded
    at a reduced scale, others are shrunk right after decoding. High bit depths are rescaled (see
    `_to_rgb`). Errors name the file: FileNotFoundError when it is missing, DataFileError (a
    ValueError) when it is not an image, is damaged or too large."""
    path = Path(path)
    img = _open_image(path, max_pixels)
    try:
        with img:
            return _to_rgb(_shrink(img, max_side, shorter_side))
    except Exception as err:   # PIL's decoders raise TypeError, struct.error... on crafted files
        raise DataFileError(f"cannot read image {path}: {err}. Remove or replace this file.") \
            from err


def read_image_tensor(path: str | Path, channels: int = 3, shorter_side: int | None = None,
                      max_side: int | None = MAX_IMAGE_SIDE) -> Tensor:
    """One image file as uint8 `channels` x H x W (3: RGB, 1: grey), read with `read_image`."""
    image = read_image(path, max_side, shorter_side=shorter_side)
    pixels = torch.from_numpy(np.array(image.convert("L") if channels == 1 else image))
    return pixels[None] if channels == 1 else pixels.permute(2, 0, 1).contiguous()


def image_files(folder: Path, extensions: tuple[str, ...] | None = IMAGE_EXTENSIONS) -> list[Path]:
    """The files anywhere below `folder` with one of `extensions` (None: any), hidden files and
    folders (macOS's ._x.png, .git) skipped, sorted by their path below `folder`."""
    return sorted((p for p in folder.rglob("*") if (extensions is None
                                                    or p.suffix.lower() in extensions)
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts)
                   and p.is_file()), key=lambda p: p.relative_to(folder).parts)
