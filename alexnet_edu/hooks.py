"""Looking inside any model: a layer by name, eval mode, and what named layers emit (through
forward hooks, which PyTorch calls with a layer's output each time it runs)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["find_layer", "eval_mode", "on_outputs", "activations"]


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
