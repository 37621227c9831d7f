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
