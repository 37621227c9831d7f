"""Where runs/ and data/ live when the package is installed, not used from its clone: a real
`pip install --no-deps --target` (what Colab's set-up cell does, into site-packages) and Python
started in another folder (/content on Colab). They must land in that working folder, never in
site-packages, and the paths printed must be where the files are."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from alexnet_edu import files

ROOT = Path(__file__).resolve().parent.parent


def test_project_root_is_the_clone_or_else_the_working_folder(tmp_path):
    clone, site, cwd = tmp_path / "clone", tmp_path / "site-packages", tmp_path / "content"
    for folder in (clone / "alexnet_edu", site / "alexnet_edu", cwd):
        folder.mkdir(parents=True)
    (clone / "pyproject.toml").write_text("[project]\n")
    assert files._project_root(clone / "alexnet_edu", cwd) == clone.resolve()
    assert files._project_root(site / "alexnet_edu", cwd) == cwd.resolve()


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The package installed non-editable (a wheel built from a copy of the sources) into a
    folder of its own, as pip puts it into site-packages."""
    src, site = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("site-packages")
    shutil.copytree(ROOT / "alexnet_edu", src / "alexnet_edu",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                           "--no-build-isolation", "--no-index", "--target", str(site), str(src)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"pip could not build the package here: {done.stderr[-500:]}")
    return site


PROBE = """
import json
import alexnet_edu
from alexnet_edu import settings
from alexnet_edu.data import sample_photos
from alexnet_edu.notebook.pretrained import trained_model_path
from alexnet_edu.profiles import runs_dir
print(json.dumps({"package": alexnet_edu.__file__, "runs": str(runs_dir()),
                  "shown": settings.shown_path(runs_dir() / "fashion-mnist"),
                  "data": str(settings.data_root()),
                  "model": settings.shown_path(trained_model_path("fashion-mnist")),
                  "photos": len(sample_photos())}))
"""


def test_installed_package_keeps_runs_and_data_in_the_working_folder(installed, tmp_path):
    content = tmp_path / "content"          # Colab's working folder
    content.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALEXNET_EDU_")}
    env.update(PYTHONPATH=str(installed), ALEXNET_EDU_PROFILE="cpu")
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=content, env=env,
                          capture_output=True, text=True, check=True)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(found["package"]).resolve().is_relative_to(installed.resolve())
    assert Path(found["runs"]) == content.resolve() / "runs" / "cpu"
    assert Path(found["data"]) == content.resolve() / "data"
    # what a notebook prints is where the files are, relative to the working folder
    assert found["shown"] == "runs/cpu/fashion-mnist"
    assert found["model"] == "runs/cpu/fashion-mnist/best.pt"
    assert found["photos"] == 6              # the sample photos were installed with the package
