"""Regenerate the notebooks' stored outputs: execute them top to bottom in a run profile (default
`cpu`) and store the outputs, each code cell stamped with the hash of the source that made them.

    python tools/run_notebooks.py            # all, cpu profile (times: benchmarks/README.md)
    python tools/run_notebooks.py 04 06      # the named ones
    python tools/run_notebooks.py --check    # list cells whose output is stale (exit 1)

Run it from the repository root with ALEXNET_EDU_DATA pointing at the data, after removing
runs/cpu/: the outputs show a student's first run, not one that replaces earlier checkpoints.
A notebook is only written when every cell ran without an error, no output came from smoke
mode or generated stand-in data, no output shows a path of this machine, and no figure has text
outside it or on other text (`viz.layout_problems`, run after every draw). Cells tagged
``needs-stl10-train`` are left without output when STL-10's training images are not there
(they are a 2.6 GB download this machine cannot make); the notebook's text says what a
full-profile GPU run gives instead.

A cell whose source changed after its output was stored is *stale*: `stale_cells` finds it by
the hash, and tests/test_notebook_outputs.py fails on it.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import torch
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from alexnet_edu.device import describe_device
from alexnet_edu.notebook.viz import FIGURE_CHECK_VARIABLE

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SKIP_TAG = "needs-stl10-train"
# what must never be stored: smoke or stand-in results, errors, local paths, and train.fit's
# notice that it replaces an earlier run (a student's first run starts fresh: remove runs/cpu/)
FORBIDDEN = re.compile(r"[Ss]moke mode|synthetic stand-in|generated stand-in|will be overwritten|"
                       r"(/home/|/Users/|/root/|/work/|/tmp/|[A-Za-z]:\\{1,2}[Uu]sers)")


def source_hash(source: str) -> str:
    """The stamp stored with a cell's outputs: SHA-256 of its source, first 16 hex digits."""
    return hashlib.sha256(source.encode()).hexdigest()[:16]


# tqdm's notebook bar is a widget; a saved notebook keeps only its plain-text form at the moment
# it was displayed ("0%| 0/870"), which GitHub then shows for good: such outputs are not stored
PROGRESS_BAR = re.compile(r"\d+%\|.*\| *\d+/\d+ \[")


def is_progress_bar(output) -> bool:
    """A tqdm progress-bar widget's output (its stored text is frozen when it was shown)."""
    data = output.get("data", {})
    text = data.get("text/plain", "")
    return ("application/vnd.jupyter.widget-view+json" in data
            and bool(PROGRESS_BAR.search(text if isinstance(text, str) else "".join(text))))


def stale_cells(nb: nbformat.NotebookNode) -> list[int]:
    """Indices of code cells that hold outputs not stamped with their current source's hash."""
    return [i for i, cell in enumerate(nb.cells)
            if cell.cell_type == "code" and cell.get("outputs")
            and cell.metadata.get("alexnet_edu", {}).get("source") != source_hash(cell.source)]


def _text(output) -> str:
    parts = [output.get("text", ""), output.get("ename", ""), output.get("evalue", "")]
    data = output.get("data", {})
    parts += [data.get("text/plain", ""), data.get("text/markdown", ""), data.get("text/html", "")]
    return "\n".join(p if isinstance(p, str) else "".join(p) for p in parts)


def problems(nb: nbformat.NotebookNode) -> list[str]:
    """What makes a notebook's outputs unfit to store (empty list: fit)."""
    found = []
    for i, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if is_progress_bar(output):
                found.append(f"cell {i}: a progress bar (its stored text never moves)")
            if output.get("output_type") == "error":
                found.append(f"cell {i}: an error ({output.get('ename')}: {output.get('evalue')})")
            match = FORBIDDEN.search(_text(output))
            if match:
                found.append(f"cell {i}: output shows {match.group(0)!r}")
    return found


def stl10_train_available() -> bool:
    """Are STL-10's training images under the data root (the binary train_X.bin)?"""
    from alexnet_edu.settings import data_root

    return (data_root() / "stl10_binary" / "train_X.bin").is_file()


