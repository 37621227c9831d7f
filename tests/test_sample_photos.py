"""The colour photos every install has, `profiles.try_load`, and what 07-09 show without STL-10."""

from __future__ import annotations

import torch

from alexnet_edu import data, profiles
from alexnet_edu.notebook import pretrained
from alexnet_edu.standin import generate_stl10


def test_sample_photos_are_six_distinct_natural_colour_images():
    photos = data.sample_photos()
    assert photos.images.shape == (6, 3, 256, 256) and photos.images.dtype == torch.uint8
    assert photos.classes == ["astronaut", "cat", "coffee", "flower", "rocket", "temple"]
    assert photos.labels.tolist() == list(range(6))
    flat = photos.images.flatten(1).float()
    assert torch.cdist(flat, flat).add(torch.eye(6) * 1e9).min() > 0   # no two alike
    # natural photos: every one has colour (channels differ) and detail (not flat)
    spread = photos.images.float().std(dim=(2, 3)).mean(1)
    assert (spread > 20).all(), spread
    channel_gap = (photos.images[:, 0].float() - photos.images[:, 2].float()).abs().mean((1, 2))
    assert (channel_gap > 5).all(), channel_gap
    # natural images: the first RGB principal component is brightness, close to (1, 1, 1)/√3
    _, eigvec = data.rgb_pca(photos.images)
    assert (eigvec[:, 0] > 0.45).all()


def test_try_load_returns_none_and_says_what_is_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("ALEXNET_EDU_SMOKE", raising=False)
    monkeypatch.setenv("ALEXNET_EDU_PROFILE", "cpu")
    monkeypatch.setenv("ALEXNET_EDU_DATA", str(tmp_path))
    assert profiles.try_load("stl10", download=False) is None
    said = capsys.readouterr().out
    assert "stl10 is not here: $ALEXNET_EDU_DATA/stl10_binary/ lacks train_X.bin" in said
    assert "2.6 GB" in said and str(tmp_path) not in said   # no machine path in a stored output
    generate_stl10(tmp_path, n_train=20, n_test=10)
    splits = profiles.try_load("stl10", download=False)
    assert splits is not None and len(splits.test) == 10


def test_images_to_inspect_shows_the_photos_without_stl10(tmp_path, monkeypatch, capsys):
    """An ImageNet model on a fresh clone (no STL-10, no sample folder) looks at the photos,
    and nothing is downloaded or generated."""
    monkeypatch.delenv("ALEXNET_EDU_SMOKE", raising=False)
    monkeypatch.setenv("ALEXNET_EDU_PROFILE", "full")        # even the full profile downloads none
    monkeypatch.setenv("ALEXNET_EDU_DATA", str(tmp_path))
    monkeypatch.setattr(pretrained, "data_root", lambda: tmp_path)
    images, how = pretrained.images_to_inspect(checkpoint={"dataset": "imagenet"})
    assert images.classes == data.sample_photos().classes and len(images) == 6
    assert "sample photos" in how and list(tmp_path.iterdir()) == []
    # STL-10's test files, when here, are shown instead
    generate_stl10(tmp_path, n_train=20, n_test=10)
    images, how = pretrained.images_to_inspect(checkpoint={"dataset": "imagenet"})
    assert len(images) == 10 and "STL-10" in how
