"""AlexNet as in the paper's Figure 2 (Krizhevsky, Sutskever & Hinton, 2012, Section 3.5).

`AlexNet` is one `nn.Sequential` of named layers, written out below in the order of Figure 2,
so ``model.conv1``, ``model.layer("fc7")`` and ``activations(model, x, ["conv1", "fc7"])`` all
use the paper's names. The sizes on the right are a 227 x 227 input's (the paper says 224; see
`alexnet_edu.shapes`). torchvision's layout of the same network (ImageNet weights) follows at
the end of the file, apart from the paper's.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from .layers import LocalResponseNorm
from .shapes import conv_output_size, pool_output_size

__all__ = ["AlexNet", "activations", "eval_mode", "find_layer", "feature_map_size",
           "smallest_image_size", "LAYER_NAMES", "VARIANTS", "INITS", "ACTIVATIONS"]

VARIANTS = ("paper", "torchvision")
INITS = ("paper", "kaiming", "pytorch")
LAYER_NAMES = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")
# The layers keep the name relu<i> whatever the non-linearity, so layer names never change.
ACTIVATIONS = {"relu": lambda: nn.ReLU(inplace=True), "tanh": nn.Tanh}


def paper_layers(in_channels: int = 3, num_classes: int = 1000, image_size: int = 227,
                 groups: int = 1, lrn: bool = True, dropout: float = 0.5,
                 activation: str = "relu", overlapping_pool: bool = True) -> list:
    """Figure 2, layer by layer: (name, module) pairs; None where an ablation removes a layer."""
    act = ACTIVATIONS[activation]
    g = groups   # Section 3.2: conv2, conv4, conv5 "connect only to kernel maps on the same GPU"

    def norm():   # Section 3.3: k=2, n=5, alpha=1e-4, beta=0.75 (alpha *not* divided by n)
        return LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0) if lrn else None

    def pool():   # Section 3.4: overlapping pooling z=3, s=2 (False: the plain z=2, s=2)
        return nn.MaxPool2d(3 if overlapping_pool else 2, stride=2)

    side = feature_map_size(image_size, "paper", 3 if overlapping_pool else 2)   # 6 at 227
    return [
        ("conv1", nn.Conv2d(in_channels, 96, 11, stride=4)),      # 227 -> 55
        ("relu1", act()), ("norm1", norm()), ("pool1", pool()),   # 55 -> 27
        ("conv2", nn.Conv2d(96, 256, 5, padding=2, groups=g)),    # 27
        ("relu2", act()), ("norm2", norm()), ("pool2", pool()),   # 27 -> 13
        ("conv3", nn.Conv2d(256, 384, 3, padding=1)),             # 13: sees both towers
        ("relu3", act()),
        ("conv4", nn.Conv2d(384, 384, 3, padding=1, groups=g)),   # 13
        ("relu4", act()),
        ("conv5", nn.Conv2d(384, 256, 3, padding=1, groups=g)),   # 13
        ("relu5", act()), ("pool5", pool()),                      # 13 -> 6
        ("flatten", nn.Flatten()),                                # 256 * 6 * 6 = 9216
        ("fc6", nn.Linear(256 * side * side, 4096)),
        ("relu6", act()), ("drop6", nn.Dropout(dropout)),         # Section 4.2: dropout on the
        ("fc7", nn.Linear(4096, 4096)),                           # hidden layers' outputs
        ("relu7", act()), ("drop7", nn.Dropout(dropout)),
        ("fc8", nn.Linear(4096, num_classes)),                    # softmax: in the loss
    ]


class AlexNet(nn.Sequential):
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
            traditional non-overlapping pooling the paper compares against).
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
        config = dict(num_classes=num_classes, in_channels=in_channels, variant=variant,
                      groups=groups, lrn=lrn, dropout=dropout, init=init, image_size=image_size,
                      activation=activation, overlapping_pool=overlapping_pool)
        build = paper_layers if variant == "paper" else torchvision_layers
        layers = build(in_channels, num_classes, image_size, groups, lrn, dropout, activation,
                       overlapping_pool)
        super().__init__(OrderedDict((name, m) for name, m in layers if m is not None))
        self.config = config
        self.in_channels, self.image_size, self.variant = in_channels, image_size, variant
        self.min_image_size = smallest_image_size(variant, 3 if overlapping_pool else 2)
        self.register_load_state_dict_pre_hook(_rename_keys)
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
                     f"the smallest square input this model's layers take is "
                     f"{self.min_image_size}x{self.min_image_size}")
            raise ValueError(f"this AlexNet was built for {self.image_size}x{self.image_size} "
                             f"inputs (image_size={self.image_size}), got {h}x{w}: resize the "
                             f"images to {self.image_size}x{self.image_size}; {other}")
        if min(h, w) < self.min_image_size:
            raise ValueError(f"a {h}x{w} input is too small: the {self.variant} AlexNet needs at "
                             f"least {self.min_image_size}x{self.min_image_size}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        return super().forward(x)

    def layer(self, name: str) -> nn.Module:
        """The layer called `name` (conv1, relu1, norm1, pool1, ..., fc6, drop6, fc8)."""
        if name not in self._modules:
            raise KeyError(f"AlexNet has no layer {name!r}; layers: "
                           f"{', '.join(self.layer_names())}")
        return self._modules[name]

    def layer_names(self) -> list[str]:
        """The names of the paper's layers in forward order (without the reshaping `flatten`
        and torchvision's `avgpool`, which `layer()` finds too)."""
        return [name for name in self._modules if name not in ("flatten", "avgpool")]


