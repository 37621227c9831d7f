"""alexnet_edu.data and .transforms: official file formats, splits, statistics, the paper's
augmentations."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from alexnet_edu import data, heldout, profiles, standin
from alexnet_edu.data import TensorImageDataset, load_image_folder, load_splits, make_loader
from alexnet_edu.standin import generate_fashion_mnist, generate_stl10
from alexnet_edu.transforms import BatchTransform, crop_and_flip, pca_lighting, ten_crop


@pytest.fixture(autouse=True)
def _isolated(request, monkeypatch, tmp_path):
    """Every test: not smoke mode, data root in tmp (unless it reads the real data), and the
    repo's data/ never written."""
    monkeypatch.setenv("ALEXNET_EDU_SMOKE", "0")
    if not any(name.startswith("real_") for name in request.fixturenames):
        monkeypatch.setenv("ALEXNET_EDU_DATA", str(tmp_path / "data-root"))
    monkeypatch.setattr(standin, "PROJECT_ROOT", tmp_path / "project")


def _image_bytes(ds: TensorImageDataset) -> set[bytes]:
    return {img.numpy().tobytes() for img in ds.images}


# ---------------------------------------------------------------- official formats -----------

FASHION = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
           "t10k-labels-idx1-ubyte")


def _idx(array: np.ndarray) -> bytes:
    """IDX (LeCun): 0x00 0x00 0x08 (unsigned byte) <ndim>, big-endian sizes, then the bytes."""
    return bytes([0, 0, 8, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape) + array.astype(np.uint8).tobytes()


def _write_fashion(root: Path, blobs: dict[str, bytes], compress: bool = False) -> Path:
    """Hand-written IDX files (not via the module), optionally gzipped; returns their folder."""
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name, blob in blobs.items():
        if compress:
            (raw / (name + ".gz")).write_bytes(gzip.compress(blob))
        else:
            (raw / name).write_bytes(blob)
    return raw


@pytest.mark.parametrize("compress", [False, True])
def test_fashion_mnist_idx_files_load_pixel_exact(tmp_path, compress):
    rng = np.random.default_rng(1)
    train = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)
    test = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8)
    train_y, test_y = np.arange(40) % 10, np.arange(12) % 10
    _write_fashion(tmp_path, dict(zip(FASHION, map(_idx, (train, train_y, test, test_y)))),
                   compress)
    splits = load_splits("fashion-mnist", root=tmp_path, val_fraction=0.25, download=False)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (30, 10, 12)
    assert splits.in_channels == 1 and splits.pca is None and not splits.synthetic
    assert splits.classes[0] == "T-shirt/top" and splits.classes[9] == "Ankle boot"
    assert splits.test.images.shape == (12, 1, 28, 28) and splits.test.images.dtype == torch.uint8
    # the test split is the file, in order; labels follow their images
    assert torch.equal(splits.test.images[:, 0], torch.from_numpy(test))
    assert splits.test.labels.tolist() == test_y.tolist()
    lookup = {train[i].tobytes(): int(train_y[i]) for i in range(40)}
    for img, label in zip(splits.val.images, splits.val.labels):
        assert lookup[img[0].numpy().tobytes()] == int(label)


def _write_stl10(root: Path, train: np.ndarray, train_y: np.ndarray, test: np.ndarray,
                 test_y: np.ndarray) -> Path:
    """Hand-written stl10_binary files: N x 3 x 96 x 96 images stored column-major (W before H),
    labels 1..10, class_names.txt, fold_indices.txt, and the md5 marker the loader accepts."""
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    (folder / "train_X.bin").write_bytes(np.transpose(train, (0, 1, 3, 2)).tobytes())
    (folder / "train_y.bin").write_bytes((train_y + 1).astype(np.uint8).tobytes())
    (folder / "test_X.bin").write_bytes(np.transpose(test, (0, 1, 3, 2)).tobytes())
    (folder / "test_y.bin").write_bytes((test_y + 1).astype(np.uint8).tobytes())
    (folder / "class_names.txt").write_text("\n".join(data.STL10_CLASSES) + "\n")
    (folder / "fold_indices.txt").write_text(
        "".join(" ".join(map(str, f)) + "\n" for f in np.array_split(np.arange(len(train)), 10)))
    md5 = {f: hashlib.md5((folder / f).read_bytes()).hexdigest()
           for f in ("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin")}
    (folder / standin.GENERATED_MARKER).write_text(json.dumps({"md5": md5}))
    return folder


