"""The project's few settings, all read from the environment in one place.

- ``ALEXNET_EDU_SMOKE=1``: smoke mode. Notebooks and the CLI run the *same code* on less data,
  fewer epochs and smaller images, so that CI can execute every notebook in minutes on a CPU.
- ``ALEXNET_EDU_DATA``: the data root, where torchvision's downloads land. Default: the working
  folder's ``data/`` (`PROJECT_ROOT`).

`PROJECT_ROOT` is the repository when the package is used from its clone (an editable install,
or run from the clone's root); installed elsewhere (``pip install git+...`` on Colab, into
site-packages) it is the folder Python started in (``/content`` on Colab), so that ``runs/``
and ``data/`` land where the student works, never inside site-packages.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["REPO_URL", "REPO_SLUG", "smoke_mode", "data_root", "PROJECT_ROOT", "shown_path"]

# The one place that names the repository (Colab badges and set-up cells are generated from it
# by tools/sync_notebooks.py, and tests/test_notebooks_layout.py checks they agree).
REPO_SLUG = "alexnet-edu/alexnet-edu"
REPO_URL = f"https://github.com/{REPO_SLUG}"


def _project_root(package: Path, cwd: Path) -> Path:
    """The clone that holds `package` (a pyproject.toml beside it), else the working folder."""
    clone = package.resolve().parent
    return clone if (clone / "pyproject.toml").is_file() else cwd.resolve()


PROJECT_ROOT = _project_root(Path(__file__).parent, Path.cwd())


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
