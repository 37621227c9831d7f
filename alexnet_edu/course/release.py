"""Student versions of the solution notebooks, whose answers sit between nbgrader's markers
(usage: alexnet_edu/course/README.md). `release` puts nbgrader's stub in each solution region,
removes hidden tests and outputs, keeps every other byte; `check` validates the markers and the
convention (at least three exercises, each followed by a cell calling notebook.checks)."""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..files import write_atomic

__all__ = ["NotebookError", "Region", "Exercise", "NotebookScan", "scan_notebook",
           "release_notebook", "release", "notebook_paths", "convention_problems", "main"]

_BEGIN = {"solution": "### BEGIN SOLUTION", "hidden": "### BEGIN HIDDEN TESTS"}
_END = {kind: marker.replace("BEGIN", "END") for kind, marker in _BEGIN.items()}
_MARKERS = {m: (a, k) for a, d in (("begin", _BEGIN), ("end", _END)) for k, m in d.items()}
# A near miss of a marker ("## BEGIN SOLUTION", "### begin solution", "### BEGIN SOLUTON") would
# leave the answer in the student version: any line with a word like begin/end followed by one
# like solution/hidden is an error unless it is exactly a marker.
_WORD = re.compile(r"[a-z]+")
_KINDS = {"solution": "solution", "solutions": "solution", "hidden": "hidden"}


def _like(word: str, target: str) -> bool:
    """`word` is `target` or a typo of it (one or two letters off, in a word of 5 or more)."""
    return word == target or (
        len(target) >= 5 and difflib.SequenceMatcher(None, word, target).ratio() >= 0.8)


def _near_marker(line: str, cell_type: str) -> str | None:
    """The marker `line` looks like without being it (None if it looks like none). Only a `#`
    line of at most three words after the hashes can be one: in code only a comment
    (`def end(solution):` is not), in markdown not prose ("## The end: solution" has too many)."""
    text = line[line.find("#"):] if cell_type == "code" and "#" in line else line.strip()
    if not text.startswith("#") or len(text.lstrip("#").split()) > 3:
        return None
    words = _WORD.findall(text.lower())
    pairs = list(zip(words, words[1:]))
    pairs += [(w[:k], w[k:]) for w in words for k in range(3, len(w) - 3)]   # "BEGINSOLUTION"
    for first, second in pairs:
        action = next((a for a in ("begin", "end") if _like(first, a)), None)
        kind = next((_KINDS[k] for k in _KINDS if _like(second, k)), None)
        if action and kind:
            return (_BEGIN if action == "begin" else _END)[kind]
    return None


CODE_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")  # nbgrader's stubs
TEXT_STUB = ("YOUR ANSWER HERE",)

# A check cell calls a check_* function of alexnet_edu.notebook.checks, which the notebook imports.
_CHECK_CALL = re.compile(r"\bcheck_[a-z_]+\s*\(")
_CHECKS_IMPORT = re.compile(r"alexnet_edu\.notebook\.checks\b"
                            r"|from\s+alexnet_edu\.notebook\s+import\s+[^\n]*\bchecks\b")


class NotebookError(ValueError):
    """Not a notebook, or markers that do not pair up; the message names the file and cell."""


@dataclass(frozen=True)
class Region:
    """One marked region: `kind` is "solution" or "hidden"; lines are 1-based within the cell."""

    kind: str
    cell: int
    begin_line: int
    end_line: int


@dataclass
class Exercise:
    """A code cell with solution regions, the cells that check it, and its task's heading."""

    cell: int
    title: str
    spans: list[tuple[int, int]]   # its solution regions' first and last lines (1-based)
    released: str                  # the cell as released: stubs, no answer
    check_cells: list[int] = field(default_factory=list)   # visible calls to check_*
    hidden_tests: int = 0
    hidden_cells: list[int] = field(default_factory=list)  # cells holding its hidden tests


@dataclass
class NotebookScan:
    """What `check` knows about one notebook."""

    path: Path
    cells: list[dict]
    exercises: list[Exercise]          # code cells with solution regions, in order
    written_answers: list[Region]      # solution regions in markdown cells (graded by hand)
    imports_checks: bool


