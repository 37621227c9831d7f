"""Looking inside any model: a layer by name, eval mode, and what named layers emit (through
forward hooks, which PyTorch calls with a layer's output each time it runs); and the
load_state_dict hook by which `model.AlexNet` takes torchvision's weight names."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["find_layer", "eval_mode", "on_outputs", "activations", "rename_keys"]


def find_layer(model: nn.Module, name: str) -> nn.Module:
    """The sub-module called `name`, exactly or as the last part of its dotted name
    (``conv1`` finds ``features.conv1``)."""
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
    """``with eval_mode(model):`` dropout off; the train/eval mode is put back afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@contextmanager
def on_outputs(model: nn.Module, names: Iterable[str],
               hook: Callable[[str, torch.Tensor], torch.Tensor | None],
               before: Callable[[str], None] | None = None) -> Iterator[None]:
    """In the `with` block, call ``hook(name, output)`` as a named layer returns (a tensor it
    returns replaces the output) and ``before(name)`` as the layer starts."""
    handles = []
    try:
        for name in names:
            layer = find_layer(model, name)
            handles.append(layer.register_forward_hook(
                lambda module, inputs, output, name=name: hook(name, output)))
            if before is not None:
                handles.append(layer.register_forward_pre_hook(
                    lambda module, inputs, name=name: before(name)))
        yield
    finally:
        for handle in handles:
            handle.remove()


def activations(model: nn.Module, x: torch.Tensor, names: Iterable[str] | str,
                grad: bool = False) -> dict[str, torch.Tensor]:
    """The named layers' outputs on `x` (``activations(model, x, "relu7")["relu7"]``), copied as
    emitted (a later in-place ReLU leaves them), without a graph unless `grad`; mode unchanged."""
    wanted = [names] if isinstance(names, str) else list(names)
    found: dict[str, torch.Tensor] = {}

    def keep(name: str, output: torch.Tensor) -> None:
        found[name] = output.clone() if grad else output.detach().clone()

    with on_outputs(model, wanted, keep), torch.set_grad_enabled(grad and torch.is_grad_enabled()):
        model(x)
    return {name: found[name] for name in wanted}


# torchvision.models.alexnet() state_dict key prefixes -> ours
_TORCHVISION_KEYS = {"features.0.": "conv1.", "features.3.": "conv2.", "features.6.": "conv3.",
                     "features.8.": "conv4.", "features.10.": "conv5.", "classifier.1.": "fc6.",
                     "classifier.4.": "fc7.", "classifier.6.": "fc8."}


def rename_keys(module, state_dict, prefix, *args, **kwargs) -> None:
    """Accept torchvision.models.alexnet() state_dicts as they are (features.0.weight, ...), and
    our earlier layout's (features.conv1.weight, classifier.fc6.weight, ...)."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        rest = key[len(prefix):]
        head, _, tail = rest.partition(".")
        theirs = next((t for t in _TORCHVISION_KEYS if rest.startswith(t)), None)
        if theirs:
            rest = _TORCHVISION_KEYS[theirs] + rest[len(theirs):]
        elif head in ("features", "classifier") and tail.split(".")[0] in module._modules:
            rest = tail
        if rest != key[len(prefix):]:
            state_dict[prefix + rest] = state_dict.pop(key)
