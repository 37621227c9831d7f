"""Shape arithmetic: how big is each layer's output, and what does it cost?

A convolution or pooling window of size k, moved with stride s over an input of size W padded
by p on each side, fits

    out = floor((W + 2p - d(k - 1) - 1) / s) + 1

times (d is the dilation; d(k - 1) + 1 is the window's effective size). The floor is where
AlexNet's famous 224-vs-227 puzzle comes from: the paper (Section 3.5 and Figure 2; Section 4.1's
224 x 224 patches) says the input is 224x224, but conv1 (k=11, s=4, p=0) then gives
(224 - 11) / 4 + 1 = 54.25 windows, which does not divide evenly, and the 55x55 maps drawn in
Figure 2 need (55 - 1) * 4 + 11 = 227 pixels.

`trace` measures the same numbers on a real forward pass, so they can be compared with the
formula rather than trusted.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .hooks import activations, eval_mode
from .input_checks import check_window, does_not_fit

__all__ = ["conv_output_size", "pool_output_size", "unused_pixels", "unread_pixels", "LayerRow",
           "Trace", "trace"]


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0,
                     dilation: int = 1) -> int:
    """Output size of a convolution along one axis: floor((W + 2p - d(k-1) - 1) / s) + 1.

    >>> conv_output_size(227, kernel=11, stride=4)   # AlexNet conv1
    55
    """
    extent = check_window(size, kernel, stride, padding, dilation)
    if size + 2 * padding < extent:
        raise ValueError("a " + does_not_fit(size, kernel, padding, dilation))
    return (size + 2 * padding - extent) // stride + 1


def pool_output_size(size: int, kernel: int, stride: int | None = None, padding: int = 0,
                     dilation: int = 1, ceil_mode: bool = False) -> int:
    """Output size of max/avg pooling along one axis, with PyTorch's rules: `stride` defaults
    to `kernel`; `ceil_mode=True` keeps a last, partial window unless it starts in the padding.

    >>> pool_output_size(55, kernel=3, stride=2)     # AlexNet's overlapping pooling, z=3, s=2
    27
    """
    stride = kernel if stride is None else stride
    extent = check_window(size, kernel, stride, padding, dilation)
    if padding > kernel // 2:  # PyTorch's rule: a window must never lie entirely in padding
        raise ValueError(f"padding ({padding}) must be at most half the kernel ({kernel}): "
                         f"use padding <= {kernel // 2}")
    # floor division also rounds negative numerators down, exactly like PyTorch's div_rtn
    out = (size + 2 * padding - extent + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1  # the last window would start in the right padding: PyTorch drops it
    if out < 1:
        hint = "" if ceil_mode else " (or set ceil_mode=True to keep a partial window)"
        raise ValueError("a pooling " + does_not_fit(size, kernel, padding, dilation) + hint)
    return out


def unused_pixels(size: int, kernel: int, stride: int = 1, padding: int = 0,
                  dilation: int = 1) -> int:
    """How many input pixels at the far edge no window reads: the price of the floor.

    >>> unused_pixels(224, kernel=11, stride=4)      # 53.25 strides fit: the last pixel is lost
    1
    >>> unused_pixels(227, kernel=11, stride=4)      # 54 strides fit exactly
    0
    """
    return size - 1 - max(_read_pixels(size, kernel, stride, padding, dilation), default=-1)


def unread_pixels(size: int, kernel: int, stride: int = 1, padding: int = 0,
                  dilation: int = 1) -> list[int]:
    """Every input pixel no window reads: at the far edge, and between windows (stride > window).

    >>> unread_pixels(13, kernel=1, stride=2)        # a 1-pixel window every 2 pixels
    [1, 3, 5, 7, 9, 11]
    """
    return sorted(set(range(size)) - _read_pixels(size, kernel, stride, padding, dilation))


def _read_pixels(size: int, kernel: int, stride: int, padding: int, dilation: int) -> set[int]:
    out = conv_output_size(size, kernel, stride, padding, dilation)
    # every pixel some window multiplies (window j, tap t reads j*s + t*d - p); with dilation a
    # window's span can end in pixels that fall between its taps, so count taps, not spans
    return {x for j in range(out) for t in range(kernel)
            if 0 <= (x := j * stride + t * dilation - padding) < size}


@dataclass(frozen=True)
class LayerRow:
    """One row of a trace: what a leaf layer produced on a real forward pass."""

    name: str
    kind: str
    output_shape: tuple[int, ...]
    parameters: int
    mult_adds: int


class Trace(list):
    """The rows of `trace`, plus a totals row and a printer."""

    @property
    def total_parameters(self) -> int:
        return sum(row.parameters for row in self)

    @property
    def total_mult_adds(self) -> int:
        return sum(row.mult_adds for row in self)

    def row(self, name: str) -> LayerRow:
        """The row of the layer called `name` (e.g. "conv1")."""
        for r in self:
            if r.name == name:
                return r
        raise KeyError(f"no layer named {name!r}; layers: {', '.join(r.name for r in self)}")

    def table(self) -> str:
        """A plain-text table, one line per layer and a totals line."""
        rows = [("layer", "type", "output shape", "parameters", "mult-adds"),
                *((r.name, r.kind, " x ".join(map(str, r.output_shape)), f"{r.parameters:,}",
                   f"{r.mult_adds:,}") for r in self),
                ("total", "", "", f"{self.total_parameters:,}", f"{self.total_mult_adds:,}")]
        widths = [max(map(len, column)) for column in zip(*rows)]
        # text columns left-aligned, numbers right-aligned
        line = "  ".join(f"{{:{'<' if i < 3 else '>'}{w}}}" for i, w in enumerate(widths))
        lines = [line.format(*row).rstrip() for row in rows]
        rule = "  ".join("-" * w for w in widths)
        return "\n".join([lines[0], rule, *lines[1:-1], rule, lines[-1]])

    __str__ = table   # so that print(trace(...)) shows the table


def _mult_adds(module: nn.Module, output: torch.Tensor) -> int:
    """Multiply-accumulate operations of one layer for one image (biases not counted)."""
    per_image = output[0]
    if isinstance(module, nn.Conv2d):
        # every output value is a dot product over (C_in / groups) * kH * kW inputs
        kh, kw = module.kernel_size
        return per_image.numel() * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return module.in_features * module.out_features
    return 0


def trace(model: nn.Module, input_size: tuple[int, ...] | torch.Size,
          device: str | torch.device | None = None) -> Trace:
    """Every leaf layer's output shape, parameters and multiply-adds, measured on one image of
    `input_size` (C, H, W) on `device` (default: the parameters'), in eval mode."""
    input_size = tuple(input_size)[1:] if len(input_size) == 4 else tuple(input_size)
    if len(input_size) != 3:
        raise ValueError(f"input_size must be (channels, height, width), got {tuple(input_size)}")
    first = next(model.parameters(), None)
    device = device or (first.device if first is not None else "cpu")
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    # every leaf layer; Flatten only reshapes (and Identity is an ablated layer)
    leaves = [name for name, m in model.named_modules() if name and not list(m.children())
              and not isinstance(m, (nn.Identity, nn.Flatten))]
    with eval_mode(model):
        outputs = activations(model, torch.zeros(1, *input_size, device=device, dtype=dtype),
                              leaves)
    modules = dict(model.named_modules())
    return Trace(LayerRow(name.rsplit(".", 1)[-1], type(modules[name]).__name__,
                          tuple(out.shape[1:]),
                          sum(p.numel() for p in modules[name].parameters(recurse=False)),
                          _mult_adds(modules[name], out)) for name, out in outputs.items())
