"""What a newcomer meets: every notebook, Run All, on a fresh clone whose data/ holds only what the
first Fashion-MNIST download leaves there (no STL-10, no stl10-sample/, no earlier runs, no
../shared), each notebook alone, as on a fresh Colab VM.

The clone is a copy of the package, the notebooks and pyproject.toml in a temporary folder,
imported through PYTHONPATH (so its runs/ and data/ are the clone's own). The notebooks run at
smoke sizes (``ALEXNET_EDU_PROFILE=smoke``; ``ALEXNET_EDU_NEWCOMER_PROFILE=cpu`` picks the
default CPU profile instead) but *without* ``ALEXNET_EDU_SMOKE``, so that no
generated stand-in replaces a missing dataset: what is not there is not there. Fashion-MNIST is
the real subset of $ALEXNET_EDU_DATA when present (CI: ../shared/data), else generated stand-ins
in the official format, put where the download would put them (marked as stand-ins).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.newcomer

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
FASHION = Path("FashionMNIST", "raw")


def _real_fashion_mnist() -> Path | None:
    env = os.environ.get("ALEXNET_EDU_DATA", "").strip()
    for root in ([Path(env)] if env else []) + [ROOT / "data"]:
        raw = root / FASHION
        if any(raw.glob("train-images-idx3-ubyte*")) and not any(raw.glob("ALEXNET_EDU_*")):
            return raw
    return None


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A fresh clone: the package, the notebooks, pyproject.toml and data/ with Fashion-MNIST."""
    from alexnet_edu.standin import generate_fashion_mnist

    clone = tmp_path_factory.mktemp("newcomer") / "alexnet-edu"
    ignore = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints")
    for folder in ("alexnet_edu", "notebooks"):
        shutil.copytree(ROOT / folder, clone / folder, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", clone / "pyproject.toml")
    (clone / "data").mkdir()
    shutil.copy(ROOT / "data" / "README.md", clone / "data" / "README.md")
    real = _real_fashion_mnist()
    if real is not None:
        (clone / "data" / FASHION.parent).mkdir()
        (clone / "data" / FASHION).symlink_to(real, target_is_directory=True)
    else:   # no download possible here: stand-ins where torchvision would put the real files
        generate_fashion_mnist(clone / "data", n_train=600, n_test=200)
    return clone


@pytest.fixture
def newcomer_env(clone, monkeypatch) -> Path:
    """The kernel's environment: the clone's package first, smoke sizes, no stand-ins, no data
    root but the clone's data/; and an empty runs/ (each notebook alone, as on Colab)."""
    shutil.rmtree(clone / "runs", ignore_errors=True)
    for name in ("ALEXNET_EDU_SMOKE", "ALEXNET_EDU_DATA"):
        monkeypatch.delenv(name, raising=False)
    # ALEXNET_EDU_NEWCOMER_PROFILE=cpu: the same run at the profile a student's laptop gets
    # (about half an hour on 2 cores; run by hand, not in CI)
    monkeypatch.setenv("ALEXNET_EDU_PROFILE", os.environ.get("ALEXNET_EDU_NEWCOMER_PROFILE",
                                                             "smoke"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(clone)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    return clone


def _errors(nb: nbformat.NotebookNode) -> list[str]:
    found = []
    for i, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                found.append(f"cell {i}: {output.get('ename')}: {output.get('evalue')[:300]}")
    return found


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem[:2] for p in NOTEBOOKS])
def test_notebook_runs_on_a_fresh_clone(notebook, newcomer_env):
    from nbclient import NotebookClient

    path = newcomer_env / "notebooks" / notebook.name
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=900, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    errors = _errors(nb)
    assert not errors, f"{notebook.name} on a fresh clone:\n  " + "\n  ".join(errors)
    # nothing generated stood in for a missing dataset (only smoke mode writes data/generated)
    assert not (newcomer_env / "data" / "generated").exists()
    assert not (newcomer_env / "data" / "stl10_binary").exists() or notebook.name.startswith("05")
