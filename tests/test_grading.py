"""The grading command on real released notebooks: right answers pass, wrong ones fail with the
check's message, the solution's checks decide (hidden tests included: a student's edits to a
check cell do not count), a cell that runs too long is interrupted and the rest still runs, a
missing notebook fails. Runs notebook 01 in smoke mode, sandboxed (skips without bubblewrap);
the attacks of issue 30 are in test_grading_attacks.py."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from test_grading_attacks import notebook

from alexnet_edu.course import sandbox
from alexnet_edu.course.grading import main
from alexnet_edu.course.release import release

SANDBOX = sandbox.available()
pytestmark = pytest.mark.skipif(SANDBOX is not None, reason=f"no sandbox here: {SANDBOX}")

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = ROOT / "notebooks" / "01_shape_arithmetic.ipynb"


def _answer(nb: dict, cell_id: str, source: str) -> None:
    (cell,) = [c for c in nb["cells"] if c.get("id") == cell_id]
    cell["source"] = source


def _cell_id(nb: dict, starts: str) -> str:
    return next(c["id"] for c in nb["cells"] if "".join(c["source"]).startswith(starts))


def _released(tmp_path: Path, cells: list[tuple[str, str]]) -> tuple[Path, dict]:
    """A solution notebook of `cells` in tmp_path/solutions, and its released (student) form."""
    solution = tmp_path / "solutions" / "ex.ipynb"
    solution.parent.mkdir()
    solution.write_text(json.dumps(notebook(cells)))
    (released,) = release(solution, tmp_path / "release")
    return solution, json.loads(released.read_text())


def _grade(solution: Path, submissions: Path, out: Path) -> list[dict]:
    """The grader's rows for every submission, with a 60 s cell timeout."""
    assert main([str(solution.parent), str(submissions), "--out", str(out),
                 "--timeout", "60"]) == 0
    return list(csv.DictReader(out.open()))


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict[tuple[str, str], tuple[bool, str]]:
    tmp = tmp_path_factory.mktemp("grading")
    (released,) = release(SOLUTION, tmp / "release")
    student = json.loads(released.read_text())
    solution = json.loads(SOLUTION.read_text())
    answers = {c["id"]: c["source"] for c in solution["cells"]}
    ex1, ex2, ex3, ex4 = [c["id"] for c in student["cells"] if c["cell_type"] == "code"
                          and "raise NotImplementedError()" in "".join(c["source"])]

    # ada: every answer right, except that alexnet_chain(66) returns [] instead of raising and
    # she wrote down the smallest input (the visible checks pass; a hidden test catches it);
    # she also deleted exercise 1's check call (it is put back)
    ada = json.loads(json.dumps(student))
    for cell_id in (ex1, ex2, ex3, ex4):
        _answer(ada, cell_id, answers[cell_id])
    chain = "".join(answers[ex4]).replace(
        '            raise ValueError(f"a window of {k} does not fit in {w} + 2*{p} pixels")',
        "            return []")
    _answer(ada, ex4, chain[:chain.index("### BEGIN SOLUTION\nsmallest_input")]
            + "smallest_input = 67\n")
    check1 = _cell_id(ada, "from alexnet_edu.notebook import checks")
    _answer(ada, check1, "from alexnet_edu.notebook import checks\n")
    # bob: exercise 1 wrong, exercise 2 never finishes, the rest not answered
    bob = json.loads(json.dumps(student))
    _answer(bob, ex1, "conv2_out = 26\n")
    _answer(bob, ex2, "import time\ntime.sleep(600)\n")
    # dee: ada's notebook as Colab saves it, without cell ids (nbformat 4.4): matched by the
    # names each answer defines
    dee = json.loads(json.dumps(ada))
    dee["nbformat_minor"] = 4
    for cell in dee["cells"]:
        del cell["id"]
    for name, nb in (("ada", ada), ("bob", bob), ("dee", dee)):
        (tmp / "submissions" / name).mkdir(parents=True)
        (tmp / "submissions" / name / SOLUTION.name).write_text(json.dumps(nb))
    (tmp / "submissions" / "cy").mkdir()          # handed nothing in
    out = tmp / "grades.csv"
    assert main([str(SOLUTION), str(tmp / "submissions"), "--out", str(out),
                 "--timeout", "30"]) == 0
    rows = list(csv.DictReader(out.open()))
    return {(r["student"], r["exercise"].split(":")[0]): (r["passed"] == "1", r["message"])
            for r in rows}


def test_right_answers_pass_and_checks_cannot_be_edited_away(graded):
    assert graded[("ada", "Exercise 1 (easy)")] == (True, "")
    assert graded[("ada", "Exercise 2 (easy)")] == (True, "")
    assert graded[("ada", "Exercise 3 (medium)")] == (True, "")


def test_a_notebook_saved_without_cell_ids_is_graded_as_with_them(graded):
    assert [graded[("dee", f"Exercise {n}")] for n in ("1 (easy)", "2 (easy)", "3 (medium)",
                                                        "4 (hard)")] == [
        graded[("ada", f"Exercise {n}")] for n in ("1 (easy)", "2 (easy)", "3 (medium)",
                                                    "4 (hard)")]


def test_hidden_tests_are_put_back(graded):
    passed, message = graded[("ada", "Exercise 4 (hard)")]
    assert not passed and "alexnet_chain(66) should raise ValueError" in message


