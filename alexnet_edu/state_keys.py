"""Other names for AlexNet's weights: a load_state_dict pre-hook (`model.AlexNet` registers it)
that renames torchvision.models.alexnet()'s keys (features.0.weight, ...) and our earlier layout's
(features.conv1.weight, ...) to the layer names of the paper's figure (conv1.weight, ...)."""

from __future__ import annotations

__all__ = ["rename_keys"]


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
