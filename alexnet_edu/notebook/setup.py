"""What every notebook's first cell does once alexnet_edu is importable (locally or on Colab)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import torch

from .. import __version__
from ..device import pick_device
from ..profiles import Profile, current_profile
from ..settings import PROJECT_ROOT, REPO_URL, shown_path
from .checks import CheckFailed
from .viz import show_figures_inline

__all__ = ["set_up", "keep_runs_on_drive"]

DRIVE = Path("/content/drive")            # where Colab mounts Google Drive


def set_up(drive: bool = False) -> tuple[torch.device, Profile, bool]:
    """(device, profile, smoke) for a notebook, saying which. On Colab it also installs what
    Colab lacks, turns on its widget manager, warns when there is no GPU and with `drive=True`
    keeps runs/ on Google Drive. Running it again installs nothing twice."""
    brief_errors()
    show_figures_inline()
    in_colab = "google.colab" in sys.modules
    if in_colab:
        missing = [m for m in ("torchsummary", "ipywidgets") if importlib.util.find_spec(m) is None]
        if missing:   # into the kernel's own interpreter
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", *missing], check=True)
            print(f"Installed {', '.join(missing)} (Colab lacked them)")
        print(f"alexnet_edu {__version__} is installed in this runtime (from {REPO_URL}: the "
              "set-up cell installs it once per runtime; it survives \"Restart runtime\")")
        from google.colab import output  # only exists on Colab

        output.enable_custom_widget_manager()
    if drive:
        keep_runs_on_drive()
    device = pick_device()   # CUDA, then Apple MPS, then CPU (and says so)
    # float32 stays IEEE float32 on Ampere and newer GPUs: cuDNN would convolve in TF32 (a 10-bit
    # mantissa), 1e-3 off, where exercise checks compare float32 answers to 1e-4 and 1e-6.
    # Training with amp="auto" runs under autocast (bfloat16 there); amp="off" gets slower
    torch.backends.cudnn.allow_tf32 = False
    if in_colab and device.type != "cuda":
        print("This Colab runtime has no GPU. Training cells will be slow: choose "
              "Runtime > Change runtime type > T4 GPU, then Runtime > Run all.")
    profile = current_profile()
    print(f"alexnet_edu {__version__}; {profile}")
    return device, profile, profile.name == "smoke"


def keep_runs_on_drive() -> Path:
    """On Colab: make runs/ a link to MyDrive/alexnet-edu/runs (returned), so that a model 04 or
    05 trained survives a disconnect and is found by 06-09 in another runtime."""
    if "google.colab" not in sys.modules:
        raise ValueError("keep_runs_on_drive works on Google Colab only: elsewhere runs/ is "
                         "already on your disk")
    from google.colab import drive  # only exists on Colab

    if not (DRIVE / "MyDrive").is_dir():
        drive.mount(str(DRIVE))      # asks for permission once per runtime
    target = DRIVE / "MyDrive" / "alexnet-edu" / "runs"
    target.mkdir(parents=True, exist_ok=True)
    runs = PROJECT_ROOT / "runs"
    already = runs.is_symlink() and runs.resolve() == target.resolve()   # run again
    if not already and (runs.exists() or runs.is_symlink()):
        raise FileExistsError(f"{shown_path(runs)} already exists here: move what it holds to "
                              f"{target} (or delete it), then run this cell again")
    if not already:
        runs.symlink_to(target, target_is_directory=True)
    print(f"runs/ is kept on your Google Drive: {target}")
    return target


def brief_errors() -> None:
    """In IPython, show a failed exercise check and a NameError as one line, not a traceback
    through alexnet_edu; the cell still fails (nbval and grading count it)."""
    from IPython import get_ipython  # ipywidgets, a dependency, brings IPython

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
