"""Keep every notebook's "Open in Colab" badge and set-up cell in sync with one source.

The repository URL lives in `alexnet_edu/settings.py` (REPO_SLUG). This script writes, in each
`notebooks/NN_topic.ipynb`:
- in the first (title) cell, a badge pointing at that notebook on Colab;
- as the second cell, the set-up cell below (the same in every notebook);
and points the README's Colab links at the same repository.

    python tools/sync_notebooks.py          # rewrite the notebooks
    python tools/sync_notebooks.py --check  # exit 1 and list what is out of date (used by tests)
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from alexnet_edu.settings import REPO_SLUG, REPO_URL  # noqa: E402

BADGE_RE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)")
# the README's table links every notebook on Colab too
README_BADGE_RE = re.compile(
    r"colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/blob/main/notebooks/")
SETUP_MARKER = "# Set-up: the same cell opens every notebook"

SETUP_CELL = f'''{SETUP_MARKER}. Locally, first run `pip install -r requirements.txt`
# in the repository; on Colab the lines below install alexnet_edu (--no-deps: keep Colab's torch).
import importlib.util
import sys

if "google.colab" in sys.modules and importlib.util.find_spec("alexnet_edu") is None:
    %pip install -q --no-deps git+{REPO_URL}
    importlib.invalidate_caches()   # let this running kernel see the new package
from alexnet_edu.notebook import set_up

# drive=True on Colab keeps runs/ on your Google Drive: 06-09 then find notebook 04's model
device, PROFILE, SMOKE = set_up(drive=False)   # the device; the run's size: smoke, cpu or full'''


def badge(notebook: Path) -> str:
    url = f"https://colab.research.google.com/github/{REPO_SLUG}/blob/main/notebooks/{notebook.name}"
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


def notebooks() -> list[Path]:
    return sorted(p for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def synced(path: Path) -> nbformat.NotebookNode:
    """The notebook with its badge and set-up cell as they should be."""
    nb = nbformat.read(path, as_version=4)
    if not nb.cells:
        raise SystemExit(f"{path.name}: empty notebook; it must start with a markdown title")
    title = nb.cells[0]
    if title.cell_type != "markdown" or not title.source.lstrip().startswith("# "):
        raise SystemExit(f"{path.name}: the first cell must be a markdown title ('# ...')")
    if BADGE_RE.search(title.source):
        title.source = BADGE_RE.sub(badge(path), title.source)
    else:
        head, _, rest = title.source.partition("\n")
        title.source = f"{head}\n\n{badge(path)}\n{rest}"
    setup = nb.cells[1] if len(nb.cells) > 1 else None
    if setup is not None and setup.cell_type == "code" and (
            setup.source.startswith(SETUP_MARKER)
            or setup.source.strip().endswith("(written by tools/sync_notebooks.py)")):
        setup.source = SETUP_CELL  # the set-up cell, or a one-line placeholder for it
    else:
        nb.cells.insert(1, nbformat.v4.new_code_cell(SETUP_CELL))
    return nb


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report, do not write")
    args = parser.parse_args()
    stale = []
    for path in notebooks():
        nb = synced(path)
        current = nbformat.read(path, as_version=4)
        if [c.source for c in nb.cells[:2]] != [c.source for c in current.cells[:2]]:
            stale.append(path.name)
            if not args.check:
                nbformat.write(nb, path)
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    colab = f"colab.research.google.com/github/{REPO_SLUG}/blob/main/notebooks/"
    fixed = README_BADGE_RE.sub(colab, text)
    if fixed != text:
        stale.append(readme.name)
        if not args.check:
            readme.write_text(fixed, encoding="utf-8")
    if args.check and stale:
        print("out of date (run python tools/sync_notebooks.py):", *stale)
        return 1
    print(("updated: " + ", ".join(stale)) if stale else "all notebooks in sync")
    return 0


if __name__ == "__main__":
    sys.exit(main())
