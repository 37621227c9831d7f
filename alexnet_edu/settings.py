"""The project's few settings, all read from the environment in one place.

- ``ALEXNET_EDU_SMOKE=1``: smoke mode. Notebooks and the CLI run the *same code* on less data,
  fewer epochs and smaller images, so that CI can execute every notebook in minutes on a CPU.
- ``ALEXNET_EDU_DATA``: the data root, where torchvision's downloads land. Default: the
  repository's ``data/`` folder (or ``./data`` when the package is installed elsewhere).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["REPO_URL", "REPO_SLUG", "smoke_mode", "data_root", "PROJECT_ROOT", "shown_path"]

# The one place that names the repository (Colab badges and set-up cells are generated from it
# by tools/sync_notebooks.py, and tests/test_notebooks_layout.py checks they agree).
REPO_SLUG = "alexnet-edu/alexnet-edu"
REPO_URL = f"https://github.com/{REPO_SLUG}"

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def smoke_mode() -> bool:
    """True when ALEXNET_EDU_SMOKE is set to 1/true/yes."""
    return os.environ.get("ALEXNET_EDU_SMOKE", "").strip().lower() in {"1", "true", "yes", "on"}


def data_root() -> Path:
    """Where datasets live: $ALEXNET_EDU_DATA, else the repository's data/ folder."""
    env = os.environ.get("ALEXNET_EDU_DATA", "").strip()
    if env:
        return Path(env).expanduser().resolve()
    if (PROJECT_ROOT / "pyproject.toml").exists():
        return PROJECT_ROOT / "data"
    return Path.cwd() / "data"


def shown_path(path: str | Path) -> str:
    """`path` as people should read it in a message or a stored notebook output: relative to the
    repository when inside it ("runs/cpu/fashion-mnist"), else with the home folder as "~"."""
    path = Path(path).expanduser().resolve()
    for base, prefix in ((PROJECT_ROOT, ""), (Path.home(), "~/")):
        try:
            return prefix + str(path.relative_to(base))
        except ValueError:
            continue
    return str(path)