def test_wrong_slow_and_missing_answers_fail_with_a_reason(graded):
    passed, message = graded[("bob", "Exercise 1 (easy)")]
    assert not passed and "conv2 output size: expected 27, got 26" in message
    assert graded[("bob", "Exercise 2 (easy)")] == (False, "timed out: a cell ran longer than 30 s")
    assert graded[("bob", "Exercise 3 (medium)")] == (
        False, "not answered (the answer still raises NotImplementedError)")
    assert {graded[("cy", f"Exercise {n}")] for n in ("1 (easy)", "4 (hard)")} == {
        (False, "not handed in")}
    assert len(graded) == 4 * 4


def test_function_stubs_hidden_only_checks_and_hidden_folders(tmp_path, capsys):
    """A function whose body still raises NotImplementedError (raised when the check calls it)
    is 'not (fully) answered'; a check cell made only of hidden tests is put back and run (also
    where the student deleted it, as it is released empty); a hidden
    folder (.ipynb_checkpoints) is not a student; a missing submissions folder is one line."""
    solution, student = _released(tmp_path, [
        ("markdown", "### Exercise 1 (easy)\n**Define:** `double`"),
        ("code", "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION"),
        ("code", "from alexnet_edu.notebook.checks import check_equal\n"
                 "check_equal('double(2)', double(2), 4)"),
        ("markdown", "### Exercise 2 (easy)\n**Define:** `triple`"),
        ("code", "### BEGIN SOLUTION\ntriple = 3\n### END SOLUTION"),
        ("code", "### BEGIN HIDDEN TESTS\nfrom alexnet_edu.notebook.checks import check_equal\n"
                 "check_equal('triple', triple, 3)\n### END HIDDEN TESTS"),
    ])
    assert "HIDDEN" not in "".join(student["cells"][5]["source"])
    submissions = tmp_path / "submissions"
    for name in ("ann", ".ipynb_checkpoints"):
        (submissions / name).mkdir(parents=True)
        (submissions / name / "ex.ipynb").write_text(json.dumps(student))
    ben = json.loads(json.dumps(student))
    _answer(ben, "cell1", "def double(x):\n    return 2 * x\n")
    _answer(ben, "cell4", "triple = 4\n")
    ben["cells"] = [c for c in ben["cells"] if c["id"] != "cell5"]   # the empty cell, deleted
    (submissions / "ben").mkdir()
    (submissions / "ben" / "ex.ipynb").write_text(json.dumps(ben))
    out = tmp_path / "grades.csv"
    rows = {(r["student"], r["exercise"].split(":")[0].strip()): (r["passed"], r["message"])
            for r in _grade(solution, submissions, out)}
    assert rows == {("ann", "Exercise 1 (easy)"): (
                        "0", "not (fully) answered: a function its check calls still raises "
                             "NotImplementedError"),
                    ("ann", "Exercise 2 (easy)"): (
                        "0", "not answered (the answer still raises NotImplementedError)"),
                    ("ben", "Exercise 1 (easy)"): ("1", ""),
                    ("ben", "Exercise 2 (easy)"): ("0", "CheckFailed: triple: expected 3, got 4")}
    capsys.readouterr()
    assert main([str(solution.parent), str(tmp_path / "nobody"), "--out", str(out)]) == 2
    assert "nobody: no such folder" in capsys.readouterr().err


def test_an_answer_keeps_its_own_names_and_the_checks_keep_the_notebooks(tmp_path):
    """Exercise 1: the answer binds a name the notebook also has (`import math as m` beside
    `m = 3`): the student's function sees the student's `m`, as in their own kernel, and the
    check after it still sees the notebook's `m`. Exercise 2: no such clash, and the function
    reads the kernel live (`scale`, set in the check cell, is read when it runs)."""
    solution, student = _released(tmp_path, [
        ("code", "m = 3\nscale = 1"),
        ("markdown", "### Exercise 1 (easy)\n**Define:** `area`"),
        ("code", "### BEGIN SOLUTION\nimport math\n\n\ndef area(r):\n"
                 "    return math.pi * r * r\n### END SOLUTION"),
        ("code", "from alexnet_edu.notebook.checks import check_equal\n"
                 "check_equal('area(1)', round(area(1), 4), 3.1416)\n"
                 "check_equal('m', m, 3)"),
        ("markdown", "### Exercise 2 (easy)\n**Define:** `scaled`"),
        ("code", "def scaled(r):\n    ### BEGIN SOLUTION\n    return scale * r\n"
                 "    ### END SOLUTION"),
        ("code", "from alexnet_edu.notebook.checks import check_equal\nscale = 2\n"
                 "check_equal('scaled(3)', scaled(3), 6)"),
    ])
    eve = json.loads(json.dumps(student))
    _answer(eve, "cell2", "import math as m\n\n\ndef area(r):\n    return m.pi * r * r\n")
    _answer(eve, "cell5", "def scaled(r):\n    return scale * r\n")
    (tmp_path / "submissions" / "eve").mkdir(parents=True)
    (tmp_path / "submissions" / "eve" / "ex.ipynb").write_text(json.dumps(eve))
    rows = [(r["student"], r["passed"], r["message"])
            for r in _grade(solution, tmp_path / "submissions", tmp_path / "grades.csv")]
    assert rows == [("eve", "1", ""), ("eve", "1", "")]
