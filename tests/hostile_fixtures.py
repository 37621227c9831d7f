"""What the hostile-input tests of the command line share (test_hostile_cli.py,
test_hostile_checkpoints.py): tiny run flags, the one-error-line check, and a finished run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import alexnet_edu.train as train_module
from alexnet_edu.cli import main
from alexnet_edu.standin import generate_fashion_mnist

TINY = ["--image-size", "67", "--limit", "24", "--batch-size", "16", "--epochs", "1",
        "--device", "cpu"]
ERROR = "alexnet-edu: error:"


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(ERROR)]


def _one_error(err: str) -> str:
    """The single error line (and no traceback)."""
    assert "Traceback" not in err, err
    lines = _error_lines(err)
    assert len(lines) == 1, err
    return lines[0]


def _images(folder: Path, classes: list[str], n: int = 6, seed: int = 0) -> Path:
    """`folder` with `n` random 20 x 20 colour PNGs in a sub-folder per class."""
    g = np.random.default_rng(seed)
    for name in classes:
        (folder / name).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(g.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(
                folder / name / f"{i}.png")
    return folder


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its contents (but the lock file, which `train` keeps
    there): to check that nothing changed."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def _resume(data_root: Path, out: Path, *flags: str) -> int:
    """`train --resume` of the Fashion-MNIST run in `out` on the CPU, with `flags`."""
    return main(["train", "--dataset", "fashion-mnist", "--data-root", str(data_root),
                 "--out", str(out), "--resume", "--device", "cpu", *flags])


def interrupt_validation(monkeypatch, epoch: int) -> None:
    """Ctrl-C while epoch `epoch` (counted from 1) is validated: its `epoch`-th call of
    `train.evaluate` raises KeyboardInterrupt, so the run has finished `epoch` - 1 epochs."""
    real, calls = train_module.evaluate, []

    def interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == epoch:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "evaluate", interrupt)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    generate_fashion_mnist(root, n_train=40, n_test=10, seed=0)
    return root


@pytest.fixture(scope="module")
def run(data_root, tmp_path_factory) -> Path:
    """A finished one-epoch Fashion-MNIST run (tests copy its files before changing them)."""
    out = tmp_path_factory.mktemp("runs") / "fm"
    assert main(["train", "--dataset", "fashion-mnist", "--data-root", str(data_root),
                 "--out", str(out), *TINY]) == 0
    return out
