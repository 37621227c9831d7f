"""Friendly checks for exercises: say what was expected, what came, and how far off it is.

Every check prints one line starting with a tick when it passes, and raises `CheckFailed`
(an AssertionError, so pytest, nbval and nbgrader all count it as a failure) with a specific
message when it does not.

    check_equal("conv2 output size", answer, 27)
    check_shape("LRN output", b, (8, 96, 55, 55))
    check_close("your LRN", mine, reference, tol=1e-6)
    check_layers(student_model, AlexNet(...), images)   # names the first layer that differs

A student's `NotImplementedError` (the released notebooks' placeholder) is never caught here:
it reaches the student as it is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from .model import eval_mode, find_layer

__all__ = ["CheckFailed", "relative_error", "check_equal", "check_shape", "check_close",
           "check_true", "check_layers"]

# How the relative error is defined, quoted in failure messages so that a number like 3e-02 means
# something to the student.
_REL_ERR = "max|x-y| / max(1e-8, |x|+|y|)"


class CheckFailed(AssertionError):
    """An exercise check that did not pass; the message says why."""


def _ok(message: str) -> None:
    print(f"\u2714 {message}")


def _cpu64(value: Any) -> torch.Tensor:
    """A detached float64 CPU copy: answers computed on a GPU compare with CPU references."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", torch.float64)
    return torch.as_tensor(value, dtype=torch.float64)


def relative_error(got: Any, expected: Any) -> float:
    """max |x - y| / max(1e-8, |x| + |y|), elementwise (CS231n's measure): ~1e-7 is a match in
    float32, ~1e-2 is a bug."""
    x, y = _cpu64(got), _cpu64(expected)
    if x.numel() == 0 and y.numel() == 0:
        return 0.0
    return ((x - y).abs() / (x.abs() + y.abs()).clamp_min(1e-8)).max().item()


def _require_answer(name: str, got: Any, wanted: str) -> None:
    if got is None or got is Ellipsis or got is NotImplemented:
        raise CheckFailed(f"{name}: no answer yet (got {got!r}); expected {wanted}")


def _tensor(name: str, got: Any, wanted: str) -> torch.Tensor:
    _require_answer(name, got, wanted)
    try:   # a tensor is returned as it is
        return torch.as_tensor(got)
    except (TypeError, ValueError, RuntimeError):
        raise CheckFailed(f"{name}: expected {wanted}, got a {type(got).__name__}") from None


def check_equal(name: str, got: Any, expected: Any) -> None:
    """Exact equality, for integers, strings and tuples (e.g. an output size)."""
    _require_answer(name, got, f"a value like {expected!r}")
    several = isinstance(expected, (list, tuple))
    if isinstance(got, torch.Tensor) and got.numel() == 1 and not several:
        got = got.item()  # a 0-d tensor such as torch.tensor(27) is the number 27
    elif several:
        # a sequence of values: a list, tuple, tensor or array with the same values is the same
        values = got.tolist() if hasattr(got, "tolist") else got
        if isinstance(values, (list, tuple)):
            got = type(expected)(values)
        elif hasattr(got, "tolist"):
            got = values   # one number (a 0-d tensor, a NumPy scalar) where several are expected
    try:
        same = bool(got == expected)
    except (RuntimeError, ValueError):  # e.g. a tensor of several values against a number
        same = False
    if not same:
        if _long(got) and _long(expected):
            raise CheckFailed(_sequence_difference(name, list(got), list(expected)))
        hint = ""
        if (isinstance(got, float) and isinstance(expected, int) and math.isfinite(got)
                and got != int(got)):
            hint = " - sizes are whole numbers: did you forget to floor the division?"
        elif type(got) is not type(expected) and str(got) == str(expected):
            hint = f" (a {type(got).__name__}, expected a {type(expected).__name__})"
        raise CheckFailed(f"{name}: expected {expected!r}, got {got!r}{hint}")
    _ok(f"{name}: all {len(got)} values as expected" if _long(got) else f"{name}: {got!r}")


def _long(value: Any) -> bool:
    """A list or tuple too long to read at a glance in a one-line message."""
    return isinstance(value, (list, tuple)) and len(value) > 8


def _sequence_difference(name: str, got: list, expected: list) -> str:
    """Where two long lists differ: how many entries, and the first one, not both in full."""
    if len(got) != len(expected):
        return f"{name}: expected {len(expected)} values, got {len(got)}"
    wrong = [i for i, (g, e) in enumerate(zip(got, expected)) if g != e]
    i = wrong[0]
    return (f"{name}: {len(wrong)} of {len(got)} values differ; the first at index {i}: "
            f"expected {expected[i]!r}, got {got[i]!r}")


def check_shape(name: str, got: Any, expected: Sequence[int]) -> None:
    """`got` is a tensor/array of shape `expected` (a shape such as `x.shape` is accepted too)."""
    expected = tuple(expected)
    _require_answer(name, got, f"a tensor of shape {expected}")
    if isinstance(got, (tuple, list)) and all(isinstance(d, int) for d in got):
        shape = tuple(got)  # torch.Size is a tuple
    elif hasattr(got, "shape"):
        shape = tuple(got.shape)
    else:
        raise CheckFailed(f"{name}: expected a tensor of shape {expected}, got a "
                          f"{type(got).__name__}")
    if shape != expected:
        hint = ""
        if len(shape) != len(expected):
            hint = f" ({len(shape)} dimensions instead of {len(expected)})"
        elif sorted(shape) == sorted(expected):
            hint = " (the same sizes in another order: a transpose or permute?)"
        raise CheckFailed(f"{name}: expected shape {expected}, got {shape}{hint}")
    _ok(f"{name}: shape {shape}")