def test_stl10_binary_files_load_in_row_major_order(tmp_path):
    train = np.zeros((20, 3, 96, 96), np.uint8)
    train[:, 0, 0, 5] = 255            # red pixel in row 0, column 5: a transposition would move it
    train[:, 2, 90, 1] = 7
    test = np.random.default_rng(0).integers(0, 256, (6, 3, 96, 96), dtype=np.uint8)
    _write_stl10(tmp_path, train, np.arange(20) % 10, test, np.array([9, 0, 1, 2, 3, 4]))
    splits = load_splits("stl10", root=tmp_path, val_fraction=0.1, download=False)
    assert splits.classes == data.STL10_CLASSES and splits.in_channels == 3
    assert splits.synthetic     # the marker says these are not the official files
    assert torch.equal(splits.test.images, torch.from_numpy(test))
    assert splits.test.labels.tolist() == [9, 0, 1, 2, 3, 4]          # 1-based on disk
    assert splits.train.images[0, 0, 0, 5] == 255 and splits.train.images[0, 0, 5, 0] == 0
    assert splits.train.images[0, 2, 90, 1] == 7
    assert splits.pca is not None and splits.pca[0].shape == (3,)


def test_stl10_md5_check_rejects_files_that_match_nothing(tmp_path):
    test = np.zeros((4, 3, 96, 96), np.uint8)
    folder = _write_stl10(tmp_path, test.copy(), np.arange(4), test, np.arange(4))
    (folder / "test_y.bin").write_bytes(bytes([2, 2, 2, 2]))          # changed after marking
    with pytest.raises(FileNotFoundError, match="md5"):
        load_splits("stl10", root=tmp_path, download=False)


def test_generated_files_are_official_format_deterministic_and_learnable(tmp_path):
    generate_fashion_mnist(tmp_path / "a", 200, 100, seed=3)
    generate_fashion_mnist(tmp_path / "b", 200, 100, seed=3)
    generate_fashion_mnist(tmp_path / "c", 200, 100, seed=4)
    raw = Path("FashionMNIST/raw/train-images-idx3-ubyte")
    blob = (tmp_path / "a" / raw).read_bytes()
    assert blob[:4] == bytes([0, 0, 8, 3]) and int.from_bytes(blob[4:8], "big") == 200
    assert len(blob) == 16 + 200 * 28 * 28
    assert blob == (tmp_path / "b" / raw).read_bytes() != (tmp_path / "c" / raw).read_bytes()
    for gen, root in ((generate_fashion_mnist, tmp_path / "a"), (generate_stl10, tmp_path / "s")):
        if gen is generate_stl10:
            gen(root, 100, 100, seed=0)
        s = load_splits(gen.__name__.removeprefix("generate_").replace("_", "-"), root=root,
                        val_fraction=0.0, download=False)
        assert s.synthetic and len(s.test) == 100
        # learnable: a nearest-class-mean classifier on raw pixels beats chance (10 %) by far
        x = s.train.images.flatten(1).float()
        means = torch.stack([x[s.train.labels == k].mean(0) for k in range(10)])
        pred = torch.cdist(s.test.images.flatten(1).float(), means).argmin(1)
        assert (pred == s.test.labels).float().mean() > 0.5, gen.__name__


# ---------------------------------------------------------------- splits and statistics ------

@pytest.fixture
def fashion_root(tmp_path) -> Path:
    generate_fashion_mnist(tmp_path / "fm", 300, 80, seed=0)
    return tmp_path / "fm"


