"""The release tool (alexnet_edu.course.release) on small synthetic notebooks, and the exercise
convention on the real ones: >= 3 exercises per notebook, each followed by a check cell."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from alexnet_edu.course import release as assignments
from alexnet_edu.course.release import NotebookError, release, scan_notebook

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))

SOLVED_FUNCTION = """def conv_size(n, k, s, p=0):
    \"\"\"Output size of a convolution.\"\"\"
    ### BEGIN SOLUTION
    return (n - k + 2 * p) // s + 1
    ### END SOLUTION

answer = conv_size(227, 11, 4)"""

CHECK = """from alexnet_edu.notebook.checks import check_equal
check_equal("conv1 output size", answer, 55)
### BEGIN HIDDEN TESTS
check_equal("conv2", conv_size(27, 5, 1, 2), 27)
### END HIDDEN TESTS"""


def write(nb: nbformat.NotebookNode, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def solution_notebook() -> nbformat.NotebookNode:
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"},
                                "custom": {"ünïcode": "kept"}})
    setup = new_code_cell("import math\nprint('set-up')", metadata={"tags": ["setup"]},
                          execution_count=7)
    setup.outputs = [new_output("stream", name="stdout", text="set-up\n")]
    nb.cells = [
        new_markdown_cell("# 01 · Title\n\nSome **prose** with maths $\\frac{a}{b}$ — é"),
        setup,
        new_markdown_cell("## Exercises\n\n### Exercise 1 · The size of conv1"),
        new_code_cell(SOLVED_FUNCTION, execution_count=8),
        new_code_cell(CHECK, execution_count=9),
        new_markdown_cell("### Exercise 2 · Why overlap?\n\n### BEGIN SOLUTION\n"
                          "Because the paper says so (§3.4).\n### END SOLUTION\n\nThanks."),
        new_code_cell("  ### BEGIN SOLUTION\n  x = 1\n  ### END SOLUTION"),
    ]
    return nb