def execute(path: Path, profile: str, timeout: int | None) -> nbformat.NotebookNode:
    """Run the notebook in a fresh kernel (cwd: notebooks/) and stamp every code cell. Every
    figure `viz.subplots` makes is checked after each draw (`viz.layout_problems`); what the check
    found is in ``nb.metadata["figure_problems"]`` (not stored: `main` refuses such a notebook)."""
    nb = nbformat.read(path, as_version=4)
    report = Path(tempfile.mkstemp(prefix="figure-check-", suffix=".txt")[1])
    os.environ[FIGURE_CHECK_VARIABLE] = str(report)   # the kernel inherits it
    skip = not stl10_train_available()
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    started = time.perf_counter()
    skipped = []
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            if skip and SKIP_TAG in cell.metadata.get("tags", []):
                cell.outputs, cell.execution_count = [], None
                skipped.append(index)
            else:
                client.execute_cell(cell, index)
                cell.outputs = [o for o in cell.outputs if not is_progress_bar(o)]
            cell.metadata["alexnet_edu"] = {"source": source_hash(cell.source)}
    seconds = time.perf_counter() - started
    nb.metadata["figure_problems"] = report.read_text(encoding="utf-8").splitlines()
    report.unlink()
    nb.metadata["alexnet_edu"] = {
        "profile": profile, "seconds": round(seconds),
        "date": datetime.date.today().isoformat(),
        "device": describe_device("cuda" if torch.cuda.is_available() else "cpu"),
        # the cells left without output, tagged SKIP_TAG, when STL-10's training images are absent
        "skipped": skipped or None,
    }
    return nb


def select(paths: list[Path], names: list[str]) -> list[Path]:
    """The notebooks `names` asks for: numbers ("4" or "04") or names (with or without .ipynb);
    all of them when `names` is empty. A name that matches no notebook is an error."""
    def matches(path: Path, name: str) -> bool:
        name = Path(name).name   # notebooks/04_x.ipynb, as a shell completes it, is 04_x.ipynb
        return path.name[:2] == name.zfill(2) if name.isdigit() else name in (path.stem, path.name)

    unknown = [n for n in names if not any(matches(p, n) for p in paths)]
    if unknown:
        raise SystemExit(f"no notebook {', '.join(unknown)} in {NOTEBOOKS} (use a number such as "
                         "04, or a name such as 04_train_fashion_mnist)")
    return [p for p in paths if not names or any(matches(p, n) for n in names)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook numbers or names (default: all)")
    parser.add_argument("--profile", default="cpu", choices=("cpu", "full"),
                        help="run profile (smoke outputs are never stored)")
    parser.add_argument("--timeout", type=int, default=None, help="seconds per cell")
    parser.add_argument("--check", action="store_true", help="only list stale cells")
    args = parser.parse_args()
    paths = select(sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")), args.names)
    if args.check:
        stale = {p.name: stale_cells(nbformat.read(p, as_version=4)) for p in paths}
        for name, cells in stale.items():
            if cells:
                print(f"{name}: stale output in cells {cells}")
        return 1 if any(stale.values()) else 0
    os.environ.pop("ALEXNET_EDU_SMOKE", None)
    os.environ.pop("ALEXNET_EDU_PROFILE", None)
    from alexnet_edu.profiles import current_profile

    if current_profile().name != args.profile:   # only force what the machine would not choose
        os.environ["ALEXNET_EDU_PROFILE"] = args.profile
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    failed = 0
    for path in paths:
        print(f"{path.name}: running in the {args.profile} profile ...", flush=True)
        try:
            nb = execute(path, args.profile, args.timeout)
        except CellExecutionError as err:
            failed += 1
            print(f"{path.name}: NOT written: a cell failed:\n{str(err)[-2000:]}")
            continue
        found = problems(nb) + nb.metadata.pop("figure_problems")
        if found:
            failed += 1
            print(f"{path.name}: NOT written:\n  " + "\n  ".join(found[:10]))
            continue
        nbformat.write(nb, path)
        print(f"{path.name}: written ({nb.metadata['alexnet_edu']['seconds']} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
