"""A run's held-out split, rebuilt later (the command line's `evaluate`) and checked against the
fingerprints its checkpoint saved, so that a model is never scored on images it trained on."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from . import official
from .data import DATASETS, dataset_key, load_splits, test_subset
from .images import folder_dataset, held_out_folder, split_fingerprint

__all__ = ["held_out_split"]


def held_out_split(dataset: str | Path, root: str | Path | None = None, split: str = "test",
                   recipe: dict | None = None, download: bool = False,
                   classes: list[str] | None = None) -> tuple[Dataset, bool]:
    """(the split, synthetic): `split` as `load_splits` draws it with a run's `recipe` (its
    checkpoint's "split"), refused when its classes or fingerprint are not the run's. A test
    split kept apart (official test files, a folder's test/) is read alone."""
    recipe, name = recipe or {}, dataset_key(dataset)
    seed, limit = recipe.get("seed", 0), recipe.get("limit")
    if split == "test" and name in DATASETS:   # the official test files alone
        (held,), synthetic, _ = official.load(name, root, download, splits=("test",))
    elif split == "test" and (apart := held_out_folder(Path(dataset).expanduser())):
        held, synthetic = folder_dataset(apart), False
    else:   # drawn from the training pool, or from one folder of images
        splits = load_splits(dataset, root, recipe.get("val_fraction", 0.1), seed, limit, download)
        held, synthetic, limit = getattr(splits, split), splits.synthetic, None   # drawn already
    held = test_subset(held, seed, limit)
    if classes is not None and list(held.classes) != list(classes):
        raise ValueError(f"the run was trained on the classes {list(classes)}, but {str(dataset)!r}"
                         f" has {list(held.classes)}: evaluate it on data with the same classes "
                         "(one sub-folder per class, named as in training)")
    if recipe.get(split) is not None and split_fingerprint(held) != recipe[split]:
        raise ValueError(f"the {split} split of {str(dataset)!r} rebuilt with the run's seed "
                         f"{seed} is not the one the run held out (its files changed, or the "
                         "data root points at other data): evaluating it could count images "
                         "the model trained on; use the data it was trained on")
    return held, synthetic