# ---------------------------------------------------------------------------------------------
# Sizes
# ---------------------------------------------------------------------------------------------

# (kernel, stride, padding) of conv1..conv5, then the pooling after conv1, conv2 and conv5
_CONV_WINDOWS = {"paper": [(11, 4, 0), (5, 1, 2), (3, 1, 1), (3, 1, 1), (3, 1, 1)],
                 "torchvision": [(11, 4, 2), (5, 1, 2), (3, 1, 1), (3, 1, 1), (3, 1, 1)]}


def _pool5_side(size: int, variant: str, pool_kernel: int) -> int:
    for i, (kernel, stride, padding) in enumerate(_CONV_WINDOWS[variant], start=1):
        size = conv_output_size(size, kernel, stride, padding)
        if i in (1, 2, 5):
            size = pool_output_size(size, pool_kernel, 2)
    return size


def smallest_image_size(variant: str = "paper", pool_kernel: int = 3) -> int:
    """The smallest square input the variant accepts (67 for the paper's layers; 39 with the
    plain z=2 pooling, ``pool_kernel=2``)."""
    return next(size for size in range(1, 1000) if _fits(size, variant, pool_kernel))


def _fits(size: int, variant: str, pool_kernel: int) -> bool:
    try:
        _pool5_side(size, variant, pool_kernel)
        return True
    except ValueError:
        return False