def _difference(name: str, got: torch.Tensor, expected: torch.Tensor, tol: float) -> str | None:
    """None if `got` matches `expected` within `tol`, else the message that says how not."""
    if tuple(got.shape) != tuple(expected.shape):
        return f"{name}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}"
    if got.is_floating_point() and not torch.isfinite(got).all():
        bad = int((~torch.isfinite(got)).sum())
        return f"{name}: {bad} of {got.numel()} values are NaN or infinite"
    err = relative_error(got, expected)
    if err <= tol:
        return None
    x, y = _cpu64(got).flatten(), _cpu64(expected).flatten()
    # the element the error comes from, so the numbers shown give the error reported
    worst = int(((x - y).abs() / (x.abs() + y.abs()).clamp_min(1e-8)).argmax())
    where = tuple(int(i) for i in torch.unravel_index(torch.tensor(worst), expected.shape))
    return (f"{name}: relative error {err:.2e} is above the tolerance {tol:g} "
            f"(relative error = {_REL_ERR}); it is at index {where}: "
            f"got {x[worst].item():.6g}, expected {y[worst].item():.6g}")


def check_close(name: str, got: Any, expected: Any, tol: float = 1e-5,
                atol: float = 0.0) -> None:
    """Same shape and relative error (see `relative_error`) at most `tol`.

    Elements that differ by at most `atol` count as equal: near zero, float32 rounding alone
    gives a large *relative* error (1e-9 vs 2e-9 is 33 %), so values that are only rounding apart
    need an absolute floor."""
    exp_t = torch.as_tensor(expected)
    got_t = _tensor(name, got, f"a tensor of shape {tuple(exp_t.shape)}")
    if atol > 0 and got_t.shape == exp_t.shape:
        g, e = got_t.detach().cpu().double(), exp_t.detach().cpu().double()
        got_t, exp_t = torch.where((g - e).abs() <= atol, e, g), e
    message = _difference(name, got_t, exp_t, tol)
    if message:
        raise CheckFailed(message)
    _ok(f"{name}: relative error {relative_error(got_t, exp_t):.1e} (tolerance {tol:g})")


def check_true(name: str, condition: bool, explanation: str) -> None:
    """A condition that must hold; `explanation` says what it means when it does not."""
    if not condition:
        raise CheckFailed(f"{name}: {explanation}")
    _ok(name)


def _layer_outputs(model: torch.nn.Module, x: torch.Tensor, names: list[str],
                   whose: str) -> dict[str, torch.Tensor]:
    """Outputs of the named layers (copied as emitted, so in-place ReLUs do not change them); a
    model that raises is reported with the layer it was in."""
    layers = {}
    for name in names:
        try:
            layers[name] = find_layer(model, name)
        except KeyError:
            raise CheckFailed(f"{whose} has no layer called {name!r}; name the layers like the "
                              f"reference: {', '.join(names)}") from None
    # Hooks of our own, not `model.activations`: the pre-hooks say which layer a failing
    # forward() was in.
    found: dict[str, torch.Tensor] = {}
    current = [""]
    handles = []
    for name, layer in layers.items():
        handles.append(layer.register_forward_pre_hook(
            lambda m, i, name=name: current.__setitem__(0, name)))
        handles.append(layer.register_forward_hook(
            lambda m, i, out, name=name: found.__setitem__(name, out.detach().cpu().clone())))
    param = next(model.parameters(), None)
    try:   # eval mode: dropout off, the comparison must be deterministic
        with eval_mode(model), torch.no_grad():
            model(x.to(param.device) if param is not None else x)
    except NotImplementedError:  # a RuntimeError, but the released notebooks' placeholder
        raise
    except (RuntimeError, ValueError, IndexError) as err:
        where = f"in layer {current[0]}" if current[0] else "before its first named layer"
        raise CheckFailed(f"{whose} raised {where}: {type(err).__name__}: {err}") from err
    finally:
        for h in handles:
            h.remove()
    missing = [n for n in names if n not in found]
    if missing:
        raise CheckFailed(f"{whose}'s forward() never ran layer(s) {', '.join(missing)}")
    return found


def check_layers(model: torch.nn.Module, reference: torch.nn.Module, x: torch.Tensor,
                 tol: float = 1e-5) -> None:
    """Run both models on `x` (eval mode, no gradients) and compare them layer by layer, naming
    the first layer whose output shape or values differ. The two models need the same named
    layers (conv1 ... fc8); copy the reference's weights into yours first if they should agree."""
    names = [n for n in reference.layer_names() if not n.startswith(("drop", "relu"))]
    theirs = _layer_outputs(reference, x, names, "the reference model")
    mine = _layer_outputs(model, x, names, "your model")
    for k, name in enumerate(names):
        before = (f"the layers before it ({', '.join(names[:k])}) agree" if k
                  else "it is the first layer")
        message = _difference(f"layer {name}", mine[name], theirs[name], tol)
        if message:
            raise CheckFailed(f"{message}; {before}")
    _ok(f"all {len(names)} layers agree within relative error {tol:g} ({', '.join(names)})")
