"""Where the project's files are (`PROJECT_ROOT`, `shown_path`), and files that are never
half-written: the one atomic write every part of the package uses."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["PROJECT_ROOT", "shown_path", "write_atomic", "temp_name"]


def temp_name(path: Path) -> Path:
    """Where `write_atomic` writes before the rename: ``.<name>.tmp<pid>`` beside `path` (a
    process killed mid-write leaves it behind; `alexnet-edu train` removes such leftovers)."""
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def write_atomic(path: str | Path, content: bytes | str | Callable[[Path], object]) -> Path:
    """Write `content` (bytes, text, or a function that writes a given path) to a temporary
    file in `path`'s folder, flush it to disk, then rename it over `path`: a reader, or a crash
    or full disk mid-write, never sees half a file; the previous file stays until the rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        if callable(content):
            content(tmp)
        else:
            with open(tmp, "wb") as f:
                f.write(content.encode() if isinstance(content, str) else content)
        fd = os.open(tmp, os.O_RDWR)
        try:
            os.fsync(fd)   # the bytes are on disk before the rename makes them count
        finally:
            os.close(fd)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)   # atomic on POSIX and Windows (same folder)
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
    return path


def _project_root(package: Path, cwd: Path) -> Path:
    """The clone that holds `package` (a pyproject.toml beside it), else the working folder."""
    clone = package.resolve().parent
    return clone if (clone / "pyproject.toml").is_file() else cwd.resolve()


# the clone when the package runs from one (editable install or its root), else the folder
# Python started in (/content on Colab): runs/ and data/ land where the student works,
# never inside site-packages.
PROJECT_ROOT = _project_root(Path(__file__).parent, Path.cwd())


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
