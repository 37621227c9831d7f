"""Friendly checks for exercises: say what was expected, what came, and how far off it is.

A passing check prints one line starting with a tick; a failing one raises `CheckFailed` (an
AssertionError, so pytest, nbval and nbgrader count it) whose message says what is wrong.
`mistakes` ({what it is: its value}) names a common wrong answer the student's matches. A
student's `NotImplementedError` (the released notebooks' placeholder) is never caught here.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..hooks import eval_mode, find_layer, on_outputs

__all__ = ["CheckFailed", "relative_error", "check_equal", "check_shape", "check_close",
           "check_true", "check_layers"]


class CheckFailed(AssertionError):
    """An exercise check that did not pass; the message says why."""


def _ok(message: str) -> None:
    print(f"\u2714 {message}")


def _cpu64(value: Any) -> torch.Tensor:
    """A detached float64 CPU copy: answers computed on a GPU compare with CPU references."""
    return torch.as_tensor(value).detach().to("cpu", torch.float64)


def _errors(got: Any, expected: Any) -> torch.Tensor:
    x, y = _cpu64(got), _cpu64(expected)
    return ((x - y).abs() / (x.abs() + y.abs()).clamp_min(1e-8)).flatten()


def relative_error(got: Any, expected: Any) -> float:
    """max |x - y| / max(1e-8, |x| + |y|), elementwise (CS231n's measure): ~1e-7 is a match in
    float32, ~1e-2 is a bug."""
    errors = _errors(got, expected)
    return errors.max().item() if errors.numel() else 0.0


def _require_answer(name: str, got: Any, wanted: str) -> None:
    if got is None or got is Ellipsis or got is NotImplemented:
        raise CheckFailed(f"{name}: no answer yet (got {got!r}); expected {wanted}")


def check_equal(name: str, got: Any, expected: Any,
                mistakes: Mapping[str, Any] | None = None) -> None:
    """Exact equality (e.g. an output size); a float never matches an expected whole number (27.0
    from / where // was meant), and an answer equal to one of `mistakes` is named."""
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
    if not _equal(got, expected):
        if _long(got) and _long(expected):
            raise CheckFailed(_sequence_difference(name, list(got), list(expected)))
        hint = next((f" - that is {what}" for what, value in (mistakes or {}).items()
                     if _equal(got, value)), "")
        if (not hint and isinstance(got, float) and isinstance(expected, int)
                and math.isfinite(got) and got != int(got)):
            hint = " - sizes are whole numbers: did you forget to floor the division?"
        elif not hint and type(got) is not type(expected) and str(got) == str(expected):
            hint = f" (a {type(got).__name__}, expected a {type(expected).__name__})"
        raise CheckFailed(f"{name}: expected {expected!r}, got {got!r}{hint}")
    _float_for_integer(name, got, expected)
    _ok(f"{name}: all {len(got)} values as expected" if _long(got) else f"{name}: {got!r}")


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (RuntimeError, ValueError, TypeError):  # e.g. a tensor of several values vs a number
        return False


def _float_for_integer(name: str, got: Any, expected: Any) -> None:
    """Fail on a float equal to an expected whole number (27.0 for 27): a / where // was meant."""
    pairs = (list(zip(got, expected)) if isinstance(expected, (list, tuple))
             and isinstance(got, (list, tuple)) else [(got, expected)])
    for i, (g, e) in enumerate(pairs):
        whole = isinstance(e, numbers.Integral) and not isinstance(e, bool)
        if whole and isinstance(g, numbers.Real) and not isinstance(g, numbers.Integral):
            where = f" at index {i}" if isinstance(expected, (list, tuple)) else ""
            raise CheckFailed(
                f"{name}: expected the whole number {e!r}{where}, got the float {float(g)!r}: use "
                f"integer arithmetic (// for a division that floors, int() for a count), as a "
                f"size or a count is a whole number")


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
    errors = _errors(got, expected)
    off = (errors > tol).nonzero().flatten()
    if len(off) == 0:
        return None
    x, y = _cpu64(got).flatten(), _cpu64(expected).flatten()
    # where the answer first goes wrong (row-major order) and where it is furthest off: the
    # first is usually the bug, the largest is what the relative error reports
    first, worst = int(off[0]), int(errors.argmax())

    def at(i: int) -> str:
        where = tuple(int(j) for j in torch.unravel_index(torch.tensor(i), expected.shape))
        return f"index {where}: got {x[i].item():.6g}, expected {y[i].item():.6g}"

    # the definition is quoted so that a number like 3e-02 means something to the student
    message = (f"{name}: relative error {errors.max().item():.2e} is above the tolerance {tol:g} "
               f"(relative error = max|x-y| / max(1e-8, |x|+|y|)); {len(off)} of {x.numel()} "
               f"values are off")
    if first == worst:
        return f"{message}; the first and largest at {at(first)}"
    return f"{message}; the first at {at(first)}; the largest at {at(worst)}"


def check_close(name: str, got: Any, expected: Any, tol: float = 1e-5,
                atol: float = 0.0, mistakes: Mapping[str, Any] | None = None) -> None:
    """Same shape and relative error (see `relative_error`) at most `tol`; values at most `atol`
    apart count as equal (float32 rounding near zero). An answer closer to one of `mistakes`
    than to `expected` fails with its name, even within `tol`."""
    exp_t = torch.as_tensor(expected)
    wanted = f"a tensor of shape {tuple(exp_t.shape)}"
    _require_answer(name, got, wanted)
    try:   # a tensor is returned as it is
        got_t = torch.as_tensor(got)
    except (TypeError, ValueError, RuntimeError):
        raise CheckFailed(f"{name}: expected {wanted}, got a {type(got).__name__}") from None
    raw = got_t
    if atol > 0 and got_t.shape == exp_t.shape:
        g, e = got_t.detach().cpu().double(), exp_t.detach().cpu().double()
        got_t, exp_t = torch.where((g - e).abs() <= atol, e, g), e
    message = _difference(name, got_t, exp_t, tol)
    if mistakes and raw.shape == exp_t.shape and torch.isfinite(_cpu64(raw)).all():
        right = relative_error(raw, exp_t)
        for what, value in mistakes.items():
            if torch.as_tensor(value).shape != raw.shape:
                continue
            off = relative_error(raw, value)
            if off < right and (message or off <= tol):
                raise CheckFailed(f"{name}: this is {what} (relative error {off:.1e} from it, "
                                  f"{right:.1e} from the expected answer)")
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
    """The named layers' outputs (copied: in-place ReLUs leave them); a crash names its layer."""
    for name in names:
        try:
            find_layer(model, name)
        except KeyError:
            raise CheckFailed(f"{whose} has no layer called {name!r}; name the layers like the "
                              f"reference: {', '.join(names)}") from None
    found: dict[str, torch.Tensor] = {}
    current = [""]   # the layer a failing forward() was in

    def keep(name: str, output: torch.Tensor) -> None:
        found[name] = output.detach().cpu().clone()

    param = next(model.parameters(), None)
    try:   # eval mode: dropout off, the comparison must be deterministic
        with on_outputs(model, names, keep, before=lambda name: current.__setitem__(0, name)), \
                eval_mode(model), torch.no_grad():
            model(x.to(param.device) if param is not None else x)
    except NotImplementedError:  # a RuntimeError, but the released notebooks' placeholder
        raise
    except (RuntimeError, ValueError, IndexError) as err:
        where = f"in layer {current[0]}" if current[0] else "before its first named layer"
        raise CheckFailed(f"{whose} raised {where}: {type(err).__name__}: {err}") from err
    missing = [n for n in names if n not in found]
    if missing:
        raise CheckFailed(f"{whose}'s forward() never ran layer(s) {', '.join(missing)}")
    return found


def check_layers(model: torch.nn.Module, reference: torch.nn.Module, x: torch.Tensor,
                 tol: float = 1e-5) -> None:
    """Run both models on `x` (eval mode, no gradients) and name the first layer (conv1 ... fc8,
    named alike in both) whose output shape or values differ."""
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
