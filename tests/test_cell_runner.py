"""How the grader loads a student's answer cell into the checking kernel (`cell_runner._load`):
the answer's functions see the kernel live, its own names where they clash with the kernel's,
and everything a notebook cell can do (classes, `global`, pickling) still works."""

from __future__ import annotations

import math

from alexnet_edu.course import values
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
    """`import math` where the kernel's `math` is that module, and a helper the kernel also has
    but no function reads: the answer still runs in the live kernel (a later `scale` is read,
    a `global` write lands)."""
    ns = _kernel(math=math, scale=1, show=print, count=0)
    source = ("import math\nfrom math import floor\n\n\ndef show(x):\n    pass\n\n\n"
              "def f():\n    global count\n    count += 1\n    return floor(math.sqrt(scale))\n")
    assert _load(ns, _cell(source, ["f"], tmp_path)) is None
    ns["scale"] = 49
    assert ns["f"]() == 7 and ns["count"] == 1


def test_a_name_imported_as_something_else_or_also_assigned_is_a_clash(tmp_path):
    ns = _kernel(np=math, m=math)
    source = "import os as np\nimport math as m\nm = 2\n\n\ndef f():\n    return np.sep, m\n"
    assert _load(ns, _cell(source, ["f"], tmp_path)) is None
    assert ns["f"]() == ("/", 2) and ns["np"] is math and ns["m"] is math


def test_the_answers_other_names_helpers_and_star_imports_are_the_students(tmp_path):
    """Names the answer cell assigned arrive as data (`extra`); a clash elsewhere must not hide
    them, a kernel name of the same name must not shadow them; `_` helpers and names from a
    star import are the student's too."""
    values.export({"EPS": 1e-3}, ["EPS"], tmp_path)
    ns = _kernel(EPS=1e-8, m=3, _h=lambda: "kernel", pi=3)
    source = ("import math as m\nfrom math import *\n\n\ndef _h():\n    return 'student'\n\n\n"
              "def f():\n    return EPS, m.e, _h(), pi\n")
    cell = {**_cell(source, ["f"], tmp_path), "extra": ["EPS"]}
    assert _load(ns, cell) is None
    assert ns["f"]() == (1e-3, math.e, "student", math.pi)
    assert (ns["EPS"], ns["m"], ns["_h"](), ns["pi"]) == (1e-8, 3, "kernel", 3)   # the checks'
    star = _kernel(pi=3)
    assert _load(star, _cell("from math import *\n\n\ndef g():\n    return pi\n", ["g"],
                             tmp_path)) is None
    assert star["g"]() == math.pi and star["pi"] == 3
