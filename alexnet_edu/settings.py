"""The project's few settings, all read from the environment in one place (the edge)."""

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
    """``ALEXNET_EDU_SMOKE=1``: the same code on less data, so that CI runs every notebook."""
    return os.environ.get("ALEXNET_EDU_SMOKE", "").strip().lower() in {"1", "true", "yes", "on"}


def data_root() -> Path:
    """Where datasets live (torchvision's downloads land): $ALEXNET_EDU_DATA, else
    PROJECT_ROOT/data (the clone's data/, or the working folder's for an installed package)."""
    env = os.environ.get("ALEXNET_EDU_DATA", "").strip()
    if env:
        return Path(env).expanduser().resolve()
    return PROJECT_ROOT / "data"
