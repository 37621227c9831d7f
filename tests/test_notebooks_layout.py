"""Every notebook follows the house layout (design notes, "Notebooks: conventions"), and the
Colab set-up cell does the right thing on Colab without needing Colab.

Checked per notebooks/NN_*.ipynb: file name; a markdown title with an "Open in Colab" badge that
points at this very file of the repository named in settings.REPO_SLUG; "What you will learn";
the shared set-up cell as cell 1 (tools/sync_notebooks.py writes it); "## Summary" then
"## Exercises" as the last sections, with at least three exercises; valid nbformat. (Notebooks
are committed *with* the outputs of a real run: tests/test_notebook_outputs.py checks those.)
"""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

from alexnet_edu.settings import REPO_SLUG, REPO_URL

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import sync_notebooks  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NAME_RE = re.compile(r"^(\d\d)_[a-z0-9]+(?:_[a-z0-9]+)*\.ipynb$")
BADGE_URL_RE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\(([^)]*)\)")


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _headings(nb: nbformat.NotebookNode) -> list[tuple[int, str]]:
    """(cell index, '## Heading') for every level-2 markdown heading."""
    return [(i, line.strip()) for i, c in enumerate(nb.cells) if c.cell_type == "markdown"
            for line in c.source.splitlines() if line.startswith("## ")]


