"""The student side of every notebook: released (solutions stripped), it runs without error up to
its first exercise, and raises NotImplementedError there - not earlier.

The solution side is nbval's run of notebooks/ (pyproject.toml). Here each released notebook runs
in one kernel of this environment (smoke mode, tests/conftest.py), with cwd = the repository's
notebooks/ folder so relative paths behave as they do there, cell by cell, and stops at the first
error or right after the first exercise's check cell: the exercises themselves never run twice.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from alexnet_edu.course.release import release, scan_notebook

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
CELL_TIMEOUT_S = 900  # as nbval's --nbval-cell-timeout (pyproject.toml)


@dataclass
class Outcome:
    """Where the run stopped: the cell of the first error (None: no error) and what it was."""

    error_cell: int | None
    ename: str = ""
    evalue: str = ""
    ran: int = 0  # code cells executed
    kernel_left_running: bool = False


def _current_env_kernel():
    """An AsyncKernelManager whose kernel is `sys.executable -m ipykernel_launcher`: this very
    environment, whatever kernelspecs the machine has (as nbval's --nbval-current-env)."""
    from ipykernel.kernelspec import RESOURCES, get_kernel_dict
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    class CurrentEnv(KernelSpecManager):
        def get_kernel_spec(self, kernel_name):
            return self.kernel_spec_class(resource_dir=RESOURCES, **get_kernel_dict())

    return AsyncKernelManager(kernel_name="alexnet-edu-current-env",
                              kernel_spec_manager=CurrentEnv())


def run_until(path: Path, last_cell: int, cwd: Path) -> Outcome:
    """Execute the code cells of the notebook at `path` up to and including `last_cell` in one
    fresh kernel, stopping at the first error."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    km = _current_env_kernel()
    client = NotebookClient(nb, km=km, timeout=CELL_TIMEOUT_S, shutdown_kernel="immediate",
                            resources={"metadata": {"path": str(cwd)}})
    outcome = Outcome(None)
    # cleanup_kc: nbclient keeps a kernel it did not create alive unless told otherwise
    with client.setup_kernel(cleanup_kc=True):
        for index, cell in enumerate(nb.cells[: last_cell + 1]):
            if cell.cell_type != "code":
                continue
            outcome.ran += 1
            try:
                client.execute_cell(cell, index)
            except CellExecutionError as err:
                outcome.error_cell, outcome.ename, outcome.evalue = index, err.ename, err.evalue
                break
    outcome.kernel_left_running = km.has_kernel
    return outcome


def check_released(solution: Path, out: Path, cwd: Path) -> Outcome:
    """Release `solution` into `out`, run it up to its first exercise, and assert the first
    error is the NotImplementedError of that exercise (in its cell, or in its check cell when
    the solution sits inside a function that the check calls)."""
    scan = scan_notebook(solution)
    assert scan.exercises, f"{solution.name}: no exercise (### BEGIN SOLUTION in a code cell)"
    first = scan.exercises[0]
    last = first.check_cells[0] if first.check_cells else first.cell
    (released,) = release(solution, out)
    outcome = run_until(released, last, cwd)
    cells = nbformat.read(released, as_version=4).cells

    def where(i: int) -> str:
        head = cells[i].source.strip().split("\n")[0][:60]
        return f"cell {i} ({head!r})"

    assert outcome.error_cell is not None, (
        f"{solution.name}: the released notebook ran through its first exercise "
        f"({where(first.cell)}) and its check without raising NotImplementedError")
    assert outcome.error_cell >= first.cell, (
        f"{solution.name}: the released notebook fails before its first exercise "
        f"({where(first.cell)}): {where(outcome.error_cell)} raised {outcome.ename}: "
        f"{outcome.evalue}")
    assert outcome.ename == "NotImplementedError", (
        f"{solution.name}: expected NotImplementedError at the first exercise "
        f"({where(first.cell)}), got {outcome.ename}: {outcome.evalue} in "
        f"{where(outcome.error_cell)}")
    return outcome


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_released_notebook_runs_up_to_its_first_exercise(notebook, tmp_path):
    check_released(notebook, tmp_path / "release", cwd=NOTEBOOK_DIR)


# ---------------------------------------------------- the harness itself, on small notebooks


def _notebook(*sources: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 00 · Test")]
    nb.cells += [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


SETUP = "import os\nassert os.environ['ALEXNET_EDU_SMOKE'] == '1'\nopen('marker.txt').read()"
EXERCISE = "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION"
CHECK = "from alexnet_edu.notebook.checks import check_equal\ncheck_equal('f', f(1), 1)"
LATER = "raise ValueError('cells after the first exercise must not run')"


@pytest.fixture
def workdir(tmp_path) -> Path:
    (tmp_path / "marker.txt").write_text("relative paths resolve against cwd")
    return tmp_path


def test_harness_accepts_a_good_notebook_and_stops_at_the_exercise(workdir, tmp_path):
    src = tmp_path / "src" / "00_good.ipynb"
    src.parent.mkdir()
    nbformat.write(_notebook(SETUP, "x = 1", EXERCISE, CHECK,
                             "### BEGIN SOLUTION\ny = 2\n### END SOLUTION", LATER), src)
    outcome = check_released(src, tmp_path / "out", cwd=workdir)
    # the function-body stub raises when the check cell calls it; nothing later ran
    assert (outcome.error_cell, outcome.ran) == (4, 4)
    assert not outcome.kernel_left_running
    assert (tmp_path / "out" / "00_good.ipynb").is_file()
    # the kernel is this environment's Python
    nbformat.write(_notebook(f"import sys\nassert sys.executable == {sys.executable!r}"),
                   tmp_path / "exe.ipynb")
    assert run_until(tmp_path / "exe.ipynb", 1, workdir).error_cell is None


SWALLOWED = ("try:\n    ### BEGIN SOLUTION\n    z = 1\n    ### END SOLUTION\n"
             "except Exception:\n    pass")


@pytest.mark.parametrize("sources, complaint", [
    ((SETUP, "1 / 0", EXERCISE, CHECK), "fails before its first exercise"),
    ((SETUP, EXERCISE, "1 / 0\n" + CHECK), "got ZeroDivisionError"),
    ((SETUP, SWALLOWED,
      "from alexnet_edu.notebook.checks import check_true\ncheck_true('ok', 1, '')"),
     "ran through its first exercise"),
], ids=["error-before", "other-error", "no-error"])
def test_harness_fails_on_broken_released_notebooks(workdir, tmp_path, sources, complaint):
    src = tmp_path / "src" / "00_bad.ipynb"
    src.parent.mkdir()
    nbformat.write(_notebook(*sources), src)
    with pytest.raises(AssertionError, match=complaint):
        check_released(src, tmp_path / "out", cwd=workdir)


# ---------------------------------------------------- an exercise done as its text says

# Notebook 10, exercise 3, answered by following its three numbered steps literally (a student's
# claim text and nothing the steps do not say: the solution once needed a line they did not).
EXERCISE_10_3 = '''init_ablation = experiments.Ablation(
    "init", "Kaiming initialization trains where N(0, 0.01) does not",
    ("kaiming", {"init": "kaiming"}), ("N(0, 0.01)", {"init": "paper"}), measure="val_error",
    section="§5")
new = experiments.run_ablations(splits, config, IMAGE_SIZE, run_root, runs={"N(0, 0.01)":
    {"init": "paper"}}, device=device, keep_checkpoints=False)
histories.update(new)
init_row = experiments.claims_table(histories, len(splits.val), [init_ablation])[0]
'''


def test_notebook_10_exercise_3_is_doable_from_its_text(tmp_path):
    solution = NOTEBOOK_DIR / "10_paper_experiments.ipynb"
    scan = scan_notebook(solution)
    third = next(e for e in scan.exercises if e.title.startswith("Exercise 3"))
    (released,) = release(solution, tmp_path / "release")
    nb = nbformat.read(released, as_version=4)
    solved = nbformat.read(solution, as_version=4)
    for earlier in scan.exercises:   # exercises 1 and 2 as solved; they feed nothing to 3
        if earlier.cell < third.cell:
            nb.cells[earlier.cell].source = solved.cells[earlier.cell].source
    nb.cells[third.cell].source = EXERCISE_10_3
    nbformat.write(nb, released)
    outcome = run_until(released, third.check_cells[0], NOTEBOOK_DIR)
    assert outcome.error_cell is None, (
        f"exercise 3 done as its text says fails in cell {outcome.error_cell}: "
        f"{outcome.ename}: {outcome.evalue}")
