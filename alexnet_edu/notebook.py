"""What every notebook's first cell does once alexnet_edu is importable (locally or on Colab)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import torch

from . import __version__
from .checks import CheckFailed
from .device import pick_device
from .profiles import Profile, current_profile
from .viz import show_figures_inline

__all__ = ["set_up"]


def set_up() -> tuple[torch.device, Profile, bool]:
    """(device, profile, smoke) for a notebook, saying which. On Google Colab it also installs
    what Colab lacks (torchsummary; ipywidgets when missing) and turns on Colab's widget manager
    (Colab shows ipywidgets only with it on), and warns when the runtime has no GPU. In IPython,
    failed checks and missing exercise names show one clear message (`brief_errors`), and the
    package's figures show as pictures (`viz.show_figures_inline`)."""
    brief_errors()
    show_figures_inline()
    in_colab = "google.colab" in sys.modules
    if in_colab:
        missing = [m for m in ("torchsummary", "ipywidgets") if importlib.util.find_spec(m) is None]
        if missing:   # into the kernel's own interpreter
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", *missing], check=True)
        from google.colab import output  # only exists on Colab

        output.enable_custom_widget_manager()
    device = pick_device()   # CUDA, then Apple MPS, then CPU (and says so)
    if in_colab and device.type != "cuda":
        print("This Colab runtime has no GPU. Training cells will be slow: choose "
              "Runtime > Change runtime type > T4 GPU, then Runtime > Run all.")
    # the run's size: smoke (CI), cpu (no CUDA GPU: 67 px, minutes), full (a CUDA GPU)
    profile = current_profile()
    print(f"alexnet_edu {__version__}; {profile}")
    return device, profile, profile.name == "smoke"


def brief_errors() -> None:
    """In IPython/Jupyter, show a failed exercise check (`checks.CheckFailed`) and a NameError as
    one line that says what is wrong, not as a traceback through alexnet_edu's internals. The
    cell still fails (nbval, nbgrader and the grading command count it); other errors keep
    their full traceback."""
    try:
        from IPython import get_ipython  # present wherever a notebook runs
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        shell.set_custom_exc((CheckFailed, NameError), _brief)


def _brief(shell, etype, value, tb, tb_offset=None) -> list[str]:
    if issubclass(etype, NameError):
        lines = [f"NameError: {value}. Run the cell that defines it first; an exercise's task "
                 "says, in its \"Define:\" line, which names your answer cell must define."]
    else:
        lines = [f"\u2718 {value}"]
    shell._showtraceback(etype, value, lines)   # as an error output: the cell still fails
    return lines
