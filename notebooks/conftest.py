"""`pytest` executes every notebook here with nbval, in smoke mode: the same code on less data.

The kernels nbval starts inherit this process's environment, so setting the variable here is
enough. Set ALEXNET_EDU_SMOKE=0 to run the notebooks in full (slow without a GPU).
"""

import os

os.environ.setdefault("ALEXNET_EDU_SMOKE", "1")
os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