def test_val_split_is_carved_from_train_disjoint_and_seeded(fashion_root):
    a = load_splits("fashion-mnist", root=fashion_root, val_fraction=0.2, seed=5, download=False)
    b = load_splits("fashion-mnist", root=fashion_root, val_fraction=0.2, seed=5, download=False)
    c = load_splits("fashion-mnist", root=fashion_root, val_fraction=0.2, seed=6, download=False)
    pool = load_splits("fashion-mnist", root=fashion_root, val_fraction=0.0, download=False)
    assert (len(a.train), len(a.val), len(a.test)) == (240, 60, 80)
    assert not _image_bytes(a.train) & _image_bytes(a.val)
    assert _image_bytes(a.train) | _image_bytes(a.val) == _image_bytes(pool.train)
    assert not _image_bytes(a.val) & _image_bytes(a.test)
    assert torch.equal(a.val.images, b.val.images) and torch.equal(a.train.labels, b.train.labels)
    assert not torch.equal(a.val.images, c.val.images)
    assert torch.equal(a.test.images, c.test.images)            # the test split never moves


def test_limit_caps_every_split(fashion_root):
    s = load_splits("fashion-mnist", root=fashion_root, val_fraction=0.1, limit=50,
                    download=False)
    assert (len(s.train), len(s.val), len(s.test)) == (50, 6, 50)
    assert not _image_bytes(s.train) & _image_bytes(s.val)


def test_held_out_split_is_the_runs_split_and_refuses_another(fashion_root, tmp_path):
    run = load_splits("fashion-mnist", root=fashion_root, val_fraction=0.2, seed=3, limit=40,
                      download=False)
    for split in ("val", "test"):
        held, synthetic = heldout.held_out_split("fashion-mnist", fashion_root, split, run.recipe)
        assert torch.equal(held.images, getattr(run, split).images) and synthetic
    only_test = tmp_path / "only-test" / "FashionMNIST" / "raw"   # no training files
    only_test.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (only_test / name).write_bytes((fashion_root / "FashionMNIST" / "raw" / name).read_bytes())
    held, synthetic = heldout.held_out_split("fashion-mnist", tmp_path / "only-test", "test",
                                          run.recipe)
    assert torch.equal(held.images, run.test.images) and not synthetic   # no marker there
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        heldout.held_out_split("fashion-mnist", tmp_path / "only-test", "val", run.recipe)
    with pytest.raises(ValueError, match="rebuilt with the run's seed 4 is not the one the run"):
        heldout.held_out_split("fashion-mnist", fashion_root, "val", {**run.recipe, "seed": 4})
    with pytest.raises(ValueError, match=r"classes \['a', 'b'\], but 'fashion-mnist'"):
        heldout.held_out_split("fashion-mnist", fashion_root, "test", run.recipe,
                               classes=["a", "b"])


def test_mean_std_and_pca_come_from_the_train_split_only(tmp_path):
    generate_stl10(tmp_path, 60, 30, seed=1)
    s = load_splits("stl10", root=tmp_path, val_fraction=0.25, download=False)
    x = s.train.images.double() / 255
    mean, std = x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3), unbiased=False)
    assert torch.allclose(torch.tensor(s.mean, dtype=torch.float64), mean, atol=1e-9)
    assert torch.allclose(torch.tensor(s.std, dtype=torch.float64), std, atol=1e-9)
    everything = torch.cat([s.train.images, s.val.images]).double() / 255
    assert abs(everything.mean(dim=(0, 2, 3))[0].item() - s.mean[0]) > 1e-6
    # PCA: eigenpairs of the RGB covariance, largest first
    cov = torch.cov(x.permute(1, 0, 2, 3).reshape(3, -1), correction=0)
    eigval, eigvec = s.pca
    assert torch.all(eigval[:-1] >= eigval[1:])
    assert torch.allclose(cov.float() @ eigvec, eigvec * eigval, atol=1e-6)
    assert torch.allclose(eigvec.T @ eigvec, torch.eye(3), atol=1e-5)


# ---------------------------------------------------------------- batch transforms -----------

def test_eval_transform_is_exact_central_crop_normalized():
    t = BatchTransform(8, mean=(0.2, 0.4, 0.6), std=(0.5, 0.25, 0.1), train=False)
    assert t.resize_size == 9                                      # round(8 * 256 / 227)
    images = torch.randint(0, 256, (4, 3, 9, 9), dtype=torch.uint8)  # already at resize size
    out = t(images)
    assert out.shape == (4, 3, 8, 8) and out.dtype == torch.float32
    expected = (images[:, :, :8, :8].float() / 255 - torch.tensor([0.2, 0.4, 0.6])[:, None, None]
                ) / torch.tensor([0.5, 0.25, 0.1])[:, None, None]   # (9 - 8) // 2 = 0 offset
    assert torch.allclose(out, expected, atol=1e-6)


