"""alexnet_edu: the code behind the AlexNet teaching notebooks.

The core, the lesson in reading order: `shapes`, `layers` (Local Response Normalization), `model`,
`transforms` (the paper's augmentation on whole batches), `data` (datasets, splits, loaders),
`train`, `metrics` (+ `checkpoint`, `distributed`, `device`, `evaluation`). Support: `images`
(image files and folders), `official` (the official dataset files), `heldout`, `report`,
`schedules`, `lrn_fast`, `hooks`, `validation`, `input_checks`, `runlog`, `files`,
`machine`, `standin` (generated smoke data). The edge, where policy is decided: `settings`
(environment), `profiles` (run sizes, data root, downloads, runs folder), `cli`
(`python -m alexnet_edu`). Notebook companions live in `alexnet_edu.notebook`, course tools in
`alexnet_edu.course`.

The names below are imported on first use, so `import alexnet_edu` (and command-line tools such
as `python -m alexnet_edu.course.release`) start without loading PyTorch.
"""

from importlib import import_module

__version__ = "0.1.0"

_LAZY = {
    "AlexNet": "model", "activations": "model", "LocalResponseNorm": "layers",
    "pick_device": "device", "data_root": "settings", "smoke_mode": "settings",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'alexnet_edu' has no attribute {name!r}")
