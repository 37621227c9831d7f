"""Grade a folder of student submissions with the check cells of the solution notebooks.

    python -m alexnet_edu.grading notebooks/ submissions/ --out grades.csv

`submissions/` holds one folder per student, each with that student's copies of the released
notebooks (same file names). Every submission is run top to bottom in a fresh kernel with the
check cells of the *solution* notebook put back in place (hidden tests included, and a student's
edits to a check cell undone), each cell bounded in time, and the result is one CSV row per
student × exercise: passed or not, and the check's own message when not.

Cells are matched by their id, which `release` keeps; an exercise whose cells the student
deleted fails and says so. The run uses the `smoke` profile unless `--profile` says otherwise:
the checks test the student's code, not how long a model was trained.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import io
import json
import os
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from .assignments import NotebookError, load_notebook, notebook_paths, scan_notebook
from .files import write_atomic

__all__ = ["Grade", "grade_submission", "grade_folder", "main"]

FIELDS = ("student", "notebook", "exercise", "passed", "message")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class Grade:
    """One exercise of one student's notebook."""

    student: str
    notebook: str
    exercise: str
    passed: bool
    message: str   # empty when passed; else why not, in the check's own words


def _with_checks_put_back(solution: dict, submission: dict, check_cells: set[int],
                          hidden_only: set[int]) -> dict:
    """A copy of `submission` whose check cells carry the solution's source (hidden tests
    included); cells are matched by id. A cell of hidden tests alone is released empty, and a
    student may delete it: it is put back after the nearest earlier cell the student kept."""
    graded = copy.deepcopy(submission)
    for index in sorted(check_cells):
        original = solution["cells"][index]
        ids = [cell.get("id") for cell in graded["cells"]]
        if original.get("id") in ids:
            graded["cells"][ids.index(original["id"])]["source"] = original["source"]
        elif index in hidden_only:
            before = next((ids.index(c.get("id")) for c in reversed(solution["cells"][:index])
                           if c.get("id") in ids), -1)
            graded["cells"].insert(before + 1, dict(copy.deepcopy(original), outputs=[],
                                                    execution_count=None))
    return graded