def test_eval_transform_upsamples_grey_and_repeats_channels():
    t = BatchTransform(227, mean=(0.2,), std=(0.5,), train=False, out_channels=3)
    images = torch.full((2, 1, 28, 28), 51, dtype=torch.uint8)         # 51 / 255 = 0.2
    out = t(images)
    assert out.shape == (2, 3, 227, 227)
    assert torch.allclose(out, torch.zeros_like(out), atol=1e-6)
    ramp = torch.arange(28, dtype=torch.uint8).mul(9).expand(1, 1, 28, 28)
    out = t(ramp)
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 0], out[:, 2])
    assert (out[0, 0, 100].diff() >= 0).all() and out[0, 0, 100, -1] > out[0, 0, 100, 0]


def test_crop_and_flip_equal_slices_and_torch_flip():
    images = torch.randn(3, 2, 10, 12)
    top, left, flip = torch.tensor([0, 2, 4]), torch.tensor([5, 0, 6]), torch.tensor(
        [False, True, True])
    out = crop_and_flip(images, 6, top, left, flip)
    for n in range(3):
        crop = images[n, :, top[n]:top[n] + 6, left[n]:left[n] + 6]
        assert torch.equal(out[n], torch.flip(crop, dims=[-1]) if flip[n] else crop)


def test_train_transform_outputs_are_crops_or_mirrors_and_both_occur():
    t = BatchTransform(8, mean=(0.0,), std=(1.0,), train=True)         # resize size 9
    image = torch.arange(81, dtype=torch.uint8).view(1, 1, 9, 9)
    out = t(image.expand(64, 1, 9, 9).contiguous())
    x = image.float() / 255
    plain = [x[0, :, i:i + 8, j:j + 8] for i in (0, 1) for j in (0, 1)]
    candidates = plain + [c.flip(-1) for c in plain]
    which = [next(k for k, c in enumerate(candidates) if torch.allclose(o, c)) for o in out]
    assert {k >= 4 for k in which} == {False, True}                     # flipped and not
    assert len(set(which)) >= 6                                         # offsets vary too
    no_flip = BatchTransform(8, mean=(0.0,), std=(1.0,), train=True, flip=False)
    assert all(any(torch.allclose(o, c) for c in plain) for o in no_flip(image.repeat(16, 1, 1, 1)))


def test_pca_lighting_adds_eigvec_times_alpha_sqrt_eigval_per_image():
    images = torch.rand(4, 3, 5, 5)
    eigval = torch.tensor([0.3, 0.02, 0.001])
    eigvec = torch.linalg.qr(torch.randn(3, 3))[0]
    alpha = torch.randn(4, 3) * 0.1
    out = pca_lighting(images, eigval, eigvec, alpha)
    for n in range(4):
        shift = eigvec @ (alpha[n] * eigval.sqrt())     # standard deviations, as the code does
        assert torch.allclose(out[n] - images[n], shift[:, None, None].expand(3, 5, 5), atol=1e-6)


def test_train_transform_pca_shift_is_constant_per_image_and_scales_with_std():
    pca = (torch.tensor([0.5, 0.1, 0.01]), torch.eye(3))
    flat = torch.full((256, 3, 9, 9), 128, dtype=torch.uint8)          # crops/flips change nothing
    t = BatchTransform(8, (0.0,) * 3, (1.0,) * 3, train=True, pca=pca, pca_std=0.1)
    out = t(flat) - 128 / 255
    per_image = out.flatten(2)
    assert torch.allclose(per_image, per_image[:, :, :1].expand_as(per_image), atol=1e-6)
    # shift along eigenvector i is alpha_i * sqrt(eigval_i) with alpha ~ N(0, 0.1)
    measured = per_image[:, :, 0].std(0) / pca[0].sqrt()
    assert torch.allclose(measured, torch.full((3,), 0.1), rtol=0.25)


