"""The clear errors of the lesson's functions: a window that does not fit its input
(`shapes`), and a batch `model.AlexNet` cannot take (the wrong rank, channels, dtype or size gets
a message saying what to do, not a shape error from deep inside a layer)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["check_window", "does_not_fit", "check_batch"]


def check_batch(model: nn.Module, x: torch.Tensor) -> None:
    """A ValueError unless `x` is a batch `model` (an AlexNet) can take."""
    if x.dim() != 4:
        raise ValueError(f"AlexNet expects a batch of shape (N, {model.in_channels}, H, W); "
                         f"got a {x.dim()}-D tensor of shape {tuple(x.shape)} "
                         "(add a batch dimension with x.unsqueeze(0)?)")
    if x.shape[1] != model.in_channels:
        raise ValueError(f"AlexNet was built for {model.in_channels} input channel(s), got "
                         f"{x.shape[1]} (shape {tuple(x.shape)})")
    if not x.is_floating_point():
        raise ValueError(f"AlexNet expects floating-point images, got dtype {x.dtype} "
                         "(convert uint8 images with x.float() / 255, then normalize)")
    h, w = x.shape[-2:]
    if model.variant == "paper" and (h, w) != (model.image_size, model.image_size):
        # fc6's input size is fixed by image_size, so other sizes cannot pass through
        other = (f"or build AlexNet(image_size={h})" if h == w >= model.min_image_size else
                 f"the smallest square input this model's layers take is "
                 f"{model.min_image_size}x{model.min_image_size}")
        raise ValueError(f"this AlexNet was built for {model.image_size}x{model.image_size} "
                         f"inputs (image_size={model.image_size}), got {h}x{w}: resize the "
                         f"images to {model.image_size}x{model.image_size}; {other}")
    if min(h, w) < model.min_image_size:
        raise ValueError(f"a {h}x{w} input is too small: the {model.variant} AlexNet needs at "
                         f"least {model.min_image_size}x{model.min_image_size}")


def check_window(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """The window's effective extent d(k - 1) + 1, once every argument is a valid integer."""
    for name, value, low in (("size", size, 1), ("kernel", kernel, 1), ("stride", stride, 1),
                             ("padding", padding, 0), ("dilation", dilation, 1)):
        if int(value) != value or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return dilation * (kernel - 1) + 1  # the window's effective extent


def does_not_fit(size: int, kernel: int, padding: int, dilation: int) -> str:
    """Why a window does not fit an input, and how wide the input must be."""
    extent = dilation * (kernel - 1) + 1
    return (f"window of effective size {extent} (kernel {kernel}, dilation {dilation}) does not "
            f"fit in an input of size {size} padded to {size + 2 * padding}: the input must be "
            f"at least {extent - 2 * padding} wide")