def _error(cell: dict) -> str | None:
    """The error a code cell raised, as one line (None if it ran cleanly)."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            name, value = output.get("ename", "Error"), _ANSI.sub("", output.get("evalue", ""))
            first = value.strip().splitlines()[0] if value.strip() else ""
            return f"{name}: {first}" if first else name
    return None


@contextlib.contextmanager
def _profile(name: str) -> Iterator[None]:
    """Run kernels in profile `name` (they inherit this process's environment)."""
    wanted = {"ALEXNET_EDU_PROFILE": name, "ALEXNET_EDU_SMOKE": "1" if name == "smoke" else "0",
              "MPLBACKEND": "Agg"}   # figures are rendered headless, nothing waits on a window
    saved = {key: os.environ.get(key) for key in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _execute(nb: dict, folder: Path, timeout: int) -> dict:
    """Run every cell (errors recorded, not fatal); a cell past `timeout` seconds is interrupted
    and the run goes on."""
    node = nbformat.reads(json.dumps(nb), as_version=4)   # sources as strings, as nbclient wants
    client = NotebookClient(node, timeout=timeout, allow_errors=True, interrupt_on_timeout=True,
                            kernel_name="python3", resources={"metadata": {"path": str(folder)}})
    with contextlib.redirect_stderr(io.StringIO()):   # the kernel's start-up warnings
        client.execute()
    return node


def grade_submission(solution_path: Path | str, submission_path: Path | str, student: str,
                     timeout: int = 300, profile: str = "smoke") -> list[Grade]:
    """Run one student's notebook with the solution's checks put back; one Grade per exercise."""
    solution_path, submission_path = Path(solution_path), Path(submission_path)
    scan = scan_notebook(solution_path)
    solution, _ = load_notebook(solution_path)
    submission, _ = load_notebook(submission_path)
    graded = {ex.cell: sorted({*ex.check_cells, *ex.hidden_cells}) for ex in scan.exercises}
    checks = {j for cells in graded.values() for j in cells}   # hidden-only cells included
    hidden_only = {j for ex in scan.exercises for j in ex.hidden_cells if j not in ex.check_cells}
    with _profile(profile):
        ran = _execute(_with_checks_put_back(solution, submission, checks, hidden_only),
                       submission_path.parent, timeout)
    cells = {cell.get("id"): cell for cell in ran["cells"]}
    grades = []
    for ex in scan.exercises:
        wanted = [solution["cells"][j].get("id") for j in [ex.cell, *graded[ex.cell]]]
        missing = [i for i in wanted if i not in cells]
        answer_error = _error(cells[wanted[0]]) if wanted[0] in cells else None
        errors = [e for i in wanted[1:] if i in cells and (e := _error(cells[i]))]
        if missing:
            message = f"cell(s) {', '.join(missing)} of this exercise are missing from the notebook"
        elif answer_error and answer_error.startswith("NotImplementedError"):
            message = "not answered (the answer still raises NotImplementedError)"
        elif any(e.startswith("NotImplementedError") for e in errors):
            # a function the answer defines (or one an earlier exercise left) is still the stub
            message = ("not (fully) answered: a function its check calls still raises "
                       "NotImplementedError")
        elif any(e.startswith("KeyboardInterrupt") for e in [answer_error or "", *errors]):
            message = f"timed out: a cell ran longer than {timeout} s"
        else:
            message = errors[0] if errors else ""
        grades.append(Grade(student, solution_path.name, ex.title, not message, message))
    return grades


def grade_folder(solutions: Path | str, submissions: Path | str, out: Path | str,
                 timeout: int = 300, profile: str = "smoke") -> list[Grade]:
    """Grade every student folder in `submissions` against the notebooks in `solutions`, and
    write the CSV `out` (atomically). A notebook a student did not hand in fails every exercise."""
    solution_paths = notebook_paths([Path(solutions)])
    submissions = Path(submissions)
    if not submissions.is_dir():
        raise NotebookError(f"{submissions}: no such folder (expected one folder per student "
                            "holding their notebooks)")
    # hidden folders (.ipynb_checkpoints, .git) are not students
    students = sorted(p for p in submissions.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not students:
        raise NotebookError(f"{submissions}: no student folders (expected one folder per "
                            "student holding their notebooks)")
    grades: list[Grade] = []
    for student in students:
        for solution in solution_paths:
            handed_in = student / solution.name
            if handed_in.is_file():
                grades += grade_submission(solution, handed_in, student.name, timeout, profile)
            else:
                grades += [Grade(student.name, solution.name, ex.title, False, "not handed in")
                           for ex in scan_notebook(solution).exercises]
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(FIELDS)
    writer.writerows((g.student, g.notebook, g.exercise, int(g.passed), g.message)
                     for g in grades)
    write_atomic(out, text.getvalue())
    return grades


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m alexnet_edu.grading", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  python -m alexnet_edu.grading notebooks/ submissions/ --out grades.csv")
    parser.add_argument("solutions", type=Path, help="folder (or file) of solution notebooks")
    parser.add_argument("submissions", type=Path, help="folder with one folder per student")
    parser.add_argument("--out", type=Path, default=Path("grades.csv"), help="the CSV to write")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per cell (default 300)")
    parser.add_argument("--profile", choices=("smoke", "cpu", "full"), default="smoke",
                        help="run profile of the graded notebooks (default smoke)")
    args = parser.parse_args(argv)
    try:
        grades = grade_folder(args.solutions, args.submissions, args.out, args.timeout,
                              args.profile)
    except NotebookError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for student in sorted({g.student for g in grades}):
        mine = [g for g in grades if g.student == student]
        print(f"{student}: {sum(g.passed for g in mine)} of {len(mine)} exercises passed")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