ids = [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_name_and_valid_nbformat(path: Path) -> None:
    assert NAME_RE.match(path.name), f"{path.name}: notebooks are named NN_topic.ipynb"
    nbformat.validate(_read(path))


def test_the_notebooks_folder_holds_only_notebooks() -> None:
    """A student browsing notebooks/ in JupyterLab sees the notebooks, not our test plumbing
    (checkpoints and caches that runs write there are ignored by git)."""
    tracked = subprocess.run(["git", "ls-files", "notebooks"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    assert tracked and all(name.endswith(".ipynb") for name in tracked), tracked


_SOLUTION = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.S)


def _assigned(code: str) -> list[str]:
    """Names a solution region defines in the notebook's namespace: assignments, def and class,
    also inside `with`, `for`, `if` and `try` blocks (not inside functions or classes)."""
    names = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.append(node.name)
                continue
            if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names.extend(n.id for t in targets for n in ast.walk(t)
                             if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store))
            for field in ("body", "orelse", "finalbody"):
                visit(getattr(node, field, []))
            for handler in getattr(node, "handlers", []):
                visit(handler.body)

    if code[:1].isspace():   # an indented region is a function's body: its names are local
        return []
    visit(ast.parse(code).body)
    return names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_exercise_names_what_its_check_reads(path: Path) -> None:
    """A student who picks another name than the check cell reads would get a NameError: the
    task text must name (in backticks) every name the solution defines and the check reads, and
    so must the answer cell outside its solution regions (a `# Define: ...` line), which is what
    the released notebook shows above `# YOUR CODE HERE`."""
    cells = nbformat.read(path, as_version=4).cells
    problems = []
    for i, cell in enumerate(cells):
        if cell.cell_type != "code" or "### BEGIN SOLUTION" not in cell.source:
            continue
        task = next(cells[j].source for j in range(i - 1, -1, -1)
                    if cells[j].cell_type == "markdown")
        check = next((cells[j].source for j in range(i + 1, len(cells))
                      if cells[j].cell_type == "code"), "")
        read = {n.id for n in ast.walk(ast.parse(check)) if isinstance(n, ast.Name)}
        outside = _SOLUTION.sub("", cell.source)   # what the released cell still shows
        for region in _SOLUTION.findall(cell.source):
            problems += [f"cell {i}: `{name}` (task text)" for name in _assigned(region)
                         if name in read and f"`{name}`" not in task]
            problems += [f"cell {i}: `{name}` (the answer cell)" for name in _assigned(region)
                         if name in read and not re.search(rf"\b{name}\b", outside)]
        for line in re.findall(r"\*\*Define:\*\*(.*)", task):   # and it names nothing else
            problems += [f"cell {i}: `{name}` (named by **Define:**, not read by the check)"
                         for name in re.findall(r"`(\w+)`", line.split("(")[0]) if name not in read]
    assert not problems, f"{path.name}: these do not name what the check reads: {problems}"


def test_numbers_are_unique() -> None:
    numbers = [p.name[:2] for p in NOTEBOOKS]
    assert len(numbers) == len(set(numbers)), f"two notebooks share a number: {numbers}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_title_badge_and_learning_goals(path: Path) -> None:
    title = _read(path).cells[0]
    assert title.cell_type == "markdown", "cell 0 must be the markdown title"
    first = title.source.lstrip().splitlines()[0]
    assert re.match(rf"^# {path.name[:2]} · \S", first), (
        f"{path.name}: the title line must read '# {path.name[:2]} · Title', got {first!r}")
    urls = BADGE_URL_RE.findall(title.source)
    assert len(urls) == 1, f"{path.name}: expected one Open-in-Colab badge, found {len(urls)}"
    expected = (f"https://colab.research.google.com/github/{REPO_SLUG}/blob/main/"
                f"notebooks/{path.name}")
    assert urls[0] == expected, f"{path.name}: badge points at {urls[0]}, not {expected}"
    assert "What you will learn" in title.source, f"{path.name}: no 'What you will learn' part"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_setup_cell_is_the_shared_one(path: Path) -> None:
    cells = _read(path).cells
    assert len(cells) > 1 and cells[1].cell_type == "code", "cell 1 must be the set-up code cell"
    assert cells[1].source == sync_notebooks.SETUP_CELL, (
        f"{path.name}: set-up cell differs; run python tools/sync_notebooks.py")


def test_sync_check_passes() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "sync_notebooks.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_ends_with_summary_then_exercises(path: Path) -> None:
    nb = _read(path)
    heads = [h for _, h in _headings(nb)]
    assert "## Summary" in heads and "## Exercises" in heads, (
        f"{path.name}: needs '## Summary' and '## Exercises' sections (has {heads})")
    assert heads[-2:] == ["## Summary", "## Exercises"], (
        f"{path.name}: the last two sections must be Summary then Exercises, got {heads[-2:]}")
    start = max(i for i, h in _headings(nb) if h == "## Exercises")
    solutions = [i for i, c in enumerate(nb.cells)
                 if c.cell_type == "code" and "### BEGIN SOLUTION" in c.source]
    assert len(solutions) >= 3, f"{path.name}: {len(solutions)} exercises; at least three"
    assert min(solutions) > start, f"{path.name}: exercises belong in the Exercises section"
    for i in solutions:
        assert "### END SOLUTION" in nb.cells[i].source, f"{path.name} cell {i}: no END SOLUTION"


# --- the set-up cell "on Colab", without Colab ------------------------------------------------


class _FakeOutput:
    def __init__(self) -> None:
        self.widget_manager_enabled = False

    def enable_custom_widget_manager(self) -> None:
        self.widget_manager_enabled = True


@pytest.fixture
def fake_colab(monkeypatch: pytest.MonkeyPatch):
    """A `google.colab` module in sys.modules, and subprocess.run recording instead of running."""
    output = _FakeOutput()
    google = types.ModuleType("google")
    colab = types.ModuleType("google.colab")
    colab.output = output
    google.colab = colab
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    calls: list[list[str]] = []

    def fake_run(cmd, *args, **kwargs):
        calls.append([str(c) for c in cmd])
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(subprocess, "run", fake_run)
    return types.SimpleNamespace(output=output, calls=calls)


def _run_setup_cell(magics: list | None = None) -> dict:
    """Run the set-up cell as IPython would: its `%pip` line becomes a call of the shell's
    `run_line_magic`, recorded in `magics` as ["%pip", *arguments]."""
    code = TransformerManager().transform_cell(sync_notebooks.SETUP_CELL)
    recorded = [] if magics is None else magics
    shell = types.SimpleNamespace(
        run_line_magic=lambda name, line: recorded.append([f"%{name}", *line.split()]))
    namespace: dict = {"get_ipython": lambda: shell}
    exec(compile(code, "<set-up cell>", "exec"), namespace)
    return namespace


def test_setup_cell_is_a_few_lines_a_student_reads_at_a_glance() -> None:
    lines = sync_notebooks.SETUP_CELL.splitlines()
    code = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    assert len(lines) <= 12 and len(code) <= 7, sync_notebooks.SETUP_CELL


def test_setup_cell_on_colab_with_package_installs_nothing(fake_colab, capsys) -> None:
    ns = _run_setup_cell(fake_colab.calls)
    assert fake_colab.output.widget_manager_enabled, "Colab's widget manager was not enabled"
    assert not any("git+" in " ".join(c) for c in fake_colab.calls), fake_colab.calls
    assert ns["device"].type in {"cpu", "cuda", "mps"}
    if ns["device"].type == "cpu":
        assert "Runtime > Change runtime type" in capsys.readouterr().out


def test_setup_cell_on_colab_without_package_installs_from_repo(fake_colab, monkeypatch) -> None:
    real_find_spec = importlib.util.find_spec
    missing = {"alexnet_edu", "torchsummary"}
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in missing else real_find_spec(name, *a))
    ns = _run_setup_cell(fake_colab.calls)
    pip = [c for c in fake_colab.calls if c[:2] == ["%pip", "install"]
           or c[1:4] == ["-m", "pip", "install"]]
    repo = [c for c in pip if f"git+{REPO_URL}" in c]
    # %pip installs into the kernel's own interpreter; --no-deps keeps Colab's CUDA torch
    assert repo and repo[0][0] == "%pip" and "--no-deps" in repo[0], f"no %pip of the repo: {pip}"
    assert any("torchsummary" in c for c in pip), f"torchsummary not installed: {pip}"
    assert not any("ipywidgets" in c for c in pip), "ipywidgets is present; must not reinstall"
    assert all(c[0] in ("%pip", sys.executable) for c in pip), "pip must run in the kernel's Python"
    assert ns["SMOKE"] in (True, False)