def feature_map_size(image_size: int, variant: str = "paper", pool_kernel: int = 3) -> int:
    """Side of conv5's pooled output (6 for 227 in the paper variant), with a clear error if the
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


# ---------------------------------------------------------------------------------------------
# Looking inside: layers by name, their outputs, eval mode
# ---------------------------------------------------------------------------------------------

def find_layer(model: nn.Module, name: str) -> nn.Module:
    """`model.layer(name)` for an AlexNet; for any other module the sub-module called `name`
    (exactly, or as the last part of its dotted name, e.g. features.conv1)."""
    if isinstance(model, AlexNet):
        return model.layer(name)
    modules = dict(model.named_modules())
    if name in modules:
        return modules[name]
    matches = [m for full, m in modules.items() if full.rsplit(".", 1)[-1] == name]
    if len(matches) == 1:
        return matches[0]
    raise KeyError(f"the model has {'several layers' if matches else 'no layer'} called "
                   f"{name!r}; layers: {', '.join(n for n in modules if n)}")


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``with eval_mode(model):`` dropout off (deterministic outputs); the model's train/eval
    mode is put back afterwards, whatever happens inside."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def activations(model: nn.Module, x: torch.Tensor, names: Iterable[str] | str,
                grad: bool = False) -> dict[str, torch.Tensor]:
    """Run `x` through `model` and return the outputs of the named layers, e.g.
    ``activations(model, images, ["conv1", "relu7"])["relu7"]`` is the 4096-d fc7 embedding
    after its ReLU (the paper's Figure 4 features).

    Outputs are copied as the layer emits them, so a later in-place ReLU does not change a
    stored conv output. With ``grad=False`` (the default) no graph is built and the copies are
    detached; the model's train/eval mode is left as it is (use `eval_mode` for deterministic
    dropout).
    """
    wanted = [names] if isinstance(names, str) else list(names)
    found: dict[str, torch.Tensor] = {}

    def keep(name):
        def hook(module, inputs, output):
            found[name] = output.clone() if grad else output.detach().clone()
        return hook

    handles = [find_layer(model, name).register_forward_hook(keep(name)) for name in wanted]
    try:
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return {name: found[name] for name in wanted}


# ---------------------------------------------------------------------------------------------
# torchvision's layout ("One weird trick", Krizhevsky 2014): loads torchvision's weights
# ---------------------------------------------------------------------------------------------

def torchvision_layers(in_channels: int = 3, num_classes: int = 1000, image_size: int = 224,
                       groups: int = 1, lrn: bool = False, dropout: float = 0.5,
                       activation: str = "relu", overlapping_pool: bool = True) -> list:
    """torchvision.models.alexnet's layers under the paper's names: 64-192-384-256-256 kernels,
    no LRN, adaptive average pooling to 6x6 (any input from 63 px), dropout *before* fc6, fc7."""
    act = ACTIVATIONS[activation]

    def pool():
        return nn.MaxPool2d(3 if overlapping_pool else 2, stride=2)

    return [
        ("conv1", nn.Conv2d(in_channels, 64, 11, stride=4, padding=2)), ("relu1", act()),
        ("pool1", pool()),
        ("conv2", nn.Conv2d(64, 192, 5, padding=2)), ("relu2", act()), ("pool2", pool()),
        ("conv3", nn.Conv2d(192, 384, 3, padding=1)), ("relu3", act()),
        ("conv4", nn.Conv2d(384, 256, 3, padding=1)), ("relu4", act()),
        ("conv5", nn.Conv2d(256, 256, 3, padding=1)), ("relu5", act()), ("pool5", pool()),
        ("avgpool", nn.AdaptiveAvgPool2d((6, 6))), ("flatten", nn.Flatten()),
        ("drop6", nn.Dropout(dropout)), ("fc6", nn.Linear(256 * 6 * 6, 4096)), ("relu6", act()),
        ("drop7", nn.Dropout(dropout)), ("fc7", nn.Linear(4096, 4096)), ("relu7", act()),
        ("fc8", nn.Linear(4096, num_classes)),
    ]


# torchvision.models.alexnet() state_dict key prefixes -> ours
_TORCHVISION_KEYS = {"features.0.": "conv1.", "features.3.": "conv2.", "features.6.": "conv3.",
                     "features.8.": "conv4.", "features.10.": "conv5.", "classifier.1.": "fc6.",
                     "classifier.4.": "fc7.", "classifier.6.": "fc8."}


def _rename_keys(module, state_dict, prefix, *args, **kwargs) -> None:
    """Accept torchvision.models.alexnet() state_dicts as they are (features.0.weight, ...), and
    our earlier layout's (features.conv1.weight, classifier.fc6.weight, ...)."""
    for key in list(state_dict):
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix):]
        for theirs, ours in _TORCHVISION_KEYS.items():
            if rest.startswith(theirs):
                rest = ours + rest[len(theirs):]
                break
        else:
            for old in ("features.", "classifier."):
                if rest.startswith(old) and rest[len(old):].split(".")[0] in module._modules:
                    rest = rest[len(old):]
        if rest != key[len(prefix):]:
            state_dict[prefix + rest] = state_dict.pop(key)
