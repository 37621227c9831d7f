"""Answers as data: what a graded notebook's kernel writes out and the checking kernel reads back.

Only data crosses: numbers, strings, None, booleans, tensors, NumPy arrays, and lists, tuples,
dicts and this package's dataclasses of those, written with `torch.save` and read with
`torch.load(..., weights_only=True)`, which runs no code from the file. A model is not taken.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
from pathlib import Path
from typing import Any

import torch

__all__ = ["Unsupported", "encode", "decode", "export", "load"]

_DATACLASS = "__alexnet_edu_dataclass__"
_NDARRAY = "__alexnet_edu_ndarray__"
MANIFEST = "manifest.json"


class Unsupported(TypeError):
    """A value that is not data the checks can take."""


def encode(value: Any, depth: int = 0) -> Any:
    """`value` as torch.load(weights_only=True) can read it back; Unsupported if it is not data."""
    if depth > 50:
        raise Unsupported("nested too deeply")
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        return value
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone().requires_grad_(value.requires_grad)
    if isinstance(value, torch.Size):
        return torch.Size(value)
    if type(value).__module__ == "numpy":
        import numpy as np
        if isinstance(value, np.ndarray):
            return {_NDARRAY: torch.from_numpy(value.copy())}
        if isinstance(value, np.generic):
            return value.item()
    if type(value) in (list, tuple):   # not a subclass: a namedtuple or torch.Size is no list
        items = [encode(v, depth + 1) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if type(value) is dict:
        if not all(isinstance(k, (str, int, float, bool, tuple)) for k in value):
            raise Unsupported("a dict whose keys are not numbers or strings")
        return {k: encode(v, depth + 1) for k, v in value.items()}
    cls = type(value)
    if dataclasses.is_dataclass(value) and cls.__module__.startswith("alexnet_edu."):
        fields = {f.name: encode(getattr(value, f.name), depth + 1)
                  for f in dataclasses.fields(value) if f.init}
        return {_DATACLASS: f"{cls.__module__}:{cls.__qualname__}", "fields": fields}
    raise Unsupported(f"a {cls.__name__}")


def decode(value: Any) -> Any:
    """The inverse of `encode`: only this package's dataclasses are built, from data fields."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if isinstance(value, tuple) and not isinstance(value, torch.Size):
        return tuple(decode(v) for v in value)
    if isinstance(value, dict):
        if set(value) == {_NDARRAY} and isinstance(value[_NDARRAY], torch.Tensor):
            return value[_NDARRAY].numpy()
        if set(value) == {_DATACLASS, "fields"}:
            module, _, name = str(value[_DATACLASS]).partition(":")
            if not module.startswith("alexnet_edu.") or "." in name or not name:
                raise Unsupported(f"dataclass {value[_DATACLASS]!r}")
            cls = getattr(importlib.import_module(module), name, None)
            if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
                raise Unsupported(f"dataclass {value[_DATACLASS]!r}")
            return cls(**{str(k): decode(v) for k, v in dict(value["fields"]).items()})
        return {k: decode(v) for k, v in value.items()}
    return value


def export(namespace: dict, names: list[str], folder: Path | str) -> None:
    """Write each of `names` found in `namespace` to `folder`/<name>.pt; the manifest says why a
    name was not written (missing, or not data)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for name in names:
        if name not in namespace:
            manifest[name] = "not defined"
            continue
        try:
            torch.save(encode(namespace[name]), folder / f"{name}.pt")
            manifest[name] = "ok"
        except Unsupported as err:
            manifest[name] = f"not data the grader can take ({err})"
        except Exception as err:   # noqa: BLE001 - a student's object can fail any way
            manifest[name] = f"could not be written ({type(err).__name__})"
    (folder / MANIFEST).write_text(json.dumps(manifest))


def load(namespace: dict, names: list[str], folder: Path | str) -> None:
    """Put each of `names` written to `folder` into `namespace`; one not written or not readable
    stays undefined (its check's NameError, with the manifest, says why)."""
    for name in names:
        path = Path(folder) / f"{name}.pt"
        if path.is_file():
            with contextlib.suppress(Exception):   # a forged file is refused, whatever it holds
                namespace[name] = decode(torch.load(path, weights_only=True, map_location="cpu"))
