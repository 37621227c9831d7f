"""The notebooks' companions: their set-up cell, plots, widgets and the tools of notebooks 06-10.

None of the lesson's code (`alexnet_edu.model`, `train`, ...) imports from here: these modules
show, check and explore what the core computes.
"""

from .setup import brief_errors, keep_runs_on_drive, set_up

__all__ = ["set_up", "keep_runs_on_drive", "brief_errors"]