def test_ten_crop_corners_centre_and_mirrors():
    images = torch.arange(2 * 1 * 6 * 7, dtype=torch.float32).view(2, 1, 6, 7)
    out = ten_crop(images, 4)
    assert out.shape == (2, 10, 1, 4, 4)
    expected = [images[..., 0:4, 0:4], images[..., 0:4, 3:7], images[..., 2:6, 0:4],
                images[..., 2:6, 3:7], images[..., 1:5, 1:5]]
    for k, e in enumerate(expected):
        assert torch.equal(out[:, k], e)
        assert torch.equal(out[:, k + 5], torch.flip(e, dims=[-1]))
    t = BatchTransform(4, (0.0,), (1.0,))                               # resize size 5
    patches = t.ten_crop_batch(torch.zeros(3, 1, 5, 5, dtype=torch.uint8))
    assert patches.shape == (3, 10, 1, 4, 4)


def test_transform_refuses_wrong_channel_count():
    with pytest.raises(ValueError, match="channel"):
        BatchTransform(67, (0.5,) * 3, (0.2,) * 3)(torch.zeros(1, 1, 28, 28, dtype=torch.uint8))


# ---------------------------------------------------------------- loaders ---------------------

def test_make_loader_gives_uint8_batches_in_order_and_seeded_shuffle():
    ds = TensorImageDataset(torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(
        10, 1, 2, 2).contiguous(), torch.arange(10), ["a"] * 10)
    images, labels = next(iter(make_loader(ds, 4, shuffle=False)))
    assert images.dtype == torch.uint8 and images.shape == (4, 1, 2, 2)
    assert labels.tolist() == [0, 1, 2, 3] and images[:, 0, 0, 0].tolist() == [0, 1, 2, 3]

    def order(seed):
        return torch.cat([y for _, y in make_loader(ds, 3, shuffle=True, seed=seed)]).tolist()

    assert order(1) == order(1) != order(2) and sorted(order(1)) == list(range(10))
    assert len(make_loader(ds, 3, shuffle=True)) == 4                  # batches: 3 3 3 1
    state = torch.get_rng_state()                  # iterating leaves the global RNG alone
    list(make_loader(ds, 3, shuffle=True, seed=4))
    assert torch.equal(state, torch.get_rng_state())
    subset = torch.utils.data.Subset(ds, [7, 2])                         # plain datasets work
    assert next(iter(torch.utils.data.DataLoader(subset, 2)))[1].tolist() == [7, 2]
    assert next(iter(make_loader(subset, 2, shuffle=False, num_workers=0)))[1].tolist() == [7, 2]
    plain = torch.utils.data.TensorDataset(ds.images, ds.labels)
    assert make_loader(plain, 4, shuffle=False).num_workers == 0
    assert torch.equal(next(iter(make_loader(plain, 4, shuffle=False)))[0], images)


def test_only_cpu_batches_for_a_gpu_are_pinned():
    """Pinned (page-locked) memory is for CPU batches on their way to a GPU: tensors already on
    a device cannot be pinned ("only dense CPU tensors can be pinned", on CUDA machines alone),
    and a CPU run on a GPU machine should not start CUDA. 'meta' stands in for a GPU here."""
    images, labels = torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.arange(4)
    on_cpu = TensorImageDataset(images, labels, ["a"] * 4)
    on_gpu = TensorImageDataset(images.to("meta"), labels.to("meta"), ["a"] * 4)
    assert make_loader(on_cpu, 2, shuffle=False, device="cuda").pin_memory
    assert not make_loader(on_cpu, 2, shuffle=False, device="cpu").pin_memory
    assert not make_loader(on_gpu, 2, shuffle=False, device="cuda").pin_memory
    assert not data.as_loader((images.to("meta"), labels), 2, device="cuda").pin_memory
    assert data.as_loader((images, labels), 2, device="cuda:0").pin_memory
    assert not make_loader(on_cpu, 2, shuffle=False).pin_memory   # (device="cpu")


# ---------------------------------------------------------------- image folders ---------------

