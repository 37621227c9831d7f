"""Hostile data inputs: damaged Fashion-MNIST IDX files, data roots that do not exist, junk in
image folders and images of unusual bit depth or size. Every error must name the file (or
folder), say what is wrong and what to do; nothing may be created or downloaded by mistake.

All inputs are made here, in the official formats, in tmp_path (no stored binaries)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from PIL import Image
from test_data import _idx, _png, _write_fashion

from alexnet_edu import images, profiles, standin
from alexnet_edu.data import load_image_folder, load_splits


@pytest.fixture(autouse=True)
def _isolated(request, monkeypatch, tmp_path):
    """Not smoke mode, no downloads (offline), and nothing written outside tmp_path; the data
    root is tmp_path unless the test reads the real data."""
    monkeypatch.setenv("ALEXNET_EDU_SMOKE", "0")
    if not any(name.startswith("real_") for name in request.fixturenames):
        monkeypatch.setenv("ALEXNET_EDU_DATA", str(tmp_path))
    monkeypatch.setattr(standin, "PROJECT_ROOT", tmp_path / "project")

    def offline(*args, **kwargs):
        raise URLError("no network in tests")

    monkeypatch.setattr("torchvision.datasets.mnist.download_and_extract_archive", offline)


# ---------------------------------------------------------------- Fashion-MNIST IDX files -----

def _fashion_blobs(n_train: int = 40, n_test: int = 12) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    return {"train-images-idx3-ubyte": _idx(rng.integers(0, 256, (n_train, 28, 28))),
            "train-labels-idx1-ubyte": _idx(np.arange(n_train) % 10),
            "t10k-images-idx3-ubyte": _idx(rng.integers(0, 256, (n_test, 28, 28))),
            "t10k-labels-idx1-ubyte": _idx(np.arange(n_test) % 10)}


def _with_count(blob: bytes, count: int) -> bytes:
    return blob[:4] + struct.pack(">I", count) + blob[8:]


# (file to damage, how, what the message must say): the damage is done to the IDX bytes,
# before gzip compression in the .gz variant
IDX_DAMAGE = {
    "empty": ("train-images-idx3-ubyte", lambda b: b"", r"is empty \(0 bytes"),
    "truncated-header": ("t10k-labels-idx1-ubyte", lambda b: b[:6], r"is truncated: 6 bytes"),
    "truncated-images": ("train-images-idx3-ubyte", lambda b: b[:-100],
                         r"is truncated: .*40x28x28"),
    "extra-bytes": ("train-labels-idx1-ubyte", lambda b: b + b"\0\0", r"has extra bytes"),
    "labels-as-images": ("train-images-idx3-ubyte", lambda b: _idx(np.zeros(40)),
                         r"magic number 0x00000801, expected 0x00000803"),
    "wrong-magic": ("t10k-images-idx3-ubyte", lambda b: b"\x1f\x8b\x08\x03" + b[4:],
                    r"magic number 0x1F8B0803"),
    "count-too-large": ("t10k-images-idx3-ubyte", lambda b: _with_count(b, 13), r"is truncated"),
    "count-zero": ("t10k-labels-idx1-ubyte", lambda b: _idx(np.zeros(0)), r"declares no items"),
    "counts-differ": ("train-labels-idx1-ubyte", lambda b: _idx(np.arange(39) % 10),
                      r"holds 40 images but .*train-labels-idx1-ubyte\S* holds 39 labels"),
    "label-10": ("t10k-labels-idx1-ubyte", lambda b: b[:-1] + b"\x0a",
                 r"holds label 10 at index 11 .*labels are 0-9"),
}


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("case", list(IDX_DAMAGE))
def test_damaged_idx_file_is_one_clear_error(tmp_path, case, compress):
    name, damage, says = IDX_DAMAGE[case]
    blobs = _fashion_blobs()
    blobs[name] = damage(blobs[name])
    _write_fashion(tmp_path, blobs, compress)
    split_of_file = name.split("-")[0]
    with pytest.raises(images.DataFileError, match=says) as err:
        load_splits("fashion-mnist", root=tmp_path, download=True)   # nothing downloaded
    message = str(err.value)
    assert isinstance(err.value, ValueError) and split_of_file in message
    assert "Delete the file(s) and download again" in message and "official" in message


@pytest.mark.parametrize(("content", "says"), [
    (b"not gzip at all", "not a complete gzip file"), (None, "not a complete gzip file"),
    (b"", r"is empty \(0 bytes\)")], ids=["not-gzip", "cut-gzip", "empty-gz"])
def test_broken_gzip_idx_file_is_named(tmp_path, content, says):
    raw = _write_fashion(tmp_path, _fashion_blobs(), compress=True)
    bad = raw / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(content if content is not None else bad.read_bytes()[:-10])
    with pytest.raises(images.DataFileError, match=says) as err:
        load_splits("fashion-mnist", root=tmp_path, download=False)
    assert str(bad) in str(err.value) and "download again" in str(err.value)


def test_missing_file_message_names_the_missing_file(tmp_path):
    raw = _write_fashion(tmp_path, _fashion_blobs(), compress=False)
    (raw / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="missing t10k-labels-idx1-ubyte") as err:
        load_splits("fashion-mnist", root=tmp_path, download=False)
    assert "missing t10k-labels-idx1-ubyte." in str(err.value)     # only that one is missing


# ---------------------------------------------------------------- data roots ------------------

@pytest.mark.parametrize("smoke", ["0", "1"])
@pytest.mark.parametrize("how", ["env", "argument"])
def test_nonexistent_data_root_is_an_error_and_is_not_created(tmp_path, monkeypatch, how, smoke):
    monkeypatch.setenv("ALEXNET_EDU_SMOKE", smoke)
    root = tmp_path / "nonexistent" / "data"
    if how == "env":
        monkeypatch.setenv("ALEXNET_EDU_DATA", str(root))
    with pytest.raises(FileNotFoundError) as err:   # the core, named the root, says it too
        load_splits("fashion-mnist", root=root, download=True)
    assert f"data root {root} does not exist: create it" in str(err.value)
    with pytest.raises(FileNotFoundError) as err:
        profiles.load_splits("fashion-mnist", root=root if how == "argument" else None,
                             download=True)
    message = str(err.value)
    assert f"data root {root}" in message and "does not exist" in message
    assert "create it" in message and "ALEXNET_EDU_DATA" in message
    assert ("$ALEXNET_EDU_DATA" if how == "env" else "root argument") in message
    assert not (tmp_path / "nonexistent").exists()
    assert not (tmp_path / "project").exists()      # no stand-ins generated elsewhere either


def test_data_root_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        load_splits("stl10", root=tmp_path / "file", download=False)


# ---------------------------------------------------------------- image folders ---------------

def _apple_double(path: Path) -> None:
    """macOS's "._name" resource-fork files: AppleDouble magic, not an image at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(50))


