"""`pytest` executes every notebook in notebooks/ with nbval, in smoke mode: the same code on
less data. (This file sits at the top, not in notebooks/, so that the notebooks folder holds
only what a student opens.)

The kernels nbval starts inherit this process's environment, so setting the variable here is
enough. Set ALEXNET_EDU_SMOKE=0 to run the notebooks in full (slow without a GPU).
"""

import os

os.environ.setdefault("ALEXNET_EDU_SMOKE", "1")
os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "newcomer: runs every notebook on a fresh clone with only Fashion-MNIST "
        "(tests/test_newcomer.py; minutes)")


# The figure test (viz.layout_problems) runs after every draw of every figure the notebooks
# make; what it finds fails the run at the end, listed by figure.
_FIGURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".pytest-figure-check.txt")
if "ALEXNET_EDU_FIGURE_CHECK" not in os.environ:
    if os.path.exists(_FIGURES):
        os.remove(_FIGURES)
    os.environ["ALEXNET_EDU_FIGURE_CHECK"] = _FIGURES


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("ALEXNET_EDU_FIGURE_CHECK") != _FIGURES or not os.path.exists(_FIGURES):
        return
    with open(_FIGURES, encoding="utf-8") as report:
        problems = sorted(set(report.read().splitlines()))
    os.remove(_FIGURES)
    if problems:
        print("\nfigures with text outside them or on other text (viz.layout_problems):\n  "
              + "\n  ".join(problems))
        session.exitstatus = 1
