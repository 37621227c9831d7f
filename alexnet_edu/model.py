"""AlexNet as in the paper's Figure 2, and torchvision's variant of it.

Paper (Krizhevsky, Sutskever & Hinton, 2012), Section 3.5 "Overall Architecture":

    input 227x227x3 (the paper says 224; see `alexnet_edu.shapes`)
    conv1  96 kernels 11x11, stride 4            -> ReLU -> LRN -> max-pool 3/2    55 -> 27
    conv2 256 kernels  5x5, pad 2  (two towers)  -> ReLU -> LRN -> max-pool 3/2    27 -> 13
    conv3 384 kernels  3x3, pad 1  (all maps)    -> ReLU                           13
    conv4 384 kernels  3x3, pad 1  (two towers)  -> ReLU                           13
    conv5 256 kernels  3x3, pad 1  (two towers)  -> ReLU        -> max-pool 3/2    13 -> 6
    fc6 4096 -> ReLU -> dropout, fc7 4096 -> ReLU -> dropout, fc8 classes (softmax in the loss)

Every layer is named (conv1 ... fc8, relu1, norm1, pool1, ...), so `model.conv1` and
`activations(model, x, ["conv1", "fc7"])` work the same for both variants.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from .layers import LocalResponseNorm
from .shapes import conv_output_size, pool_output_size

__all__ = ["AlexNet", "activations", "feature_map_size", "smallest_image_size", "LAYER_NAMES",
           "VARIANTS", "INITS", "ACTIVATIONS"]

VARIANTS = ("paper", "torchvision")
INITS = ("paper", "kaiming", "pytorch")
LAYER_NAMES = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")

# (out_channels, kernel, stride, padding) of conv1..conv5; pooling after conv1, conv2, conv5.
_CONVS = {
    "paper": [(96, 11, 4, 0), (256, 5, 1, 2), (384, 3, 1, 1), (384, 3, 1, 1), (256, 3, 1, 1)],
    "torchvision": [(64, 11, 4, 2), (192, 5, 1, 2), (384, 3, 1, 1), (256, 3, 1, 1),
                    (256, 3, 1, 1)],
}
_POOL_AFTER = (1, 2, 5)
_POOL_KERNEL, _POOL_STRIDE = 3, 2   # overlapping pooling, z=3 > s=2 (Section 3.4)
_GROUPED = (2, 4, 5)                # "kernels of layers 2, 4, 5 connect only to their own GPU"
# The layers keep the name relu<i> whatever the non-linearity, so layer names never change.
ACTIVATIONS = {"relu": lambda: nn.ReLU(inplace=True), "tanh": nn.Tanh}

# torchvision.models.alexnet() state_dict key prefixes -> our names
_TORCHVISION_KEYS = {
    "features.0.": "features.conv1.", "features.3.": "features.conv2.",
    "features.6.": "features.conv3.", "features.8.": "features.conv4.",
    "features.10.": "features.conv5.", "classifier.1.": "classifier.fc6.",
    "classifier.4.": "classifier.fc7.", "classifier.6.": "classifier.fc8.",
}


def _pooled_side(size: int, variant: str, pool_kernel: int = _POOL_KERNEL) -> int:
    for i, (_, kernel, stride, padding) in enumerate(_CONVS[variant], start=1):
        size = conv_output_size(size, kernel, stride, padding)
        if i in _POOL_AFTER:
            size = pool_output_size(size, pool_kernel, _POOL_STRIDE)
    return size


def smallest_image_size(variant: str = "paper") -> int:
    """The smallest square input the variant accepts (67 for the paper's layers)."""
    for size in range(1, 1000):
        try:
            _pooled_side(size, variant)
            return size
        except ValueError:
            continue
    raise AssertionError("unreachable")


def feature_map_size(image_size: int, variant: str = "paper",
                     pool_kernel: int = _POOL_KERNEL) -> int:
    """Side of conv5's pooled output (6 for 227 in the paper variant), with a clear error if the
    image is too small for the network."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    try:
        return _pooled_side(image_size, variant, pool_kernel)
    except ValueError as err:
        smallest = smallest_image_size(variant)
        raise ValueError(
            f"a {image_size}x{image_size} image is too small for the {variant} AlexNet "
            f"(the smallest that fits is {smallest}x{smallest}; the paper uses 227x227): {err}"
        ) from None


class AlexNet(nn.Module):
    """AlexNet with named layers.

    Args:
        num_classes: outputs of fc8 (1000 for ImageNet).
        in_channels: 3 for colour, 1 for greyscale (e.g. Fashion-MNIST).
        variant: "paper" (96-256-384-384-256 kernels, LRN, Figure 2) or "torchvision"
            (64-192-384-256-256, no LRN, adaptive pooling to 6x6; loads torchvision's weights).
        groups: 2 splits conv2, conv4 and conv5 into the paper's two GPU towers; 1 does not.
            LRN is not split with them: its 5-channel window still spans channels 47 and 48,
            where in the paper each GPU normalized only its own 48 maps. We keep one LRN over all
            96 (the towers were a memory workaround, not a modelling choice; splitting LRN would
            change two boundary channels of 96 and make `groups` change two things at once).
        lrn: Local Response Normalization after relu1 and relu2 (paper variant only).
        dropout: probability of zeroing fc6's and fc7's outputs in training (Section 4.2).
        init: "paper" (weights N(0, 0.01); biases 1 in conv2, conv4, conv5, fc6, fc7 and 0
            elsewhere, Section 5), "kaiming" (He et al. 2015, keeps activations' variance
            constant with depth), or "pytorch" (PyTorch's defaults).
        image_size: side of the square input the paper variant is built for (227); fc6's
            input size follows from it. The torchvision variant pools adaptively to 6x6 and takes
            any size from 63 up.
        activation: "relu" (the paper's choice, Section 3.1) or "tanh" (its Figure 1 baseline).
        overlapping_pool: True pools with z=3, s=2 (Section 3.4); False with z=2, s=2 (the
            traditional non-overlapping pooling the paper compares against; same output sizes).
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, variant: str = "paper",
                 groups: int = 1, lrn: bool = True, dropout: float = 0.5, init: str = "paper",
                 image_size: int = 227, activation: str = "relu", overlapping_pool: bool = True):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}")
        if groups not in (1, 2):
            raise ValueError(f"groups must be 1 or 2 (the paper's two towers), got {groups}")
        if variant == "torchvision":
            if groups != 1:
                raise ValueError("the torchvision variant has no towers: use groups=1")
            lrn = False  # torchvision's layout has no LRN
        self.config = dict(num_classes=num_classes, in_channels=in_channels, variant=variant,
                           groups=groups, lrn=lrn, dropout=dropout, init=init,
                           image_size=image_size, activation=activation,
                           overlapping_pool=overlapping_pool)
        self.in_channels, self.image_size, self.variant = in_channels, image_size, variant
        self.min_image_size = smallest_image_size(variant)
        pool_kernel = _POOL_KERNEL if overlapping_pool else _POOL_STRIDE
        side = feature_map_size(image_size, variant, pool_kernel)
        act = ACTIVATIONS[activation]

        # Build on the meta device (no memory, no default init), then allocate once and
        # initialise once with `init`: half the start-up time of a 62 M-parameter model.
        device = torch.get_default_device()
        with torch.device("meta"):
            layers: list[tuple[str, nn.Module]] = []
            channels = in_channels
            for i, (out, kernel, stride, padding) in enumerate(_CONVS[variant], start=1):
                g = groups if i in _GROUPED else 1
                conv = nn.Conv2d(channels, out, kernel, stride, padding, groups=g)
                layers.append((f"conv{i}", conv))
                layers.append((f"relu{i}", act()))
                if lrn and i in (1, 2):
                    # k=2, n=5, alpha=1e-4, beta=0.75 (Section 3.3)
                    lrn_layer = LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)
                    layers.append((f"norm{i}", lrn_layer))
                if i in _POOL_AFTER:
                    layers.append((f"pool{i}", nn.MaxPool2d(pool_kernel, _POOL_STRIDE)))
                channels = out
            self.features = nn.Sequential(OrderedDict(layers))

            if variant == "torchvision":
                self.avgpool: nn.Module = nn.AdaptiveAvgPool2d((6, 6))
                side = 6
                head = [("drop6", nn.Dropout(dropout)), ("fc6", nn.Linear(channels * 36, 4096)),
                        ("relu6", act()), ("drop7", nn.Dropout(dropout)),
                        ("fc7", nn.Linear(4096, 4096)), ("relu7", act()),
                        ("fc8", nn.Linear(4096, num_classes))]
            else:
                self.avgpool = nn.Identity()
                # The paper drops out the *outputs* of the two hidden FC layers (Section 4.2).
                head = [("fc6", nn.Linear(channels * side * side, 4096)),
                        ("relu6", act()), ("drop6", nn.Dropout(dropout)),
                        ("fc7", nn.Linear(4096, 4096)), ("relu7", act()),
                        ("drop7", nn.Dropout(dropout)), ("fc8", nn.Linear(4096, num_classes))]
            self.classifier = nn.Sequential(OrderedDict(head))
        self.to_empty(device=device)
        self.register_load_state_dict_pre_hook(_rename_torchvision_keys)
        self.reset_parameters(init)

    def reset_parameters(self, init: str = "paper") -> None:
        """Re-initialize all weights with one of `INITS` (see the class docstring)."""
        ones = {"conv2", "conv4", "conv5", "fc6", "fc7"}  # Section 5: bias 1 feeds ReLUs positive
        for name, m in self.named_modules():
            if not isinstance(m, (nn.Conv2d, nn.Linear)):
                continue
            short = name.rsplit(".", 1)[-1]
            if init == "paper":
                nn.init.normal_(m.weight, mean=0.0, std=0.01)
                nn.init.constant_(m.bias, 1.0 if short in ones else 0.0)
            elif init == "kaiming":
                relu = self.config["activation"] == "relu"
                nonlinearity = "linear" if short == "fc8" else ("relu" if relu else "tanh")
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity=nonlinearity)
                nn.init.zeros_(m.bias)
            else:
                m.reset_parameters()

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4:
            raise ValueError(f"AlexNet expects a batch of shape (N, {self.in_channels}, H, W); "
                             f"got a {x.dim()}-D tensor of shape {tuple(x.shape)} "
                             "(add a batch dimension with x.unsqueeze(0)?)")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"AlexNet was built for {self.in_channels} input channel(s), got "
                             f"{x.shape[1]} (shape {tuple(x.shape)})")
        if not x.is_floating_point():
            raise ValueError(f"AlexNet expects floating-point images, got dtype {x.dtype} "
                             "(convert uint8 images with x.float() / 255, then normalize)")
        h, w = x.shape[-2:]
        if self.variant == "paper" and (h, w) != (self.image_size, self.image_size):
            # fc6's input size is fixed by image_size, so other sizes cannot pass through
            other = (f"or build AlexNet(image_size={h})" if h == w >= self.min_image_size else
                     f"the smallest square input the paper's layers take is "
                     f"{self.min_image_size}x{self.min_image_size}")
            raise ValueError(f"this AlexNet was built for {self.image_size}x{self.image_size} "
                             f"inputs (image_size={self.image_size}), got {h}x{w}: resize the "
                             f"images to {self.image_size}x{self.image_size}; {other}")
        if min(h, w) < self.min_image_size:
            raise ValueError(f"a {h}x{w} input is too small: the {self.variant} AlexNet needs at "
                             f"least {self.min_image_size}x{self.min_image_size}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))

    def __getattr__(self, name: str):
        # `model.conv1` is `model.features.conv1`: layers are reachable by their paper name
        # without being registered twice (state_dict keys stay features.conv1.weight, ...).
        try:
            return super().__getattr__(name)
        except AttributeError:
            modules = self.__dict__.get("_modules", {})
            for container in ("features", "classifier"):
                if container in modules and name in modules[container]._modules:
                    return modules[container]._modules[name]
            raise

    def layer(self, name: str) -> nn.Module:
        """The layer called `name` (conv1, relu1, norm1, pool1, ..., fc6, drop6, fc8)."""
        for container in (self.features, self.classifier):
            if name in container._modules:
                return container._modules[name]
        raise KeyError(f"AlexNet has no layer {name!r}; layers: {', '.join(self.layer_names())}")

    def layer_names(self) -> list[str]:
        """All layer names in forward order."""
        return list(self.features._modules) + list(self.classifier._modules)


def _rename_torchvision_keys(module, state_dict, prefix, *args, **kwargs) -> None:
    """Accept torchvision.models.alexnet() state_dicts as they are (features.0.weight, ...)."""
    for key in list(state_dict):
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix):]
        for theirs, ours in _TORCHVISION_KEYS.items():
            if rest.startswith(theirs):
                state_dict[prefix + ours + rest[len(theirs):]] = state_dict.pop(key)
                break


def activations(model: AlexNet, x: torch.Tensor, names: Iterable[str] | str,
                grad: bool = False) -> dict[str, torch.Tensor]:
    """Run `x` through `model` and return the outputs of the named layers, e.g.
    ``activations(model, images, ["conv1", "relu7"])["relu7"]`` is the 4096-d fc7 embedding
    after its ReLU (the paper's Figure 4 features).

    Outputs are copied as the layer emits them, so a later in-place ReLU does not change a
    stored conv output. With ``grad=False`` (the default) no graph is built and the copies are
    detached; the model's train/eval mode is left as it is (call ``model.eval()`` first for
    deterministic dropout).
    """
    wanted: Sequence[str] = [names] if isinstance(names, str) else list(names)
    found: dict[str, torch.Tensor] = {}
    handles = []
    for name in wanted:
        layer = model.layer(name)

        def hook(module, inputs, output, name=name):
            found[name] = output.clone() if grad else output.detach().clone()

        handles.append(layer.register_forward_hook(hook))
    try:
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
            model(x)
    finally:
        for h in handles:
            h.remove()
    return {name: found[name] for name in wanted}