def _junk_folder(root: Path) -> list[int]:
    """A folder with hidden junk, nested images and a hidden class; returns the expected values
    of the images in load order."""
    _png(root / "a" / "1.png", (10,) * 3)
    _apple_double(root / "a" / "._1.png")
    (root / "a" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    _png(root / "a" / "sub" / "2.png", (20,) * 3)
    _png(root / "a" / "sub" / "deeper" / "3.png", (30,) * 3)
    _apple_double(root / "a" / "sub" / "._2.png")
    _png(root / "a" / ".thumbnails" / "t.png", (99,) * 3)    # hidden folder: not an image of a
    _png(root / "b" / "x" / "1.png", (40,) * 3)
    _png(root / "b" / "2.png", (50,) * 3)
    _png(root / ".Trashes" / "old.png", (99,) * 3)           # hidden class folder
    return [10, 20, 30, 50, 40]          # sorted by path below the class: "2.png" < "x/1.png"


@pytest.mark.parametrize("entry", ["load_image_folder", "load_splits"])
def test_image_folder_skips_hidden_and_reads_nested_in_order(tmp_path, entry):
    expected = _junk_folder(tmp_path / "imgs")
    if entry == "load_image_folder":
        ds = load_image_folder(tmp_path / "imgs")
        assert ds.classes == ["a", "b"] and ds.labels.tolist() == [0, 0, 0, 1, 1]
        assert ds.images[:, 0, 0, 0].tolist() == expected
    else:
        s = load_splits(tmp_path / "imgs", val_fraction=0.0)
        assert len(s.train) + len(s.test) == 5 and s.classes == ["a", "b"]
        assert 99 not in torch.cat([s.train.images, s.test.images])[:, 0, 0, 0].tolist()


def test_one_class_with_only_nested_images_hints_at_the_right_folder(tmp_path):
    _png(tmp_path / "photos" / "test" / "cat" / "1.png", (1,) * 3)
    _png(tmp_path / "photos" / "test" / "dog" / "1.png", (2,) * 3)
    with pytest.raises(FileNotFoundError, match=r"one class folder, test.*pass .*photos/test"):
        load_image_folder(tmp_path / "photos")


# ---------------------------------------------------------------- image decoding --------------

GRADIENT = np.arange(256)


def _save(array: np.ndarray, mode: str, path: Path) -> Path:
    """`array` (one row) saved as a `mode` image; the byte order follows the mode's name."""
    dtype = {"I;16": "<u2", "I;16B": ">u2", "I": "<i4", "F": "<f4"}[mode]
    img = Image.frombytes(mode, (array.shape[-1], 1), array.astype(dtype).tobytes())
    img.save(path)
    return path


# (mode, file type, values, expected 8-bit values): see images._to_rgb for the rules
DEPTHS = {
    "16-bit-png": ("I;16", "png", GRADIENT * 257, GRADIENT),
    "16-bit-big-endian-tiff": ("I;16B", "tif", GRADIENT * 257, GRADIENT),
    "16-bit-dark-png": ("I;16", "png", GRADIENT * 4, np.round(GRADIENT * 4 / 257)),
    "int32-16-bit-range-tiff": ("I", "tif", GRADIENT * 257, GRADIENT),
    "int32-wide-range-tiff": ("I", "tif", GRADIENT * 100_000 - 7, GRADIENT),
    "float-0-1-tiff": ("F", "tif", GRADIENT / 255, GRADIENT),
    "float-wide-range-tiff": ("F", "tif", GRADIENT * 0.5 - 20, GRADIENT),
    "float-constant-tiff": ("F", "tif", np.full(256, 7.5), np.zeros(256)),
}


@pytest.mark.parametrize("case", list(DEPTHS))
def test_high_bit_depth_images_are_rescaled_not_saturated(tmp_path, case):
    mode, ext, values, expected = DEPTHS[case]
    path = _save(values, mode, tmp_path / f"img.{ext}")
    with Image.open(path) as raw:
        assert raw.mode == mode or (mode, raw.mode) == ("I;16B", "I;16")
    rgb = images.read_image(path)
    assert rgb.mode == "RGB" and rgb.size == (256, 1)
    pixels = np.asarray(rgb)[0]
    assert (pixels == pixels[:, :1]).all()                       # grey: R = G = B
    np.testing.assert_array_equal(pixels[:, 0], expected.astype(np.uint8))


def test_float_nan_and_inf_become_black(tmp_path):
    values = np.array([0.0, np.nan, 0.5, np.inf, 1.0])
    pixels = np.asarray(images.read_image(_save(values, "F", tmp_path / "nan.tif")))[0, :, 0]
    assert pixels.tolist() == [0, 0, 128, 0, 255]


def test_image_folder_uses_the_rescaling_reader(tmp_path):
    for label in ("a", "b"):
        folder = tmp_path / "imgs" / label
        folder.mkdir(parents=True)
        _save(GRADIENT * 257, "I;16", folder / "g.png")
    ds = load_image_folder(tmp_path / "imgs")
    assert ds.images[0, :, 0].tolist() == [GRADIENT.tolist()] * 3     # not almost all 255


@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_large_images_are_shrunk_as_they_are_read(tmp_path, ext):
    path = tmp_path / f"big.{ext}"
    Image.linear_gradient("L").resize((2400, 600)).save(path)
    assert images.read_image(path, max_side=600).size == (600, 150)
    assert images.read_image(path).size == (1024, 256)            # the default bound
    assert images.read_image(path, max_side=None).size == (2400, 600)
    assert images.read_image(path, max_side=5000).size == (2400, 600)


def test_pixel_limit_is_below_pils_and_refuses_with_the_file_name(tmp_path):
    assert images.MAX_IMAGE_PIXELS < Image.MAX_IMAGE_PIXELS
    path = tmp_path / "wide.png"
    Image.new("RGB", (300, 200)).save(path)
    with pytest.raises(images.DataFileError, match=r"wide\.png is 300x200 = 60,000 pixels, more "
                                                 r"than the 50,000"):
        images.read_image(path, max_pixels=50_000)
    assert images.read_image(path, max_pixels=60_000).size == (300, 200)


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height and whose data is missing: a bomb's header."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)      # 8-bit grey
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def _truncated_png(path: Path) -> Path:
    Image.linear_gradient("L").save(path)
    path.write_bytes(path.read_bytes()[:300])
    return path


# hostile image files: (how to make one at `path`, error type, what the message must say)
HOSTILE_IMAGES: dict[str, tuple[Callable[[Path], object], type, str]] = {
    "empty-file": (lambda p: p.write_bytes(b""), images.DataFileError, "cannot read image"),
    "text-named-png": (lambda p: p.write_text("hello"), images.DataFileError, "cannot read image"),
    "apple-double": (_apple_double, images.DataFileError, "cannot read image"),
    "truncated-png": (_truncated_png, images.DataFileError, "cannot read image"),
    "directory": (lambda p: p.mkdir(), images.DataFileError, "cannot read image"),
    "missing": (lambda p: None, FileNotFoundError, "does not exist"),
    "80-megapixel-header": (lambda p: _png_header_only(p, 10_000, 8_000), images.DataFileError,
                            "80,000,000 pixels, more than the 64,000,000"),
    "400-megapixel-bomb": (lambda p: _png_header_only(p, 20_000, 20_000), images.DataFileError,
                           "cannot read image .*exceeds limit"),
}


@pytest.mark.parametrize("case", list(HOSTILE_IMAGES))
def test_hostile_image_file_is_one_clear_error(tmp_path, case):
    make, error, says = HOSTILE_IMAGES[case]
    path = tmp_path / "x.png"
    make(path)
    with pytest.raises(error, match=says) as err:
        images.read_image(path)
    assert str(path) in str(err.value)
    if error is images.DataFileError:
        assert isinstance(err.value, ValueError)


# ---------------------------------------------------------------- real data -------------------

@pytest.mark.realdata
def test_real_stl10_sample_reads_unchanged(real_stl10_sample):
    path = sorted((real_stl10_sample / "cat").glob("*.png"))[0]
    with Image.open(path) as img:
        assert np.array_equal(np.asarray(images.read_image(path)), np.asarray(img.convert("RGB")))
