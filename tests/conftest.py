"""Shared test set-up: smoke mode for every notebook, a fixed seed for every test, and where real
data lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Notebooks executed by nbval inherit this environment: the same code on less data. A profile
# exported in the shell (ALEXNET_EDU_PROFILE=cpu) would win over smoke mode and train every
# notebook at full length, so it is dropped unless smoke mode is turned off (ALEXNET_EDU_SMOKE=0).
os.environ.setdefault("ALEXNET_EDU_SMOKE", "1")
if os.environ["ALEXNET_EDU_SMOKE"] == "1":
    os.environ.pop("ALEXNET_EDU_PROFILE", None)


def _real_data_root() -> Path | None:
    from alexnet_edu.settings import data_root

    root = data_root()
    return root if root.is_dir() else None


@pytest.fixture(autouse=True)
def _seeded():
    """Every test draws the same random numbers on every run, so a rare draw cannot fail CI."""
    torch.manual_seed(0)


@pytest.fixture
def real_fashion_mnist_root() -> Path:
    """A data root holding real Fashion-MNIST files, or a skip that says how to get them."""
    root = _real_data_root()
    raw = root / "FashionMNIST" / "raw" if root else None
    if raw is None or not any(raw.glob("train-images-idx3-ubyte*")):
        pytest.skip("real Fashion-MNIST not found under $ALEXNET_EDU_DATA "
                    f"({root}); CI points it at ../shared/data, users download it with torchvision")
    return root


@pytest.fixture
def real_stl10_sample() -> Path:
    """The folder of real STL-10 test images (ImageFolder layout), or a skip with a reason."""
    root = _real_data_root()
    sample = root / "stl10-sample" / "test" if root else None
    if sample is None or not sample.is_dir():
        pytest.skip(f"the real STL-10 sample (stl10-sample/test) is not under $ALEXNET_EDU_DATA "
                    f"({root}); CI points it at ../shared/data")
    return sample
