"""AlexNet as in the paper's Figure 2 (Krizhevsky, Sutskever & Hinton, 2012, Section 3.5).

`AlexNet` is one `nn.Sequential` of named layers in the order of Figure 2, so ``model.conv1``,
``model.layer("fc7")`` and ``activations(model, x, ["conv1", "fc7"])`` use the paper's names.
The "torchvision" variant is torchvision's layout ("One weird trick", Krizhevsky 2014), which
loads torchvision's ImageNet weights. The convolutions' sizes are written once, in `CONVS`.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict

import torch
from torch import nn

from .hooks import activations, eval_mode, find_layer, rename_keys
from .input_checks import check_batch
from .layers import LocalResponseNorm
from .shapes import conv_output_size, pool_output_size

__all__ = ["AlexNet", "activations", "eval_mode", "find_layer", "feature_map_size",
           "smallest_image_size", "CONVS", "VARIANTS", "INITS", "ACTIVATIONS"]

VARIANTS = ("paper", "torchvision")
INITS = ("paper", "kaiming", "pytorch")
# The layers keep the name relu<i> whatever the non-linearity, so layer names never change.
ACTIVATIONS = {"relu": lambda: nn.ReLU(inplace=True), "tanh": nn.Tanh}

# (out_channels, kernel, stride, padding) of conv1 ... conv5. At 227 x 227 (the paper's "224",
# see `shapes`) the maps are 55 -pool1-> 27 -pool2-> 13 -pool5-> 6 on a side.
CONVS = {"paper": [(96, 11, 4, 0), (256, 5, 1, 2), (384, 3, 1, 1), (384, 3, 1, 1), (256, 3, 1, 1)],
         "torchvision": [(64, 11, 4, 2), (192, 5, 1, 2), (384, 3, 1, 1), (256, 3, 1, 1),
                         (256, 3, 1, 1)]}
TOWERS = (2, 4, 5)   # Section 3.2: conv2, 4, 5 "connect only to kernel maps on the same GPU"
NORMED = (1, 2)      # Section 3.3: response normalization after relu1 and relu2
POOLED = (1, 2, 5)   # Section 3.4: max-pooling after the normalization layers and after conv5


def _features(variant: str, in_channels: int, groups: int, lrn: bool, act, pool: int) -> list:
    """conv1 ... pool5 as (name, module) pairs, built from `CONVS`."""
    layers, channels = [], in_channels
    for i, (out, kernel, stride, padding) in enumerate(CONVS[variant], start=1):
        g = groups if i in TOWERS else 1
        layers += [(f"conv{i}", nn.Conv2d(channels, out, kernel, stride, padding, groups=g)),
                   (f"relu{i}", act())]
        if lrn and i in NORMED:   # Section 3.3: k=2, n=5, alpha=1e-4, beta=0.75
            layers.append((f"norm{i}", LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)))
        if i in POOLED:   # Section 3.4: overlapping z=3, s=2 (pool=2: the plain z=2, s=2)
            layers.append((f"pool{i}", nn.MaxPool2d(pool, stride=2)))
        channels = out
    return layers


def _classifier(variant: str, features: int, num_classes: int, dropout: float, act) -> list:
    """fc6 ... fc8. The paper drops out fc6's and fc7's outputs (Section 4.2); torchvision drops
    out their inputs and pools adaptively to 6 x 6 first, so it takes any input from 63 px."""
    drop6, drop7 = nn.Dropout(dropout), nn.Dropout(dropout)
    if variant == "paper":
        return [("flatten", nn.Flatten()), ("fc6", nn.Linear(features, 4096)), ("relu6", act()),
                ("drop6", drop6), ("fc7", nn.Linear(4096, 4096)), ("relu7", act()),
                ("drop7", drop7), ("fc8", nn.Linear(4096, num_classes))]   # softmax: in the loss
    return [("avgpool", nn.AdaptiveAvgPool2d((6, 6))), ("flatten", nn.Flatten()),
            ("drop6", drop6), ("fc6", nn.Linear(features, 4096)), ("relu6", act()),
            ("drop7", drop7), ("fc7", nn.Linear(4096, 4096)), ("relu7", act()),
            ("fc8", nn.Linear(4096, num_classes))]


class AlexNet(nn.Sequential):
    """AlexNet with named layers.

    Args:
        num_classes, in_channels: outputs of fc8 (1000 for ImageNet); 3 for colour, 1 for grey.
        variant: "paper" (96-256-384-384-256 kernels, LRN, Figure 2) or "torchvision"
            (64-192-384-256-256, no LRN, adaptive pooling to 6x6; loads torchvision's weights).
        groups: 2 splits conv2, conv4 and conv5 into the paper's two GPU towers; 1 does not.
            LRN still spans all 96 maps (the paper normalized each GPU's 48 apart).
        lrn: Local Response Normalization after relu1 and relu2 (paper variant only).
        dropout: probability of zeroing fc6's and fc7's outputs in training (Section 4.2).
        init: "paper" (weights N(0, 0.01); biases 1 in conv2, conv4, conv5, fc6, fc7 and 0
            elsewhere, Section 5), "kaiming" (He et al. 2015) or "pytorch" (PyTorch's defaults).
        image_size: the paper variant's square input side (227); fc6's input size follows.
        activation: "relu" (the paper's choice, Section 3.1) or "tanh" (its Figure 1 baseline).
        overlapping_pool: True pools with z=3, s=2 (Section 3.4); False with z=2, s=2.
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, variant: str = "paper",
                 groups: int = 1, lrn: bool = True, dropout: float = 0.5, init: str = "paper",
                 image_size: int = 227, activation: str = "relu", overlapping_pool: bool = True):
        for name, value, allowed in (("variant", variant, VARIANTS), ("init", init, INITS),
                                     ("activation", activation, tuple(ACTIVATIONS))):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if groups not in (1, 2):
            raise ValueError(f"groups must be 1 or 2 (the paper's two towers), got {groups}")
        if variant == "torchvision" and groups != 1:
            raise ValueError("the torchvision variant has no towers: use groups=1")
        lrn = lrn and variant == "paper"   # torchvision's layout has no LRN
        pool, act = 3 if overlapping_pool else 2, ACTIVATIONS[activation]
        side = feature_map_size(image_size, variant, pool) if variant == "paper" else 6
        features = CONVS[variant][-1][0] * side * side   # 256 * 6 * 6 = 9216 at 227
        layers = (_features(variant, in_channels, groups, lrn, act, pool)
                  + _classifier(variant, features, num_classes, dropout, act))
        super().__init__(OrderedDict(layers))
        self.config = dict(num_classes=num_classes, in_channels=in_channels, variant=variant,
                           groups=groups, lrn=lrn, dropout=dropout, init=init,
                           image_size=image_size, activation=activation,
                           overlapping_pool=overlapping_pool)
        self.in_channels, self.image_size, self.variant = in_channels, image_size, variant
        self.min_image_size = smallest_image_size(variant, pool)
        self.register_load_state_dict_pre_hook(rename_keys)   # torchvision's names load too
        self.reset_parameters(init)

    def reset_parameters(self, init: str = "paper") -> None:
        """Re-initialize all weights with one of `INITS` (see the class docstring)."""
        ones = {"conv2", "conv4", "conv5", "fc6", "fc7"}  # Section 5: bias 1 feeds ReLUs positive
        relu = self.config["activation"] == "relu"
        for name, m in self.named_children():
            if not isinstance(m, (nn.Conv2d, nn.Linear)):
                continue
            if init == "paper":   # Section 5: N(0, 0.01)
                nn.init.normal_(m.weight, mean=0.0, std=0.01)
                nn.init.constant_(m.bias, 1.0 if name in ones else 0.0)
            elif init == "kaiming":   # Var(w) = 2 / fan_in keeps the signal's variance (He 2015)
                nonlinearity = "linear" if name == "fc8" else ("relu" if relu else "tanh")
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity=nonlinearity)
                nn.init.zeros_(m.bias)
            else:
                m.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_batch(self, x)   # a wrong batch gets a message, not a shape error deep inside
        return super().forward(x)

    def layer(self, name: str) -> nn.Module:
        """The layer called `name` (conv1, relu1, norm1, pool1, ..., fc6, drop6, fc8)."""
        return find_layer(self, name)

    def layer_names(self) -> list[str]:
        """The paper's layers in forward order (without the reshaping flatten and avgpool)."""
        return [name for name in self._modules if name not in ("flatten", "avgpool")]


def _pool5_side(size: int, variant: str, pool: int) -> int:
    for i, (_, kernel, stride, padding) in enumerate(CONVS[variant], start=1):
        size = conv_output_size(size, kernel, stride, padding)
        if i in POOLED:
            size = pool_output_size(size, pool, 2)
    return size


def smallest_image_size(variant: str = "paper", pool_kernel: int = 3) -> int:
    """The smallest square input the variant accepts (67 for the paper's, 39 with z=2 pools)."""
    for size in range(1, 1000):
        with contextlib.suppress(ValueError):
            _pool5_side(size, variant, pool_kernel)
            return size


def feature_map_size(image_size: int, variant: str = "paper", pool_kernel: int = 3) -> int:
    """Side of conv5's pooled output (6 for 227 in the paper variant); a clear error if the
    image is too small for the network."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    try:
        return _pool5_side(image_size, variant, pool_kernel)
    except ValueError as err:
        smallest = smallest_image_size(variant, pool_kernel)
        raise ValueError(
            f"a {image_size}x{image_size} image is too small for the {variant} AlexNet "
            f"(the smallest that fits is {smallest}x{smallest}; the paper uses 227x227): {err}"
        ) from None
