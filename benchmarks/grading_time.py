"""How long does grading a class take, and do parallel workers help?

    python benchmarks/grading_time.py --students 2 --notebooks 01 02 --workers 1 2
    python benchmarks/grading_time.py --students 30 --notebooks all --workers 2   # the target

Builds a synthetic class in a temporary folder: every student hands in the solution notebooks
themselves (every answer right, so every cell runs and every check passes: the slowest honest
submission), then grades it with `alexnet_edu.course.grading` (sandboxed, smoke profile) once per
--workers value, and prints the wall time, the time per graded notebook, and the extrapolation
to 30 students x 11 notebooks. It fails loudly if any exercise does not pass (a grader that
fails right answers is not measured). Timings are noisy on a shared machine: compare the
workers' ratio from one run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from alexnet_edu.course.grading import grade_folder
from alexnet_edu.machine import cpu_name

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def machine() -> str:
    return f"{os.cpu_count()} cores, {cpu_name()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=2)
    parser.add_argument("--notebooks", nargs="+", default=["01"],
                        help="notebook numbers (01 02 ...) or 'all'")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--timeout", type=int, default=600)
    args = parser.parse_args()
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if args.notebooks != ["all"]:
        paths = [p for p in paths if p.name[:2] in args.notebooks]
    print(f"machine: {machine()}")
    print(f"class: {args.students} students x {len(paths)} notebooks "
          f"({', '.join(p.stem for p in paths)})")
    with tempfile.TemporaryDirectory() as tmp:
        solutions, submissions = Path(tmp) / "solutions", Path(tmp) / "submissions"
        solutions.mkdir()
        for path in paths:
            shutil.copy(path, solutions / path.name)
        for s in range(args.students):
            (submissions / f"student{s:02d}").mkdir(parents=True)
            for path in paths:
                shutil.copy(path, submissions / f"student{s:02d}" / path.name)
        baseline = None
        for workers in args.workers:
            start = time.perf_counter()
            grades = grade_folder(solutions, submissions, Path(tmp) / "grades.csv",
                                  timeout=args.timeout, workers=workers)
            wall = time.perf_counter() - start
            failed = [g for g in grades if not g.passed]
            for g in failed:
                print(f"  NOT PASSED: {g.student} {g.notebook} {g.exercise}: {g.message}")
            graded = args.students * len(paths)
            per = wall / graded
            baseline = baseline or wall
            print(f"workers {workers}: {wall:.1f} s for {graded} notebooks, {per:.1f} s per "
                  f"notebook, {len(grades) - len(failed)} of {len(grades)} exercises passed; "
                  f"speed-up vs workers {args.workers[0]}: {baseline / wall:.2f}; "
                  f"30 x 11 would take ~{per * 30 * 11 / 60:.0f} min at this rate"
                  + ("" if len(paths) == 11 else " (if the other notebooks took as long)"))
            if failed:
                raise SystemExit(f"{len(failed)} exercise(s) of right answers did not pass")


if __name__ == "__main__":
    main()
