"""The notebooks are stored with the outputs of a real run (tools/run_notebooks.py, `cpu`
profile), and no stored output is older than its cell's source: every code cell with outputs
carries the hash of the source that produced them."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import run_notebooks  # noqa: E402

from alexnet_edu import files  # noqa: E402
from alexnet_edu.checkpoint import start_run  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_outputs_are_from_a_real_run_and_not_stale(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    stale = run_notebooks.stale_cells(nb)
    assert not stale, (f"{path.name}: cells {stale} changed after their output was stored; "
                       f"run python tools/run_notebooks.py {path.name[:2]}")
    assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
        f"{path.name} is stored without outputs; run python tools/run_notebooks.py")
    assert nb.metadata.get("alexnet_edu", {}).get("profile") in ("cpu", "full")
    assert run_notebooks.problems(nb) == []


def test_editing_a_cells_source_makes_its_output_stale() -> None:
    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.outputs)
    edited = copy.deepcopy(nb)
    assert index not in run_notebooks.stale_cells(edited)
    edited.cells[index].source += "\nprint('changed')"
    assert run_notebooks.stale_cells(edited) == [index]
    edited.cells[index].metadata.pop("alexnet_edu")   # an output never stamped is stale too
    assert run_notebooks.stale_cells(edited) == [index]


def test_output_of_a_run_that_replaces_an_earlier_one_is_refused(tmp_path, monkeypatch, capsys):
    """Stored outputs show a student's first run: train.fit's own notice that it starts over an
    earlier run's checkpoints (the words it prints, not a copy of them) is refused."""
    monkeypatch.setattr(files, "PROJECT_ROOT", tmp_path)        # paths shown repo-relative
    run_dir = tmp_path / "runs" / "cpu" / "fashion-mnist"

    def start() -> str:   # fit's first step; a new run touches no model or optimizer
        assert start_run(run_dir, False, None, None, None, None, None, None) == (0, [])
        return capsys.readouterr().out

    assert start() == ""                                         # a first run says nothing
    (run_dir / "last.pt").write_bytes(b"")                       # an earlier run's checkpoint
    printed = start()
    assert printed.startswith("Starting a new run: runs/cpu/fashion-mnist/last.pt")  # no local path
    cell = nbformat.v4.new_code_cell("history = train.fit(...)")
    cell.outputs = [nbformat.v4.new_output("stream", text=printed)]
    assert run_notebooks.problems(nbformat.v4.new_notebook(cells=[cell]))


def test_smoke_errors_and_local_paths_are_refused() -> None:
    cell = nbformat.v4.new_code_cell("print(1)")
    nb = nbformat.v4.new_notebook(cells=[cell])
    cell.outputs = [nbformat.v4.new_output("stream", text="Smoke mode: 300 images\n")]
    assert run_notebooks.problems(nb)
    cell.outputs = [nbformat.v4.new_output("stream", text="saved /home/ann/runs/best.pt\n")]
    assert run_notebooks.problems(nb)
    cell.outputs = [nbformat.v4.new_output("stream", text="saved C:\\Users\\ann\\runs\\best.pt\n")]
    assert run_notebooks.problems(nb)                            # a Windows home folder too
    cell.outputs = [nbformat.v4.new_output("stream", text=repr(["c:\\users\\ann"]) + "\n")]
    assert run_notebooks.problems(nb)                            # and its repr, in a list
    cell.outputs = [nbformat.v4.new_output("error", ename="ValueError", evalue="x", traceback=[])]
    assert run_notebooks.problems(nb)
    bar = {"text/plain": "training:   0%|          | 0/870 [00:00<?, ?batch/s]",
           "application/vnd.jupyter.widget-view+json": {"model_id": "a1", "version_major": 2}}
    cell.outputs = [nbformat.v4.new_output("display_data", data=bar)]   # frozen at 0 %
    assert run_notebooks.problems(nb)
    viewer = dict(bar, **{"text/plain": "VBox(children=(HBox(children=(Dropdown(..."})
    cell.outputs = [nbformat.v4.new_output("display_data", data=viewer),   # a widget is fine
                    nbformat.v4.new_output("stream", text="test accuracy 86.1 %\n")]
    assert run_notebooks.problems(nb) == []


def test_notebooks_are_chosen_by_number_or_name():
    paths = sorted(run_notebooks.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    names = [p.name[:2] for p in run_notebooks.select(paths, ["1", "04"])]
    assert names == ["01", "04"]                                  # not 10 and 11 for "1"
    assert run_notebooks.select(paths, ["04_train_fashion_mnist.ipynb"]) == [paths[3]]
    assert run_notebooks.select(paths, ["notebooks/04_train_fashion_mnist.ipynb"]) == [paths[3]]
    assert run_notebooks.select(paths, []) == paths
    with pytest.raises(SystemExit, match="no notebook 4x"):
        run_notebooks.select(paths, ["4x"])
