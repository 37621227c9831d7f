"""Friendly checks for exercises: say what was expected, what came, and how far off it is.

Every check prints one line starting with a tick when it passes, and raises `CheckFailed`
(an AssertionError, so pytest, nbval and nbgrader all count it as a failure) with a specific
message when it does not.

    check_equal("conv2 output size", answer, 27)
    check_shape("LRN output", b, (8, 96, 55, 55))
    check_close("your LRN", mine, reference, tol=1e-6)
    check_layers(student_model, AlexNet(...), images)   # names the first layer that differs
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["CheckFailed", "relative_error", "check_equal", "check_shape", "check_close",
           "check_true", "check_layers"]


class CheckFailed(AssertionError):
    """An exercise check that did not pass; the message says why."""


def _ok(message: str) -> None:
    print(f"\u2714 {message}")


def relative_error(got: Any, expected: Any) -> float:
    """max |x - y| / max(1e-8, |x| + |y|), elementwise (CS231n's measure): ~1e-7 is a match in
    float32, ~1e-2 is a bug."""
    x = torch.as_tensor(got, dtype=torch.float64)
    y = torch.as_tensor(expected, dtype=torch.float64)
    if x.numel() == 0 and y.numel() == 0:
        return 0.0
    return ((x - y).abs() / (x.abs() + y.abs()).clamp_min(1e-8)).max().item()


def check_equal(name: str, got: Any, expected: Any) -> None:
    """Exact equality, for integers, strings and tuples (e.g. an output size)."""
    if got is None or got is Ellipsis:
        raise CheckFailed(f"{name}: no answer yet (got {got!r}); expected a value like "
                          f"{type(expected).__name__}")
    if got != expected:
        hint = ""
        if isinstance(got, (int, float)) and isinstance(expected, int) and got != int(got):
            hint = " - sizes are whole numbers: did you forget to floor the division?"
        raise CheckFailed(f"{name}: expected {expected!r}, got {got!r}{hint}")
    _ok(f"{name}: {got!r}")


def check_shape(name: str, got: Any, expected: Sequence[int]) -> None:
    """`got` is a tensor/array of shape `expected`."""
    shape = tuple(getattr(got, "shape", ()))
    if not hasattr(got, "shape"):
        raise CheckFailed(f"{name}: expected a tensor of shape {tuple(expected)}, got "
                          f"{type(got).__name__}")
    if shape != tuple(expected):
        raise CheckFailed(f"{name}: expected shape {tuple(expected)}, got {shape}")
    _ok(f"{name}: shape {shape}")


def check_close(name: str, got: Any, expected: Any, tol: float = 1e-5) -> None:
    """Same shape and relative error (see `relative_error`) at most `tol`."""
    if got is None:
        raise CheckFailed(f"{name}: no answer yet (got None)")
    got_t, exp_t = torch.as_tensor(got), torch.as_tensor(expected)
    if tuple(got_t.shape) != tuple(exp_t.shape):
        raise CheckFailed(f"{name}: expected shape {tuple(exp_t.shape)}, got {tuple(got_t.shape)}")
    if got_t.dtype.is_floating_point and not torch.isfinite(got_t).all():
        raise CheckFailed(f"{name}: contains NaN or infinity")
    err = relative_error(got_t, exp_t)
    if not err <= tol:
        x, y = got_t.double().flatten(), exp_t.double().flatten()
        worst = int((x - y).abs().argmax()) if x.numel() else 0
        where = tuple(int(i) for i in torch.unravel_index(torch.tensor(worst), exp_t.shape))
        raise CheckFailed(f"{name}: relative error {err:.2e} is above the tolerance {tol:.0e}; "
                          f"largest difference at index {where}: got {x[worst].item():.6g}, "
                          f"expected {y[worst].item():.6g}")
    _ok(f"{name}: relative error {err:.1e} (tolerance {tol:.0e})")


def check_true(name: str, condition: bool, explanation: str) -> None:
    """A condition that must hold; `explanation` says what it means when it does not."""
    if not condition:
        raise CheckFailed(f"{name}: {explanation}")
    _ok(name)


def check_layers(model: torch.nn.Module, reference: torch.nn.Module, x: torch.Tensor,
                 tol: float = 1e-5) -> None:
    """Run both models on `x` (eval mode, no gradients) and compare them layer by layer, naming
    the first layer whose output shape or values differ. The two models need the same named
    layers (conv1 ... fc8); copy the reference's weights into yours first if they should agree."""
    from .model import activations

    names = [n for n in reference.layer_names() if not n.startswith(("drop", "relu"))]
    model.eval()
    reference.eval()
    try:
        mine = activations(model, x, names)
    except KeyError as err:
        raise CheckFailed(f"your model is missing a layer: {err}") from None
    theirs = activations(reference, x, names)
    for name in names:
        a, b = mine[name], theirs[name]
        if a.shape != b.shape:
            raise CheckFailed(f"layer {name}: expected output shape {tuple(b.shape)}, got "
                              f"{tuple(a.shape)} (the layers before it agree)")
        err = relative_error(a, b)
        if err > tol:
            raise CheckFailed(f"layer {name}: outputs differ (relative error {err:.2e} > "
                              f"{tol:.0e}); the layers before it agree")
    _ok(f"all {len(names)} layers agree ({', '.join(names)})")