def test_release_replaces_solutions_keeping_indentation_and_everything_else(tmp_path):
    src = write(solution_notebook(), tmp_path / "nbs" / "01_demo.ipynb")
    out = tmp_path / "release"
    written = release(src.parent, out)
    assert written == [out / "01_demo.ipynb"]
    before = json.loads(src.read_text(encoding="utf-8"))
    after = json.loads((out / "01_demo.ipynb").read_text(encoding="utf-8"))
    code = "".join(after["cells"][3]["source"])
    assert code == ('def conv_size(n, k, s, p=0):\n    """Output size of a convolution."""\n'
                    "    # YOUR CODE HERE\n    raise NotImplementedError()\n\n"
                    "answer = conv_size(227, 11, 4)")
    compile(code, "released", "exec")  # the function body is still valid Python
    assert "".join(after["cells"][4]["source"]) == (
        'from alexnet_edu.notebook.checks import check_equal\n'
        'check_equal("conv1 output size", answer, 55)')
    assert "".join(after["cells"][5]["source"]) == (
        "### Exercise 2 · Why overlap?\n\nYOUR ANSWER HERE\n\nThanks.")
    assert "".join(after["cells"][6]["source"]) == (
        "  # YOUR CODE HERE\n  raise NotImplementedError()")
    for cell in after["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
    # everything else untouched: notebook metadata, cell metadata and ids, untouched sources
    assert after["metadata"] == before["metadata"]
    assert [c.get("id") for c in after["cells"]] == [c.get("id") for c in before["cells"]]
    assert [c["metadata"] for c in after["cells"]] == [c["metadata"] for c in before["cells"]]
    for i in (0, 1, 2):
        assert after["cells"][i]["source"] == before["cells"][i]["source"]
    nbformat.validate(nbformat.reads((out / "01_demo.ipynb").read_text("utf-8"), as_version=4))
    # the solution notebook itself is not modified
    assert json.loads(src.read_text(encoding="utf-8")) == before


def test_notebook_without_solutions_round_trips_byte_identically(tmp_path):
    nb = solution_notebook()
    nb.cells = [c for i, c in enumerate(nb.cells) if i in (0, 2)]
    nb.cells.append(new_code_cell("x = {'a': 'ü', 'b': [1.5, None]}\n\n"))
    nb.cells.append(new_code_cell(""))
    src = write(nb, tmp_path / "nbs" / "02_plain.ipynb")
    release(src, tmp_path / "out")
    assert (tmp_path / "out" / "02_plain.ipynb").read_bytes() == src.read_bytes()


def test_released_cells_keep_string_sources_as_strings(tmp_path):
    # notebooks written by other tools may store a source as one string: keep that form
    src = write(solution_notebook(), tmp_path / "01_demo.ipynb")
    raw = json.loads(src.read_text(encoding="utf-8"))
    raw["cells"][3]["source"] = "".join(raw["cells"][3]["source"])
    src.write_text(json.dumps(raw, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    release(src, tmp_path / "out")
    after = json.loads((tmp_path / "out" / "01_demo.ipynb").read_text(encoding="utf-8"))
    assert isinstance(after["cells"][3]["source"], str)
    assert "raise NotImplementedError()" in after["cells"][3]["source"]


@pytest.mark.parametrize("source, cell, words", [
    ("### BEGIN SOLUTION\nx = 1", 3, ["'### BEGIN SOLUTION' on line 1", "no '### END SOLUTION'"]),
    ("x = 1\n### END SOLUTION", 3, ["'### END SOLUTION' on line 2", "no '### BEGIN SOLUTION'"]),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n### END SOLUTION", 3,
     ["nested", "line 2", "line 1"]),
    ("### BEGIN SOLUTION\n### BEGIN HIDDEN TESTS\n### END HIDDEN TESTS\n### END SOLUTION", 3,
     ["nested", "'### BEGIN HIDDEN TESTS' on line 2"]),
    ("### BEGIN HIDDEN TESTS\nx = 1\n### END SOLUTION", 3, ["does not match"]),
    ("x = 1  # BEGIN SOLUTION", 3, ["not a marker", "'### BEGIN SOLUTION'"]),
])
def test_bad_markers_name_file_and_cell_and_write_nothing(tmp_path, source, cell, words):
    good = write(solution_notebook(), tmp_path / "nbs" / "01_good.ipynb")
    nb = solution_notebook()
    nb.cells[cell].source = source
    bad = write(nb, tmp_path / "nbs" / "02_bad.ipynb")
    out = tmp_path / "release"
    with pytest.raises(NotebookError) as err:
        release([good, bad], out)
    message = str(err.value)
    assert str(bad) in message and f"cell {cell} " in message
    for word in words:
        assert word in message
    assert not out.exists()  # the good notebook was not written either


@pytest.mark.parametrize("marker", [
    "### begin solution", "### BEGIN SOLUTON", "###BEGIN SOLUTION", "### BEGINSOLUTION",
    "## BEGIN SOLUTION", "### Begin Solution", "#### BEGIN SOLUTION", "### BEGN SOLUTION",
])
@pytest.mark.parametrize("cell", [3, 5])   # a code answer and a written (markdown) one
def test_near_miss_markers_are_errors_for_release_and_check(tmp_path, capsys, marker, cell):
    """Issue 30, item 8: a mistyped marker used to release the answer (exit 0) and `check`
    counted one exercise fewer. Both now stop, naming the notebook, the cell and the line."""
    nb = solution_notebook()
    answer = "### END SOLUTION" if cell == 3 else "### END SOLUTION\n\nThanks."
    nb.cells[cell].source = (f"def f():\n    {marker}\n    return 42\n    {answer}" if cell == 3
                             else f"{marker}\nThe secret answer (§3.4).\n{answer}")
    bad = write(nb, tmp_path / "nbs" / "01_demo.ipynb")
    for command in (["release", str(bad.parent), "--out", str(tmp_path / "release")],
                    ["check", str(bad.parent)]):
        code, out, err = run_cli(capsys, *command)
        assert code == 2, out
        assert str(bad) in err and f"cell {cell} " in err
        assert ("line 2" if cell == 3 else "line 1") in err
        assert "is not a marker, though it looks like one" in err and (
            "'### BEGIN SOLUTION'" in err or "'### END SOLUTION'" in err)
    assert not (tmp_path / "release").exists()


@pytest.mark.parametrize("line", ["# the end of the solution", "def end(solution):",
                                  "x = begin + 1  # hidden layer size",
                                  "# at the end hidden units are pruned"])
def test_ordinary_lines_are_not_taken_for_markers(tmp_path, line):
    nb = solution_notebook()
    nb.cells[6].source = f"{line}\n    pass\n" if line.startswith("def") else line
    (released,) = release(write(nb, tmp_path / "01_demo.ipynb"), tmp_path / "out")
    assert "".join(json.loads(released.read_text())["cells"][6]["source"]) == nb.cells[6].source


@pytest.mark.parametrize("line", ["An end-to-end solution: begin solution, end solution.",
                                  "## The end: a solution in three parts"])
def test_markdown_prose_is_not_taken_for_a_marker(tmp_path, line):
    """Only a short `#` line of its own can be a mistyped marker: prose that happens to hold
    'end solution' was refused by release and check."""
    nb = solution_notebook()
    nb.cells[0].source += f"\n\n{line}"
    (released,) = release(write(nb, tmp_path / "01_demo.ipynb"), tmp_path / "out")
    assert "".join(json.loads(released.read_text())["cells"][0]["source"]) == nb.cells[0].source


def test_error_leaves_an_existing_output_folder_unchanged(tmp_path):
    out = tmp_path / "release"
    out.mkdir()
    (out / "01_good.ipynb").write_text("old", encoding="utf-8")
    good = write(solution_notebook(), tmp_path / "nbs" / "01_good.ipynb")
    (tmp_path / "nbs" / "02_broken.ipynb").write_text('{"cells": [', encoding="utf-8")
    with pytest.raises(NotebookError, match="02_broken.ipynb: not a notebook .invalid JSON"):
        release(good.parent, out)
    assert sorted(p.name for p in out.iterdir()) == ["01_good.ipynb"]
    assert (out / "01_good.ipynb").read_text(encoding="utf-8") == "old"
    # and with valid input the existing file is replaced (atomically, no temp files left)
    (tmp_path / "nbs" / "02_broken.ipynb").unlink()
    release(good.parent, out)
    assert sorted(p.name for p in out.iterdir()) == ["01_good.ipynb"]
    assert "YOUR CODE HERE" in (out / "01_good.ipynb").read_text(encoding="utf-8")


@pytest.mark.parametrize("name, content, words", [
    ("notes.txt", "hello", "not a notebook (expected a .ipynb file)"),
    ("x.ipynb", "[1, 2]", "not a notebook (no list of 'cells'"),
    ("x.ipynb", '{"cells": [], "nbformat": 3}', "nbformat 3 is not supported"),
    ("x.ipynb", '{"cells": [{"source": "x"}], "nbformat": 4}', "cell 0: not a notebook cell"),
])
def test_non_notebook_files_are_refused_clearly(tmp_path, name, content, words):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(NotebookError) as err:
        release(path, tmp_path / "out")
    assert str(path) in str(err.value) and words in str(err.value)
    assert not (tmp_path / "out").exists()


def test_release_refuses_to_overwrite_the_solutions(tmp_path):
    src = write(solution_notebook(), tmp_path / "nbs" / "01_demo.ipynb")
    before = src.read_bytes()
    with pytest.raises(NotebookError, match="would overwrite"):
        release(src.parent, src.parent)
    assert src.read_bytes() == before


def test_released_files_are_readable_by_students(tmp_path):
    """A course folder is shared: the files and the folder must be readable by others (umask
    022), not private to the instructor as a temporary file would be."""
    src = write(solution_notebook(), tmp_path / "nbs" / "01_demo.ipynb")
    old = os.umask(0o022)
    try:
        (released,) = release(src, tmp_path / "course" / "release")
    finally:
        os.umask(old)
    assert stat.S_IMODE(released.stat().st_mode) == 0o644
    assert stat.S_IMODE(released.parent.stat().st_mode) == 0o755


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """The command line in this process (fast); one test below runs the real `python -m`."""
    code = assignments.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_release_and_check(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(solution_notebook(), tmp_path / "notebooks" / "01_demo.ipynb")
    code, out, err = run_cli(capsys, "release", "notebooks/", "--out", "release/")
    assert code == 0, err
    assert "released 1 notebook(s)" in out
    assert (tmp_path / "release" / "01_demo.ipynb").is_file()
    # check: lists the exercises; 2 code exercises < 3 and one without a check cell -> exit 1
    code, out, err = run_cli(capsys, "check", "notebooks/")
    assert code == 1
    assert "cell   3  Exercise 1 · The size of conv1" in out
    assert "checked in cell 4, 1 hidden test region(s)" in out
    assert "written answer" in out
    assert "at least 3 are expected" in out
    assert "the exercise in cell 6" in out and "no check cell" in out
    assert run_cli(capsys, "check", "notebooks/", "--min-exercises", "0")[0] == 1


@pytest.mark.parametrize("make_bad", ["markers", "not-a-notebook", "missing"])
def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys, monkeypatch, make_bad):
    monkeypatch.chdir(tmp_path)
    nb = solution_notebook()
    if make_bad == "markers":
        nb.cells[3].source = "### BEGIN SOLUTION\nx = 1"
    write(nb, tmp_path / "notebooks" / "01_demo.ipynb")
    if make_bad == "not-a-notebook":
        (tmp_path / "notebooks" / "02_x.ipynb").write_bytes(b"\x89PNG\r\n")
    target = "nowhere/" if make_bad == "missing" else "notebooks/"
    for command in (["release", target, "--out", "release/"], ["check", target]):
        code, _, err = run_cli(capsys, *command)
        assert code == 2
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ")
    assert not (tmp_path / "release").exists()


def test_python_dash_m_reports_bad_input_without_traceback(tmp_path):
    nb = solution_notebook()
    nb.cells[4].source = "### END HIDDEN TESTS"
    write(nb, tmp_path / "notebooks" / "01_demo.ipynb")
    done = subprocess.run([sys.executable, "-m", "alexnet_edu.course.release", "release",
                           "notebooks/", "--out", "release/"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: notebooks/01_demo.ipynb: cell 4 (code")
    assert "'### END HIDDEN TESTS' on line 1 has no '### BEGIN HIDDEN TESTS'" in done.stderr
    assert not (tmp_path / "release").exists()


def test_scan_pairs_exercises_with_check_cells(tmp_path):
    nb = solution_notebook()
    nb.cells[6].source = "def g():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION"
    nb.cells.append(new_markdown_cell("Run the check:"))
    nb.cells.append(new_code_cell("check_equal('g', g(), 1)"))
    scan = scan_notebook(write(nb, tmp_path / "01_demo.ipynb"))
    assert [(e.cell, e.check_cells, e.hidden_tests) for e in scan.exercises] == [
        (3, [4], 1), (6, [8], 0)]
    assert [r.cell for r in scan.written_answers] == [5]
    assert assignments.convention_problems(scan, min_exercises=2) == []
    problems = assignments.convention_problems(scan, min_exercises=3)
    assert len(problems) == 1 and "2 exercise(s)" in problems[0]
    # a check that only exists inside hidden tests is not a visible check
    nb.cells[8].source = "### BEGIN HIDDEN TESTS\ncheck_equal('g', g(), 1)\n### END HIDDEN TESTS"
    scan = scan_notebook(write(nb, tmp_path / "01_demo.ipynb"))
    assert scan.exercises[1].check_cells == [] and scan.exercises[1].hidden_cells == [8]


# ------------------------------------------------------------- the project's own notebooks


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_has_three_checked_exercises(notebook):
    scan = scan_notebook(notebook)  # also validates the markers
    problems = assignments.convention_problems(scan, min_exercises=3)
    assert not problems, f"{notebook.name}: " + "; ".join(problems)
