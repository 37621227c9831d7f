"""Image folders too large for memory are read from disk as needed (data.ImageFiles): the same
pixels as the in-memory path, statistics from a sample, a fingerprint from the file list, and
the CLI trains and evaluates on them. The size threshold is lowered to 0 here."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from alexnet_edu import data, heldout, images
from alexnet_edu.cli import main


@pytest.fixture
def photos(tmp_path, monkeypatch):
    """Two classes of photo-sized images of several sizes (all larger than 256 px)."""
    rng = np.random.default_rng(0)
    sizes = [(300, 400), (520, 310), (280, 280), (333, 500), (400, 300)]
    for label in ("cat", "dog"):
        (tmp_path / "photos" / label).mkdir(parents=True)
        for i, (h, w) in enumerate(sizes * 2):
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "photos" / label / f"{i}.png")
    monkeypatch.setattr(images, "IN_MEMORY_BYTES", 0)      # everything counts as too large
    return tmp_path / "photos"


def test_streamed_images_are_the_in_memory_ones(photos, capsys):
    streamed = data.folder_dataset(photos)
    assert isinstance(streamed, data.ImageFiles) and "reading them from disk" in (
        capsys.readouterr().out)
    in_memory = data.load_image_folder(photos)           # squares every image to 256 x 256
    assert len(streamed) == len(in_memory) == 20 and streamed.classes == ["cat", "dog"]
    for i in (0, 7, 19):
        image, label = streamed[i]
        assert image.dtype == torch.uint8 and image.shape == (3, 256, 256)
        # the same §2 resize, done by PIL as the file is read instead of by torch afterwards:
        # the pixels agree to rounding
        difference = (image.int() - in_memory.images[i].int()).abs()
        assert difference.float().mean() < 0.5 and difference.max() <= 3, difference.max()
        assert label == int(in_memory.labels[i])
    batch, labels = next(iter(data.make_loader(streamed, 4, shuffle=False, num_workers=2)))
    assert batch.shape == (4, 3, 256, 256) and torch.equal(batch[1], streamed[1][0])
    assert labels.tolist() == in_memory.labels[:4].tolist()


def test_splits_of_a_streamed_folder(photos):
    splits = data.load_splits(photos, seed=1)
    assert all(isinstance(s, data.ImageFiles) for s in (splits.train, splits.val, splits.test))
    assert splits.in_channels == 3 and splits.image_size == 256
    assert len(splits.train) + len(splits.val) + len(splits.test) == 20
    # statistics from the training images (all of them here: fewer than STATS_SAMPLE)
    pixels = torch.stack([splits.train[i][0] for i in range(len(splits.train))]).double() / 255
    assert splits.mean == pytest.approx(pixels.mean((0, 2, 3)).tolist(), abs=1e-6)
    before = data.split_fingerprint(splits.test)
    assert data.split_fingerprint(data.load_splits(photos, seed=1).test) == before
    victim = splits.test.paths[0]
    Image.fromarray(np.zeros((300, 300, 3), np.uint8)).save(victim)   # another file, same name
    assert data.split_fingerprint(splits.test) != before


def test_cli_trains_and_evaluates_a_streamed_folder(photos, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--dataset", str(photos), "--out", str(out), "--image-size", "67",
                 "--batch-size", "8", "--epochs", "1", "--device", "cpu"]) == 0
    assert "reading them from disk" in capsys.readouterr().out
    assert main(["evaluate", "--checkpoint", str(out / "best.pt"), "--dataset", str(photos),
                 "--split", "test", "--json", "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 4 and 0 <= result["top1"] <= 1     # 20 % of 20 images held out


def test_imagenet_layout_uses_val_as_the_test_split(photos, tmp_path):
    """train/ and val/ (ImageNet's layout): val/ is the held-out test split, and the
    validation split is carved from train/."""
    imagenet = tmp_path / "imagenet"
    (imagenet / "train").mkdir(parents=True)
    (imagenet / "val").mkdir()
    for label in ("cat", "dog"):
        files = sorted((photos / label).iterdir())
        (imagenet / "train" / label).mkdir()
        (imagenet / "val" / label).mkdir()
        for f in files[:8]:
            f.rename(imagenet / "train" / label / f.name)
        for f in files[8:]:
            f.rename(imagenet / "val" / label / f.name)
    splits = data.load_splits(imagenet)
    assert len(splits.test) == 4 and len(splits.train) + len(splits.val) == 16
    test, synthetic = heldout.held_out_split(imagenet, recipe=splits.recipe)   # fingerprint checked
    assert [p.name for p in test.paths] == [p.name for p in splits.test.paths] and not synthetic
    (imagenet / "train").rename(imagenet / "gone")       # the test split needs no training files
    assert heldout.held_out_split(imagenet / "val")[0].classes == ["cat", "dog"]


def test_a_bad_file_in_a_streamed_folder_is_named_in_one_line(photos, tmp_path, capsys):
    """Read in a DataLoader worker, a truncated image still gets the one-line error that names
    it, not the worker's traceback."""
    # a validation image: read only by fit's evaluation, in DataLoader workers
    victim = data.load_splits(photos).val.paths[0]
    victim.write_bytes(victim.read_bytes()[:200])
    code = main(["train", "--dataset", str(photos), "--out", str(tmp_path / "run"),
                 "--image-size", "67", "--batch-size", "8", "--epochs", "1", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and victim.name in err, err
    assert len([line for line in err.splitlines() if line.startswith("alexnet-edu: error:")]) == 1
