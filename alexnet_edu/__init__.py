"""alexnet_edu: the code behind the AlexNet teaching notebooks.

One module per idea: `shapes` (output-size arithmetic), `layers` (Local Response Normalization),
`model` (AlexNet), `data` (datasets, splits, loaders), `transforms` (the paper's augmentation on
whole batches), `images` (reading image files), `standin` (generated smoke data),
`train` (the paper's recipe), `checkpoint` and `files` (saving, loading, resuming), `pretrained`,
`metrics`, `viz` (plots), `widgets`, `embeddings`, `interpret`, `experiments`, `assignments`,
`checks` and `grading` (exercises), `cli` (`python -m alexnet_edu`), `device`, `profiles`,
`notebook` (the notebooks' set-up cell), `settings` (smoke mode, data root).

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
