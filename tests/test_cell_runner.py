"""How the grader loads a student's answer cell into the checking kernel (`cell_runner._load`):
the answer's functions see the kernel live, its own names where they clash with the kernel's,
and everything a notebook cell can do (classes, `global`, pickling) still works."""

from __future__ import annotations

import math

from alexnet_edu.course.cell_runner import _load


def _cell(source: str, functions: list[str], tmp_path) -> dict:
    return {"delete": [], "names": [], "extra": [], "folder": str(tmp_path), "source": source,
            "functions": functions}


def _kernel(**names) -> dict:
    return {"__name__": "__main__", **names}


def test_without_a_clash_the_answer_reads_and_writes_the_live_kernel(tmp_path):
    ns = _kernel(base=10, counter=0, scale=1)
    source = ("class Counter:\n    start = base\n\n\n"
              "def bump():\n    global counter\n    counter += scale\n")
    assert _load(ns, _cell(source, ["Counter", "bump"], tmp_path)) is None
    assert ns["Counter"].start == 10            # a class body sees the kernel's names
    ns["scale"] = 5                             # changed after the answer: read live
    ns["bump"]()
    assert ns["counter"] == 5                   # `global` writes reach the kernel
    assert ns["bump"].__module__ == "__main__"


def test_a_clashing_name_is_the_students_in_their_functions_and_the_notebooks_after(tmp_path):
    ns = _kernel(m=3)
    source = "import math as m\n\n\ndef area(r):\n    return m.pi * r * r\n"
    assert _load(ns, _cell(source, ["area"], tmp_path)) is None
    assert ns["area"](1) == math.pi             # the student's m (the old loader: 'int' has no pi)
    assert ns["m"] == 3                         # the checks keep the notebook's m
    assert ns["area"].__module__ == "__main__"


def test_an_answer_that_raises_reports_its_error_and_binds_nothing(tmp_path):
    ns = _kernel(m=3)
    error = _load(ns, _cell("import math as m\nx = 1 / 0\n", ["f"], tmp_path))
    assert error == "ZeroDivisionError: division by zero"
    assert "x" not in ns and ns["m"] == 3


def test_importing_what_the_kernel_already_has_is_no_clash(tmp_path):
    """`import math` where the kernel's `math` is that module, a `for _` loop (IPython's own
    `_`): the answer still runs in the live kernel, so a later change of `scale` is read."""
    ns = _kernel(math=math, scale=1, _=None)
    source = ("import math\nfrom math import floor\n\nfor _ in range(2):\n    pass\n\n\n"
              "def f():\n    return floor(math.sqrt(scale))\n")
    assert _load(ns, _cell(source, ["f"], tmp_path)) is None
    ns["scale"] = 49
    assert ns["f"]() == 7


def test_a_name_imported_as_something_else_or_also_assigned_is_a_clash(tmp_path):
    ns = _kernel(np=math, m=math)
    source = "import os as np\nimport math as m\nm = 2\n\n\ndef f():\n    return np.sep, m\n"
    assert _load(ns, _cell(source, ["f"], tmp_path)) is None
    assert ns["f"]() == ("/", 2) and ns["np"] is math and ns["m"] is math
