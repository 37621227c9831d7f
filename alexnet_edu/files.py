"""Files that are never half-written: the one atomic write every part of the package uses."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["write_atomic", "temp_name"]


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
