"""Issue 30, items 1-7: a submission cannot change any grade but its own honest one.

One small class is graded once (module fixture, two workers): an honest student, a wrong one, a
victim whose answers are all wrong, and one attacker per attack. Each attacker gets a zero and
everyone else the grade their answers earn. Needs bubblewrap (skips, saying so, without it)."""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import pytest

from alexnet_edu.course import grading, sandbox
from alexnet_edu.course.release import release

SANDBOX = sandbox.available()
TIMEOUT = 10
MARK = "1234.5"   # a detached attacker's `sleep` argument, to look for it afterwards


def notebook(cells: list[tuple[str, str]]) -> dict:
    return {"nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                        "language": "python"}},
            "cells": [{"cell_type": kind, "id": f"cell{i}", "metadata": {}, "source": source,
                       **({"outputs": [], "execution_count": None} if kind == "code" else {})}
                      for i, (kind, source) in enumerate(cells)]}


SOLUTION = notebook([
    ("code", "import torch\nfrom alexnet_edu.notebook import checks\nTARGET = 42"),
    ("markdown", "### Exercise 1 (easy)\n**Define:** `double`"),
    ("code", "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION"),
    ("code", "checks.check_equal('double(3)', double(3), 6)\n### BEGIN HIDDEN TESTS\n"
             "checks.check_equal('double(-1)', double(-1), -2)\n### END HIDDEN TESTS"),
    ("markdown", "### Exercise 2 (easy)\n**Define:** `answer`"),
    ("code", "### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION"),
    ("code", "checks.check_equal('answer', answer, TARGET)"),
    ("markdown", "### Exercise 3 (medium)\n**Define:** `vec`"),
    ("code", "### BEGIN SOLUTION\nvec = torch.arange(3.0)\n### END SOLUTION"),
    ("code", "checks.check_close('vec', vec, torch.arange(3.0))"),
])
RIGHT = {"cell2": "def double(x):\n    return x + x\n", "cell5": "answer = 6 * 7\n",
         "cell8": "vec = torch.tensor([0.0, 1.0, 2.0])\n"}
WRONG = {"cell2": "def double(x):\n    return x\n", "cell5": "answer = 41\n",
         "cell8": "vec = torch.ones(3)\n"}


