"""The widgets work with ipywidgets 7.7, which Colab ships (and its set-up cell keeps), as well as
with 8 (requirements.txt): in a kernel whose ipywidgets is 7.7.x (installed from PyPI into a
folder put ahead of the environment's), notebook 01's window explorer and the feature-map viewer
are built, every control is changed, and each change must change what is shown."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
PINS = ["ipywidgets==7.7.*", "widgetsnbextension<4", "jupyterlab_widgets<2", "ipython_genutils"]


@pytest.fixture(scope="module")
def widgets7(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ipywidgets7")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                           "--target", str(folder), *PINS], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"could not install ipywidgets 7.7 from PyPI: {done.stderr[-300:]}")
    return folder


def _explorer_source() -> str:
    nb = nbformat.read(ROOT / "notebooks" / "01_shape_arithmetic.ipynb", as_version=4)
    found = [c.source for c in nb.cells if "widgets.interactive(" in c.source]
    assert len(found) == 1, "notebook 01 has one window explorer cell"
    return found[0]


# Output widgets fill their `outputs` from the frontend (here nbclient), which answers only
# once the kernel is idle: so each change is a cell of its own, checked in the next cell.
EXPLORER_START = """
import ipywidgets
assert ipywidgets.__version__.startswith("7.7"), ipywidgets.__version__


def shown():
    return [o.get("data", {}).get("image/png") or o.get("text") for o in explorer.out.outputs]


def slider(name):
    return next(w for w in explorer.kwargs_widgets if w._kwarg == name)


seen = [shown()]
assert seen[0] and seen[0][0], f"the explorer shows nothing: {explorer.out.outputs}"
"""
EXPLORER_CHANGES = [("size", 20), ("kernel", 5), ("stride", 3), ("padding", 2)]
EXPLORER_CHECK = """
seen.append(shown())
assert seen[-1] != seen[-2], "changing {name} changed nothing"
print("{name} ok")
"""

CHECK_VIEWER = """
import torch
from alexnet_edu.model import AlexNet
from alexnet_edu.notebook.widgets import FeatureMapViewer

torch.manual_seed(0)
model = AlexNet(num_classes=10, in_channels=3, image_size=67).eval()
viewer = FeatureMapViewer(model, torch.rand(3, 3, 67, 67), titles=["a", "b", "c"])
shown = [viewer.image.value]

def changed(what):
    assert viewer.image.value != shown[-1], f"changing {what} changed nothing"
    shown.append(viewer.image.value)

viewer.image_picker.value = 1
changed("the image")
viewer.layer.value = "conv2"
changed("the layer")
viewer.channel.value = (viewer.channel.value + 1) % (viewer.channel.max + 1)
changed("the channel")
other = next(c for _, c in viewer.top_channels.options if c != viewer.channel.value)
viewer.top_channels.value = other
changed("the top-channel menu")
assert viewer.channel.value == other
bundle = viewer._repr_mimebundle_()
assert "application/vnd.jupyter.widget-view+json" in bundle and bundle["image/png"]
print("viewer ok")
"""


def test_explorer_and_viewer_work_with_ipywidgets_7(widgets7, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(widgets7)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    cells = ["from alexnet_edu.notebook import viz", _explorer_source(), EXPLORER_START]
    for name, value in EXPLORER_CHANGES:
        cells += [f"slider({name!r}).value = {value}", EXPLORER_CHECK.format(name=name)]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c)
                                         for c in cells + [CHECK_VIEWER]])
    NotebookClient(nb, timeout=600, kernel_name="python3").execute()
    said = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert all(f"{name} ok" in said for name, _ in EXPLORER_CHANGES) and "viewer ok" in said