def _png(path: Path, colour: tuple[int, int, int], size=(12, 10)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def test_image_folder_loads_classes_and_splits(tmp_path):
    for i in range(10):
        _png(tmp_path / "imgs" / "red" / f"{i}.png", (200, 0, 0))
        _png(tmp_path / "imgs" / "blue" / f"{i}.png", (0, 0, 200))
    ds = load_image_folder(tmp_path / "imgs")
    assert ds.classes == ["blue", "red"] and ds.images.shape == (20, 3, 10, 12)
    assert (ds.images[ds.labels == 1][:, 0] == 200).all()
    s = load_splits(tmp_path / "imgs", val_fraction=0.25)
    assert (len(s.train), len(s.val), len(s.test)) == (12, 4, 4)
    assert s.classes == ["blue", "red"] and s.name == "imgs" and not s.synthetic
    (tmp_path / "sample").mkdir()
    (tmp_path / "imgs").rename(tmp_path / "sample" / "test")   # a folder named like a split
    assert load_splits(tmp_path / "sample" / "test", val_fraction=0.25).name == "sample-test"
    _png(tmp_path / "mixed" / "a" / "big.png", (1, 2, 3), size=(300, 400))
    _png(tmp_path / "mixed" / "b" / "small.png", (1, 2, 3), size=(20, 30))
    assert load_image_folder(tmp_path / "mixed").images.shape == (2, 3, 256, 256)   # §2
    for i in range(2):
        _png(tmp_path / "large" / "a" / f"{i}.png", (9, 9, 9), size=(400, 300))
    assert load_image_folder(tmp_path / "large").images.shape == (2, 3, 256, 256)


def test_image_folder_errors_say_what_is_wrong(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no class sub-folders"):
        load_image_folder(tmp_path / "empty")
    (tmp_path / "noimg" / "cat").mkdir(parents=True)
    (tmp_path / "noimg" / "cat" / "notes.txt").write_text("hi")
    with pytest.raises(FileNotFoundError, match="holds no images"):
        load_image_folder(tmp_path / "noimg")
    _png(tmp_path / "bad" / "cat" / "ok.png", (1, 2, 3))
    good = (tmp_path / "bad" / "cat" / "ok.png").read_bytes()
    (tmp_path / "bad" / "cat" / "broken.png").write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="broken.png"):
        load_splits(tmp_path / "bad")
    with pytest.raises(FileNotFoundError, match="unknown dataset"):
        load_splits(tmp_path / "nowhere")


# ---------------------------------------------------------------- missing data ----------------

def test_missing_dataset_offline_names_the_files(tmp_path, monkeypatch):
    (tmp_path / "none").mkdir()            # an existing data root without the files
    (tmp_path / "offline").mkdir()
    with pytest.raises(FileNotFoundError) as err:
        load_splits("fashion-mnist", root=tmp_path / "none", download=False)
    assert all(f in str(err.value) for f in ("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))
    assert str(tmp_path / "none" / "FashionMNIST" / "raw") in str(err.value)

    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr("torchvision.datasets.mnist.download_and_extract_archive", offline)
    monkeypatch.setattr("torchvision.datasets.stl10.download_and_extract_archive", offline)
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    read_only.chmod(0o555)
    try:
        with pytest.raises(FileNotFoundError, match="read-only, so nothing was downloaded"):
            load_splits("stl10", root=read_only, download=True)
    finally:
        read_only.chmod(0o755)
    for name, file in (("fashion-mnist", "train-labels-idx1-ubyte"), ("stl10", "test_y.bin")):
        with pytest.raises(FileNotFoundError, match="download failed") as err:
            load_splits(name, root=tmp_path / "offline", download=True)
        assert file in str(err.value) and "ALEXNET_EDU" not in str(err.value)   # no policy here
        assert "fold_indices.txt" not in str(err.value)   # lists the files it reads, no others
        assert "try again where the internet is reachable" in str(err.value)
        with pytest.raises(FileNotFoundError, match="download failed") as err:   # the edge's
            profiles.load_splits(name, root=tmp_path / "offline", download=True)
        assert file in str(err.value) and "ALEXNET_EDU_SMOKE" in str(err.value)


def test_a_download_that_fails_for_another_reason_does_not_blame_the_network(tmp_path,
                                                                            monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("torchvision.datasets.mnist.download_and_extract_archive", full_disk)
    with pytest.raises(FileNotFoundError, match="No space left") as err:
        load_splits("fashion-mnist", root=tmp_path, download=True)
    assert "fix what stopped the download" in str(err.value)
    assert "internet" not in str(err.value)


def test_the_smoke_profile_alone_is_a_size_not_stand_ins(tmp_path, monkeypatch):
    """--profile smoke (ALEXNET_EDU_PROFILE=smoke) without ALEXNET_EDU_SMOKE=1 meets a missing
    dataset as a student does (tests/test_newcomer.py relies on it), and the error says which
    switch gives stand-ins; `standins=True` (a stand-in run, resumed) takes them at once."""
    monkeypatch.setattr(standin, "SMOKE_GENERATED_SIZES", (60, 20))      # keep the test quick
    (tmp_path / "data-root").mkdir()
    with pytest.raises(FileNotFoundError, match=r"ALEXNET_EDU_SMOKE=1 to try the code.*"
                                                r"--profile smoke, only makes the run small"):
        profiles.load_splits("fashion-mnist", download=False, profile="smoke", limit=30)
    assert not (tmp_path / "data-root" / "generated").exists()
    assert profiles.load_splits("fashion-mnist", download=True, standins=True,   # no download
                                limit=30).synthetic
    monkeypatch.setenv("ALEXNET_EDU_SMOKE", "1")
    assert profiles.load_splits("fashion-mnist", download=False, profile="cpu",
                                limit=30).synthetic


def test_the_core_needs_a_root_and_never_substitutes_stand_ins(tmp_path, monkeypatch):
    monkeypatch.setenv("ALEXNET_EDU_SMOKE", "1")
    with pytest.raises(ValueError, match="pass root="):
        load_splits("fashion-mnist")                       # the core reads no $ALEXNET_EDU_DATA
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_splits("fashion-mnist", root=tmp_path / "empty", download=False)
    assert not (tmp_path / "project").exists() and list((tmp_path / "empty").iterdir()) == []


def test_smoke_mode_generates_stand_ins_in_a_writable_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ALEXNET_EDU_SMOKE", "1")
    monkeypatch.setattr(standin, "SMOKE_GENERATED_SIZES", (60, 20))      # keep the test quick
    read_only = tmp_path / "shared"
    read_only.mkdir()
    read_only.chmod(0o555)                    # like ../shared/data (even root must not write)
    try:
        s = profiles.load_splits("stl10", root=read_only, download=False, limit=40)
    finally:
        read_only.chmod(0o755)
    assert s.synthetic and s.in_channels == 3 and len(s.train) == 40
    assert list(read_only.iterdir()) == []
    generated = tmp_path / "project" / "data" / "generated" / "stl10_binary"
    assert (generated / "train_X.bin").is_file() and str(generated) in capsys.readouterr().out
    (tmp_path / "data-root").mkdir()          # $ALEXNET_EDU_DATA must exist (never created)
    s2 = profiles.load_splits("fashion-mnist", download=False, limit=30)   # $ALEXNET_EDU_DATA
    assert s2.synthetic and s2.in_channels == 1 and s2.image_size == 28
    assert (tmp_path / "data-root" / "generated" / "FashionMNIST" / "raw").is_dir()


# ---------------------------------------------------------------- real data -------------------

@pytest.mark.realdata
def test_real_fashion_mnist(real_fashion_mnist_root):
    s = load_splits("fashion-mnist", root=real_fashion_mnist_root, limit=2000, download=False)
    assert not s.synthetic and len(s.train) == 2000 and s.image_size == 28
    assert set(s.train.labels.tolist()) == set(range(10))
    assert abs(s.mean[0] - 0.286) < 0.02 and abs(s.std[0] - 0.353) < 0.02  # the known values
    batch = BatchTransform(227, s.mean, s.std, train=False, out_channels=3)(s.test.images[:4])
    assert batch.shape == (4, 3, 227, 227)


@pytest.mark.realdata
def test_real_stl10_sample_as_image_folder(real_stl10_sample):
    ds = load_image_folder(real_stl10_sample)
    assert ds.images.shape == (95, 3, 96, 96) and len(ds.classes) == 10
    assert ds.classes == data.STL10_CLASSES and int((ds.labels == 8).sum()) == 3   # 3 ships
    x = BatchTransform(227, (0.45,) * 3, (0.25,) * 3).ten_crop_batch(ds.images[:2])
    ref = F.interpolate(ds.images[:2].float() / 255, size=(256, 256), mode="bilinear",
                        align_corners=False)
    assert torch.allclose(x[:, 4], (ref[..., 14:241, 14:241] - 0.45) / 0.25, atol=1e-5)