# Answer cells of each attacker (the other answers are left as released: stubs). The attacks
# on the kernel itself:
KERNEL_ATTACKS = {
    # 1: hide every error of the kernel
    "attack1": {"cell2": "get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)\n"},
    # 2: checks that pass anything; and a context name the check reads, replaced
    "attack2": {"cell2": "from alexnet_edu.notebook import checks\n"
                         "checks.check_equal = checks.check_true = checks.check_close = "
                         "lambda *a, **k: None\n"
                         "checks.CheckFailed = type('CheckFailed', (Exception,), {})\n",
                "cell5": "answer = 0\nTARGET = 0\n"},
    # 5: ignore the interrupt and never finish
    "attack5": {"cell2": "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                         "while True:\n    pass\n"},
    # 6: end the kernel's process
    "attack6": {"cell2": "import os\nos._exit(0)\n"},
}


def file_attacks(paths: dict[str, Path]) -> dict[str, dict[str, str]]:
    """The attacks that reach for the grader's, the solutions' or another student's files."""
    victim_nb, solution_nb, out = (str(paths[k]) for k in ("victim", "solution", "out"))
    return {
        # 3: read the grader's command line, rewrite the solution's checks for later notebooks
        "attack3": {"cell5": "import os\n"
                             "print(open(f'/proc/{os.getppid()}/cmdline').read())\n"
                             "for path in [" + repr(solution_nb) + "]:\n"
                             "    try:\n"
                             "        open(path, 'w').write('{}')\n"
                             "    except OSError as err:\n"
                             "        print(err)\n"
                             "# 42 (a pass) only if it can see the solutions or another student\n"
                             "import glob\n"
                             "answer = 42 if glob.glob(" + repr(str(Path(solution_nb).parent))
                             + " + '/*') or os.path.exists(" + repr(victim_nb) + ") else 0\n"},
        # 4: a detached process that outlives the kernel and rewrites the grades
        "attack4": {"cell5": "import subprocess, sys\n"
                             "subprocess.Popen(['sleep', '" + MARK + "'], "
                             "start_new_session=True)\n"
                             "subprocess.Popen([sys.executable, '-c', '''\n"
                             "import time\n"
                             "for _ in range(6000):   # once the grades are written, forge them\n"
                             "    time.sleep(0.1)\n"
                             "    try:\n"
                             "        if open(" + repr(out) + ").read().startswith('student,'):\n"
                             "            time.sleep(0.5)\n"
                             "            open(" + repr(out) + ", 'w').write('forged')\n"
                             "            break\n"
                             "    except OSError:\n"
                             "        pass\n"
                             "'''], start_new_session=True)\n"},
        # 7: delete another student's submission, write into the solutions folder
        "attack7": {"cell5": "import os\n"
                             "for path in [" + repr(victim_nb) + "]:\n"
                             "    try:\n"
                             "        os.remove(path)\n"
                             "    except OSError as err:\n"
                             "        print(err)\n"
                             "try:\n"
                             "    open(" + repr(str(Path(solution_nb).parent / "x.ipynb"))
                             + ", 'w').write('{}')\n"
                             "except OSError as err:\n"
                             "    print(err)\n"},
    }


def _detached_alive() -> bool:
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if MARK in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                return True
        except OSError:
            continue
    return False


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    if SANDBOX is not None:
        pytest.skip(f"no sandbox here: {SANDBOX}")
    tmp = tmp_path_factory.mktemp("attacks")
    solution = tmp / "solutions" / "ex.ipynb"
    solution.parent.mkdir()
    solution.write_text(json.dumps(SOLUTION))
    (released,) = release(solution, tmp / "release")
    student = json.loads(released.read_text())
    submissions = tmp / "submissions"
    paths = {"solution": solution, "victim": submissions / "victim" / "ex.ipynb",
             "out": tmp / "grades.csv"}
    answers = {"honest": RIGHT, "wrong": WRONG, "victim": WRONG, **KERNEL_ATTACKS,
               **file_attacks(paths)}
    for name, cells in answers.items():
        nb = json.loads(json.dumps(student))
        for cell in nb["cells"]:
            cell["source"] = cells.get(cell["id"], cell["source"])
        (submissions / name).mkdir(parents=True)
        (submissions / name / "ex.ipynb").write_text(json.dumps(nb))
    before = {p: p.read_bytes() for p in [solution, *submissions.glob("*/ex.ipynb")]}
    assert grading.main([str(solution.parent), str(submissions), "--out", str(paths["out"]),
                         "--timeout", str(TIMEOUT), "--workers", "2"]) == 0
    written = paths["out"].read_text()
    time.sleep(3)   # the detached attacker would write within this time
    rows = {}
    for row in csv.DictReader(paths["out"].open()):
        rows.setdefault(row["student"], []).append((row["passed"] == "1", row["message"]))
    return {"rows": rows, "before": before, "written": written, "out": paths["out"],
            "solutions": solution.parent}


def _score(rows, student) -> int:
    return sum(passed for passed, _ in rows[student])


def test_honest_wrong_and_victim_get_their_own_grades(graded):
    rows = graded["rows"]
    assert [p for p, _ in rows["honest"]] == [True, True, True]
    for student in ("wrong", "victim"):
        assert [m for _, m in rows[student]] == [
            "CheckFailed: double(3): expected 6, got 3", "CheckFailed: answer: expected 42, got 41",
            rows[student][2][1]]
        assert _score(rows, student) == 0 and "relative error" in rows[student][2][1]


def test_hiding_errors_and_rebinding_the_checks_pass_nothing(graded):
    # items 1 and 2: the student's kernel decides nothing, and a context name (TARGET) that
    # the check reads keeps the solution's value
    assert _score(graded["rows"], "attack1") == 0
    assert graded["rows"]["attack2"][1] == (False, "CheckFailed: answer: expected 42, got 0")
    assert _score(graded["rows"], "attack2") == 0


def test_no_submission_can_write_the_solutions_or_other_submissions(graded):
    # items 3 and 7: every file is as it was; the victim is graded on their own answers
    for path, content in graded["before"].items():
        assert path.read_bytes() == content, path
    assert sorted(p.name for p in graded["solutions"].iterdir()) == ["ex.ipynb"]
    assert graded["rows"]["attack3"][1] == (False, "CheckFailed: answer: expected 42, got 0")
    assert _score(graded["rows"], "attack3") == 0 and _score(graded["rows"], "attack7") == 0


def test_a_detached_process_neither_survives_nor_rewrites_the_grades(graded):
    # item 4
    assert graded["out"].read_text() == graded["written"]
    assert not _detached_alive()
    assert _score(graded["rows"], "attack4") == 0


def test_an_uninterruptible_loop_is_killed_at_the_deadline(graded):
    # item 5: the student is graded as timed out, the others are graded
    assert graded["rows"]["attack5"] == [
        (False, f"timed out: a cell ran longer than {TIMEOUT} s")] * 3


def test_a_kernel_that_exits_fails_its_student_only(graded):
    # item 6: a row for everyone, the CSV written
    rows = graded["rows"]
    assert [p for p, _ in rows["attack6"]] == [False] * 3
    assert "kernel died" in rows["attack6"][0][1]
    assert set(rows) == {"honest", "wrong", "victim", *(f"attack{i}" for i in range(1, 8))}


def test_grading_refuses_without_a_sandbox_unless_unsafe(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sandbox, "available", lambda: "bubblewrap is not installed")
    (tmp_path / "sol").mkdir()
    (tmp_path / "sol" / "ex.ipynb").write_text(json.dumps(SOLUTION))
    (tmp_path / "subs" / "ann").mkdir(parents=True)
    out = tmp_path / "grades.csv"
    assert grading.main([str(tmp_path / "sol"), str(tmp_path / "subs"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "bubblewrap is not installed" in err and "--unsafe" in err and not out.exists()
    # --unsafe grades (no code runs here: one student handed in nothing, the other a file that
    # is not a notebook, which fails that student only)
    (tmp_path / "subs" / "bob").mkdir()
    (tmp_path / "subs" / "bob" / "ex.ipynb").write_text('{"cells": [')
    assert grading.main([str(tmp_path / "sol"), str(tmp_path / "subs"), "--out", str(out),
                         "--unsafe"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert {(r["student"], r["passed"], r["message"]) for r in rows} == {
        ("ann", "0", "not handed in"),
        ("bob", "0", "not a notebook (invalid JSON: Expecting value at line 1, column 12)")}