def test_setup_cell_locally_touches_nothing(monkeypatch) -> None:
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    calls, magics = [], []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    ns = _run_setup_cell(magics)
    assert calls == [] and magics == [] and ns["device"].type in {"cpu", "cuda", "mps"}


def test_setup_cell_locally_without_package_installs_nothing_and_its_comment_says_how(
        monkeypatch) -> None:
    """Locally the cell installs nothing (a student's environment is theirs): its first lines
    say how to install, and without the package the cell stops at the import they explain."""
    assert "pip install -r requirements.txt" in "".join(sync_notebooks.SETUP_CELL.splitlines()[:2])
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setitem(sys.modules, "alexnet_edu.notebook", None)   # its import fails
    magics: list = []
    with pytest.raises(ModuleNotFoundError) as failed:
        _run_setup_cell(magics)
    assert failed.value.name == "alexnet_edu.notebook" and magics == []


def test_one_place_names_the_repository() -> None:
    """Only settings.py spells out the repository; notebooks get it via the sync tool."""
    offenders = []
    for path in [*ROOT.glob("alexnet_edu/*.py"), *ROOT.glob("tools/*.py"), *NOTEBOOKS]:
        if path.name == "settings.py":
            continue
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".ipynb":  # generated badge/set-up cell are checked above
            nb = nbformat.reads(text, as_version=4)
            text = "\n".join(c.source for c in nb.cells[2:])
        if f"github.com/{REPO_SLUG}" in text:
            offenders.append(path.name)
    assert not offenders, f"the repository URL is written out in {offenders}; use settings.REPO_URL"


def test_failed_checks_and_missing_names_show_one_line_in_ipython(capsys) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    from alexnet_edu.notebook import brief_errors
    from alexnet_edu.notebook.checks import CheckFailed

    shell = InteractiveShell.instance()
    try:
        brief_errors()
        failed = shell.run_cell("from alexnet_edu.notebook.checks import check_equal\n"
                                "check_equal('conv2 output size', 26, 27)")
        out = capsys.readouterr()
        assert isinstance(failed.error_in_exec, CheckFailed)   # the cell still fails
        shown = out.out + out.err
        assert "conv2 output size" in shown and "checks.py" not in shown
        missing = shell.run_cell("check_equal('x', conv2_out, 27)")
        shown = "".join(capsys.readouterr())
        assert isinstance(missing.error_in_exec, NameError)
        assert "conv2_out" in shown and "Define:" in shown and "Traceback" not in shown
        other = shell.run_cell("1 / 0")
        assert isinstance(other.error_in_exec, ZeroDivisionError)
        assert "ZeroDivisionError" in "".join(capsys.readouterr())
    finally:
        InteractiveShell.clear_instance()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_exercise_question_is_checked_or_marked_as_discussion(path: Path) -> None:
    """An exercise that asks a question ("why ...?") either gives it an answer slot the check
    reads (its **Define:** line) or says that it is for discussion: a question nothing reads
    is graded as done whatever the student writes."""
    texts, in_exercises = [], False
    for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
        if cell.cell_type != "markdown":
            continue
        before, heading, after = cell.source.partition("## Exercises")
        if heading and not in_exercises and (not before or before.endswith("\n")):
            in_exercises = True
            texts.append((i, after))
        elif in_exercises:
            texts.append((i, cell.source))
    assert texts, f"{path.name}: no '## Exercises' section"
    problems = []
    for i, text in texts:
        questions = [line for line in text.splitlines()
                     if "?" in line and not line.lstrip().startswith("#")]
        answered = "**Define:**" in text or "discussion" in text.lower()
        if questions and not answered:
            problems.append(f"cell {i}: {questions[0].strip()[:80]!r}")
    assert not problems, (f"{path.name}: questions with no answer slot and not for discussion: "
                          f"{problems}")
