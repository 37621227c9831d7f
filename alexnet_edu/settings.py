"""The project's few settings, all read from the environment in one place.

- ``ALEXNET_EDU_SMOKE=1``: smoke mode. Notebooks and the CLI run the *same code* on less data,
  fewer epochs and smaller images, so that CI can execute every notebook in minutes on a CPU.
- ``ALEXNET_EDU_DATA``: the data root, where torchvision's downloads land. Default: the working
  folder's ``data/`` (`PROJECT_ROOT`).

`PROJECT_ROOT` (`files`): the clone, or the folder Python started in (``/content`` on Colab).
"""

from __future__ import annotations

import os
from pathlib import Path

from .files import PROJECT_ROOT, shown_path  # re-exported: the edge's callers use them here

__all__ = ["REPO_URL", "REPO_SLUG", "smoke_mode", "data_root", "PROJECT_ROOT", "shown_path"]

# The one place that names the repository (Colab badges and set-up cells are generated from it
# by tools/sync_notebooks.py, and tests/test_notebooks_layout.py checks they agree).
REPO_SLUG = "alexnet-edu/alexnet-edu"
REPO_URL = f"https://github.com/{REPO_SLUG}"


def smoke_mode() -> bool:
    """True when ALEXNET_EDU_SMOKE is set to 1/true/yes."""
    return os.environ.get("ALEXNET_EDU_SMOKE", "").strip().lower() in {"1", "true", "yes", "on"}


def data_root() -> Path:
    """Where datasets live: $ALEXNET_EDU_DATA, else PROJECT_ROOT/data (the clone's data/
    folder, or the working folder's when the package is installed elsewhere)."""
    env = os.environ.get("ALEXNET_EDU_DATA", "").strip()
    if env:
        return Path(env).expanduser().resolve()
    return PROJECT_ROOT / "data"