# Reading ------------------------------------------------------------------------------------------
def _cell_label(cell: dict, index: int) -> str:
    first = next((ln.strip() for ln in _text(cell["source"]).split("\n") if ln.strip()), "")
    first = first if len(first) <= 40 else first[:39] + "\u2026"
    return f"cell {index} ({cell['cell_type']}, starts {first!r})"


def _text(source: Any) -> str:
    return "".join(source) if isinstance(source, list) else source


def load_notebook(path: Path) -> tuple[dict, str]:
    """The notebook's JSON (key order kept) and text; NotebookError if it is not nbformat 4."""
    path = Path(path)
    if path.suffix != ".ipynb":
        raise NotebookError(f"{path}: not a notebook (expected a .ipynb file)")
    try:
        nb = json.loads(text := path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise NotebookError(f"{path}: no such file") from None
    except UnicodeDecodeError as err:
        raise NotebookError(f"{path}: not a notebook (not UTF-8 text: {err.reason} at byte "
                            f"{err.start})") from None
    except json.JSONDecodeError as err:
        raise NotebookError(f"{path}: not a notebook (invalid JSON: {err.msg} at line "
                            f"{err.lineno}, column {err.colno})") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise NotebookError(f"{path}: not a notebook (no list of 'cells' in the JSON)")
    if nb.get("nbformat") != 4:
        raise NotebookError(f"{path}: nbformat {nb.get('nbformat')!r} is not supported; convert "
                            "it with `jupyter nbconvert --to notebook --nbformat 4`")
    for i, cell in enumerate(nb["cells"]):
        source = cell.get("source") if isinstance(cell, dict) else None   # str, or a list of str
        if not isinstance(source, (str, list)) or not all(isinstance(s, str) for s in source) \
                or not isinstance(cell.get("cell_type"), str):
            raise NotebookError(f"{path}: cell {i}: not a notebook cell (needs 'cell_type' and "
                                "a 'source' string or list of strings)")
    return nb, text


def _regions(source: str, cell_type: str, where: str, index: int) -> list[Region]:
    """Validate the markers of one cell and return its regions (nbgrader's grammar: regions do
    not nest and do not span cells; markers stand alone on their line)."""
    regions: list[Region] = []
    open_kind, open_line = None, 0
    for number, line in enumerate(source.split("\n"), start=1):
        marker = _MARKERS.get(line.strip())
        if marker is None:
            meant = _near_marker(line, cell_type)
            if meant:
                raise NotebookError(f"{where}: line {number} ({line.strip()[:60]!r}) is not a "
                                    f"marker, though it looks like one: write exactly {meant!r} "
                                    "alone on its line (a near miss would leave the answer in "
                                    "the student version)")
            continue
        action, kind = marker
        if action == "begin":
            if open_kind:
                raise NotebookError(f"{where}: nested markers: {_BEGIN[kind]!r} on line {number} "
                                    f"is inside the {_BEGIN[open_kind]!r} region opened on line "
                                    f"{open_line}; close that one with {_END[open_kind]!r} first")
            if kind == "hidden" and cell_type != "code":
                raise NotebookError(f"{where}: {_BEGIN[kind]!r} on line {number}: hidden tests "
                                    "belong in code cells")
            open_kind, open_line = kind, number
        elif open_kind is None:
            raise NotebookError(f"{where}: {_END[kind]!r} on line {number} has no "
                                f"{_BEGIN[kind]!r} before it")
        elif open_kind != kind:
            raise NotebookError(f"{where}: {_END[kind]!r} on line {number} does not match "
                                f"{_BEGIN[open_kind]!r} on line {open_line}")
        else:
            regions.append(Region(kind, index, open_line, number))
            open_kind = None
    if open_kind:
        raise NotebookError(f"{where}: {_BEGIN[open_kind]!r} on line {open_line} has no "
                            f"{_END[open_kind]!r} (a region must end in the cell it starts in)")
    return regions


def _cell_regions(nb: dict, path: Path) -> list[list[Region]]:
    return [_regions(_text(c["source"]), c["cell_type"], f"{path}: {_cell_label(c, i)}", i)
            for i, c in enumerate(nb["cells"])]


# Releasing ----------------------------------------------------------------------------------------
def _released_source(source: str, cell_type: str, regions: list[Region]) -> str:
    """Replace solution regions by the stub (at the BEGIN line's indentation), drop hidden tests."""
    lines = source.split("\n")
    stub = CODE_STUB if cell_type == "code" else TEXT_STUB
    for region in reversed(regions):   # bottom up: the line numbers above stay valid
        begin = lines[region.begin_line - 1]
        indent = begin[: len(begin) - len(begin.lstrip())]
        lines[region.begin_line - 1:region.end_line] = (
            [indent + s for s in stub] if region.kind == "solution" else [])
    return "\n".join(lines)


def release_notebook(nb: dict, path: Path | str = "<notebook>") -> dict:
    """The student version of a notebook's JSON (a new dict; `nb` is not changed)."""
    per_cell = _cell_regions(nb, Path(path))
    student = json.loads(json.dumps(nb))  # deep copy that keeps key order
    for cell, regions in zip(student["cells"], per_cell):
        if regions:
            new = _released_source(_text(cell["source"]), cell["cell_type"], regions)
            # keep the file's own form: nbformat stores sources as lists of lines
            cell["source"] = new.splitlines(True) if isinstance(cell["source"], list) else new
        if cell["cell_type"] == "code":
            cell.update({k: v for k, v in (("outputs", []), ("execution_count", None))
                         if k in cell})
    return student


def notebook_paths(inputs: Iterable[Path | str]) -> list[Path]:
    """Expand folders to the notebooks in them (not recursive, hidden files skipped)."""
    paths: list[Path] = []
    for item in map(Path, inputs):
        if not item.exists():
            raise NotebookError(f"{item}: no such file or folder")
        found = (sorted(p for p in item.glob("*.ipynb") if not p.name.startswith("."))
                 if item.is_dir() else [item])
        if not found:
            raise NotebookError(f"{item}: no notebooks (*.ipynb) in this folder")
        paths.extend(found)
    return paths


def release(inputs: Sequence[Path | str] | Path | str, out: Path | str) -> list[Path]:
    """Write the student versions of `inputs` (notebooks or folders) into `out`: all or none."""
    out = Path(out)
    planned: dict[str, str] = {}
    for path in notebook_paths([inputs] if isinstance(inputs, (str, Path)) else inputs):
        if out.resolve() == path.parent.resolve():
            raise NotebookError(f"{out}: the output folder holds the solution notebook "
                                f"{path.name}; releasing there would overwrite it - choose "
                                "another --out")
        if path.name in planned:
            raise NotebookError(f"{path}: two input notebooks are called {path.name}")
        nb, text = load_notebook(path)
        # as nbformat writes it: indent 1, non-ASCII kept, the file's key order and last newline
        student = json.dumps(release_notebook(nb, path), indent=1, ensure_ascii=False)
        planned[path.name] = student + "\n" * text.endswith("\n")
    if out.exists() and not out.is_dir():
        raise NotebookError(f"{out}: exists and is not a folder")
    return [write_atomic(out / name, text) for name, text in planned.items()]


# Checking -----------------------------------------------------------------------------------------
def _title(cells: list[dict], before: int) -> str:
    """The last heading (else the first line) of the nearest markdown cell above `before`."""
    for cell in reversed(cells[:before]):
        if cell["cell_type"] == "markdown":
            lines = [ln.strip() for ln in _text(cell["source"]).split("\n") if ln.strip()]
            headings = [ln for ln in lines if ln.startswith("#")]
            if lines:
                return (headings[-1] if headings else lines[0]).lstrip("#").strip()
    return ""


def scan_notebook(path: Path | str) -> NotebookScan:
    """Validate a notebook's markers and find its exercises and their check cells."""
    path = Path(path)
    nb, _ = load_notebook(path)
    cells = nb["cells"]
    per_cell = _cell_regions(nb, path)
    released = [_text(c["source"]) for c in release_notebook(nb, path)["cells"]]
    exercises: list[Exercise] = []
    written: list[Region] = []
    for i, regions in enumerate(per_cell):
        solutions = [r for r in regions if r.kind == "solution"]
        if solutions and cells[i]["cell_type"] == "code":
            spans = [(r.begin_line, r.end_line) for r in solutions]
            exercises.append(Exercise(i, _title(cells, i), spans, released[i]))
        else:
            written.extend(solutions)
    # a check cell: a later code cell (before the next exercise) whose visible part calls check_*
    for ex, stop in zip(exercises, [e.cell for e in exercises[1:]] + [len(cells)]):
        for j in range(ex.cell + 1, stop):
            if cells[j]["cell_type"] != "code":
                continue
            if hidden := sum(r.kind == "hidden" for r in per_cell[j]):
                ex.hidden_tests += hidden
                ex.hidden_cells.append(j)
            if _CHECK_CALL.search(released[j]):
                ex.check_cells.append(j)
    imports = any(_CHECKS_IMPORT.search(_text(c["source"])) for c in cells
                  if c["cell_type"] == "code")
    return NotebookScan(path, cells, exercises, written, imports)


def convention_problems(scan: NotebookScan, min_exercises: int = 3) -> list[str]:
    """This project's exercise convention, as a list of problems (empty when it holds)."""
    problems = []
    if len(scan.exercises) < min_exercises:
        problems.append(f"{len(scan.exercises)} exercise(s) with a solution region in a code "
                        f"cell; at least {min_exercises} are expected")
    for ex in scan.exercises:
        if not ex.check_cells:
            problems.append(f"the exercise in cell {ex.cell} ({ex.title or 'untitled'}) has no "
                            "check cell after it calling notebook.checks (check_close, ...)")
    if scan.exercises and not scan.imports_checks:
        problems.append("no cell imports alexnet_edu.notebook.checks")
    return problems


def _report(scan: NotebookScan, problems: list[str]) -> str:
    lines = [f"{scan.path}: {len(scan.exercises)} exercise(s)"
             + (f", {len(scan.written_answers)} written answer(s)" if scan.written_answers else "")]
    for ex in scan.exercises:
        checked = (f"checked in cell {', '.join(map(str, ex.check_cells))}" if ex.check_cells
                   else "NOT CHECKED")
        hidden = f", {ex.hidden_tests} hidden test region(s)" if ex.hidden_tests else ""
        lines.append(f"  cell {ex.cell:>3}  {ex.title or '(no heading above)'}  [{len(ex.spans)} "
                     f"solution region(s), {checked}{hidden}]")
    lines += [f"  cell {r.cell:>3}  written answer (markdown), graded by hand"
              for r in scan.written_answers]
    lines.extend(f"  ! {p}" for p in problems)
    return "\n".join(lines)


# The command line ---------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m alexnet_edu.course.release",
        description="Release student versions of solution notebooks (nbgrader markers). Exit "
                    "status: 0 fine, 1 convention problems (check), 2 bad input.")
    sub = parser.add_subparsers(dest="command", required=True)
    rel = sub.add_parser("release", help="write student notebooks (solutions stripped)")
    rel.add_argument("--out", required=True, type=Path, help="folder for the student notebooks")
    chk = sub.add_parser("check", help="validate markers and list the exercises")
    chk.add_argument("--min-exercises", type=int, default=3,
                     help="exercises expected per notebook (default 3; 0 to only validate)")
    for command in (rel, chk):
        command.add_argument("inputs", nargs="+", type=Path, help="notebooks or folders of them")
    args = parser.parse_args(argv)
    try:
        if args.command == "release":
            written = release(args.inputs, args.out)
            print(f"released {len(written)} notebook(s) into {args.out}: "
                  + ", ".join(p.name for p in written))
            return 0
        status = 0
        for scan in map(scan_notebook, notebook_paths(args.inputs)):
            problems = convention_problems(scan, args.min_exercises)
            print(_report(scan, problems))
            status |= bool(problems)
        return status
    except (NotebookError, OSError) as err:
        return bad_input(err)


def bad_input(err: NotebookError | OSError) -> int:
    """Say what is wrong with the input in one line on stderr (no traceback); exit status 2."""
    what = f"{err.filename or ''}: {err.strerror or err}" if isinstance(err, OSError) else err
    print(f"error: {what}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
