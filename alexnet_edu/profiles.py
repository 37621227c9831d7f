"""Run profiles, the edge's policy (notebooks and the CLI ask here and pass the answers down):
``smoke`` (CI, numbers mean nothing), ``cpu`` (no CUDA GPU: 67 px) or ``full`` (CUDA: 227 px,
whole datasets); ``ALEXNET_EDU_PROFILE`` overrides. A profile changes how much work is done
(`run_size`), where runs go (`runs_dir`) and whether STL-10 is downloaded, never which code."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from . import data, heldout
from .official import FILES, FOLDERS, missing
from .settings import PROJECT_ROOT, REPO_URL, data_root, shown_path, smoke_mode
from .standin import provide_standins
from .train import TrainConfig

__all__ = ["PROFILES", "Profile", "RunSize", "current_profile", "run_size",
           "SIZES", "runs_dir", "load_splits", "held_out_split", "try_load", "stl10_source"]

PROFILES = ("smoke", "cpu", "full")
# where the official files come from: a link, since an installed package has no data/ folder
DATA_README = f"{REPO_URL}/blob/main/data/README.md"


@dataclass(frozen=True)
class Profile:
    """Which profile this process runs in, and why it was chosen."""

    name: str
    reason: str

    def __str__(self) -> str:
        return (f"profile {self.name!r} ({self.reason}); set ALEXNET_EDU_PROFILE=smoke|cpu|full "
                "to change it")


def current_profile() -> Profile:
    """The profile: ``ALEXNET_EDU_PROFILE`` if set, ``smoke`` under ``ALEXNET_EDU_SMOKE=1``,
    ``full`` when a CUDA GPU is available, else ``cpu``."""
    chosen = os.environ.get("ALEXNET_EDU_PROFILE", "").strip().lower()
    if chosen not in ("", *PROFILES):
        raise ValueError(f"ALEXNET_EDU_PROFILE={chosen!r} is not a profile: use one of "
                         f"{', '.join(PROFILES)}")
    if chosen:
        return Profile(chosen, "set by ALEXNET_EDU_PROFILE")
    if smoke_mode():
        return Profile("smoke", "ALEXNET_EDU_SMOKE=1: CI's quick check, numbers mean nothing")
    if torch.cuda.is_available():
        return Profile("full", f"a CUDA GPU: {torch.cuda.get_device_name(0)}")
    why = "Apple MPS is not CUDA" if torch.backends.mps.is_available() else "no CUDA GPU"
    return Profile("cpu", f"{why}: the 67 px recipe, each training notebook within 15 minutes "
                          "on a CPU")


@dataclass(frozen=True)
class RunSize:
    """How much one training run does: images, input size, epochs, and the two recipe settings
    a short run changes (learning rate and plateau patience; everything else is Section 5's)."""

    limit: int | None        # images per split (None: the whole dataset)
    image_size: int          # network input side, px
    epochs: int
    batch_size: int = 128    # Section 5
    lr: float = 0.01         # Section 5
    patience: int = 2        # epochs without a lower validation error before lr / 10
    seeds: int = 1           # repeats with seeds 0, 1, ... (notebook 10: the spread of a claim)

    def train_config(self, **overrides) -> TrainConfig:
        """A `train.TrainConfig` with these sizes (`overrides` win; the paper's recipe else)."""
        return TrainConfig(**{"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr,
                              "patience": self.patience, **overrides})

    def describe(self) -> str:
        images = "all images" if self.limit is None else f"at most {self.limit:,} images per split"
        return (f"{images}, {self.image_size} px, {self.epochs} epochs, batch {self.batch_size}, "
                f"lr {self.lr:g}" + (f", {self.seeds} seeds" if self.seeds > 1 else ""))


# Why the cpu sizes: 67 px is the smallest input the paper's layers take (67 -> 15 -> 7 -> 3 ->
# 1) and needs ~13x fewer multiply-adds than 227 px (`shapes.trace`). A short run has too few
# epochs for the paper's lr 0.01 and patience 2 to reach their plateau, so it uses a larger lr
# and less patience (benchmarks/time_to_accuracy.py compares them).
SIZES: dict[str, dict[str, RunSize]] = {
    "fashion-mnist": {
        "smoke": RunSize(limit=384, image_size=67, epochs=2),
        "cpu": RunSize(limit=7_500, image_size=67, epochs=15, lr=0.02, patience=1),
        "full": RunSize(limit=None, image_size=227, epochs=30),
    },
    "stl10": {
        "smoke": RunSize(limit=256, image_size=67, epochs=2),
        "cpu": RunSize(limit=None, image_size=67, epochs=20, lr=0.02, patience=2),
        "full": RunSize(limit=None, image_size=227, epochs=60),
    },
    # notebook 10: five runs (six with the exercise) share the budget; 67 px keeps pool5 the same
    # side (1) with overlapping and plain pooling, so the pooling ablation changes one thing only.
    "ablations": {
        # two seeds in smoke so that CI runs the spread-over-seeds code; one in cpu, whose
        # budget holds one run per arm
        "smoke": RunSize(limit=64, image_size=67, epochs=2, batch_size=32, seeds=2),
        # the paper's lr: the larger one makes the run without LRN diverge
        "cpu": RunSize(limit=3_000, image_size=67, epochs=8, lr=0.01, patience=1),
        "full": RunSize(limit=None, image_size=131, epochs=15, seeds=3),
    },
    # notebook 11's demonstration: one process with batch 2B against two with batch B (gloo, on
    # the CPU in every profile: it shows the arithmetic of data parallelism, not its speed)
    "parallel": {
        "smoke": RunSize(limit=32, image_size=67, epochs=1, batch_size=8),
        "cpu": RunSize(limit=512, image_size=67, epochs=1, batch_size=32),
        "full": RunSize(limit=512, image_size=67, epochs=1, batch_size=32),
    },
}


def run_size(task: str, profile: str | None = None, **overrides) -> RunSize:
    """The sizes of `task` ("fashion-mnist", "stl10", "ablations", "parallel"; a folder runs like
    "stl10") in `profile` (default: `current_profile()`), with `overrides` applied."""
    name = profile or current_profile().name
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}: use one of {', '.join(PROFILES)}")
    size = SIZES.get(task, SIZES["stl10"])[name]
    return dataclasses.replace(size, **{k: v for k, v in overrides.items() if v is not None})


# Where runs and data are, and whether to download -------------------------------------------------
def runs_dir(profile: str | None = None) -> Path:
    """PROJECT_ROOT/runs in the full profile, else runs/cpu or runs/smoke (so that a small run
    never shadows a bigger one)."""
    name = profile or current_profile().name
    return PROJECT_ROOT / "runs" / ("" if name == "full" else name)


def load_splits(dataset: str | Path, root: str | Path | None = None,
                download: bool | None = None, profile: str | None = None,
                standins: bool = False, **kwargs) -> data.Splits:
    """`data.load_splits` with this machine's policy: root None is `settings.data_root()`;
    download None fetches Fashion-MNIST always, STL-10 (2.6 GB) only in the full profile; in
    smoke mode, files that are not here are replaced by generated stand-ins (and it says so).
    `standins`: a run trained on generated stand-ins (resumed): no download, and stand-ins
    where the files are not here, as in smoke mode."""
    return _with_policy(data.load_splits, dataset, root, download, profile, **kwargs,
                        standins=standins)


def held_out_split(dataset: str | Path, root: str | Path | None = None,
                   profile: str | None = None, standins: bool = False, **kwargs):
    """`heldout.held_out_split` (a run's held-out split: split, recipe, classes), checked, with
    the policy of `load_splits`; `standins`: the run trained on generated stand-ins, so no
    download, and stand-ins where the files are not here (real files hold other images)."""
    return _with_policy(heldout.held_out_split, dataset, root, None, profile, **kwargs,
                        standins=standins)


def _with_policy(read, dataset, root, download, profile, standins: bool = False, **kwargs):
    name = data.dataset_key(dataset)
    if name not in data.DATASETS:   # a folder of images: its path says everything
        return read(dataset, **kwargs)
    named = "the root argument" if root is not None else "$ALEXNET_EDU_DATA" if os.environ.get(
        "ALEXNET_EDU_DATA", "").strip() else None
    root = Path(root).expanduser() if root is not None else data_root()
    if named is None:   # the working folder's data/ (on Colab /content/data) may be created
        root.mkdir(parents=True, exist_ok=True)
    profile = profile or current_profile().name
    download = name != "stl10" or profile == "full" if download is None else download
    download = download and not standins   # real files would not be the run's images
    try:
        return read(name, root, download=download, **kwargs)
    except FileNotFoundError as err:
        # stand-ins under ALEXNET_EDU_SMOKE=1 (or for a run trained on them: the CLI then checks
        # they are its images) only: the smoke *profile* is a size, and a student
        # (tests/test_newcomer.py) must meet a missing dataset as it is
        if not (smoke_mode() or standins) or not root.is_dir():   # a root not there: an error
            hint = (f"The files and where to get them: {DATA_README}. "
                    f"The data root {root} is {named or 'the default, data/'}: set "
                    "ALEXNET_EDU_DATA to the folder that holds the datasets" + (
                        "." if smoke_mode() or standins else ", or ALEXNET_EDU_SMOKE=1 to try "
                        "the code on small generated stand-ins (the smoke profile alone, "
                        "--profile smoke, only makes the run small)."))
            if name == "stl10" and not download and not standins:
                hint += (f" The {profile} profile does not start STL-10's "
                         f"{data.STL10_DOWNLOAD_GB} GB download: pass download=True (on the "
                         "command line --profile full), or set ALEXNET_EDU_PROFILE=full.")
            raise FileNotFoundError(f"{err}\n{hint}") from None
    why = f"The run trained on generated stand-ins: {name} is not in {root / FOLDERS[name]}"
    return read(name, provide_standins(name, root, why if standins else None), download=False,
                **kwargs)


def try_load(dataset: str | Path, **kwargs) -> data.Splits | None:
    """`load_splits(dataset, **kwargs)`, or None when its files are not here and could not be
    downloaded: then it prints what is missing and how to get it (a notebook goes on without)."""
    try:
        return load_splits(dataset, **kwargs)
    except FileNotFoundError as err:
        if (name := data.dataset_key(dataset)) not in data.DATASETS:
            print(f"Not loaded: {err}")
            return None
        root = kwargs.get("root")
        env = root is None and os.environ.get("ALEXNET_EDU_DATA", "").strip()
        root = Path(root or data_root())
        # no machine paths beyond the data folder's short name: a stored output shows none
        where = "$ALEXNET_EDU_DATA" if env else shown_path(root)
        folder = root / FOLDERS[name]
        size = f"{data.STL10_DOWNLOAD_GB} GB" if name == "stl10" else "30 MB"
        failed = " (the download failed: offline?)" if "download failed" in str(err) else ""
        print(f"{name} is not here: {where}/{FOLDERS[name].as_posix()}/ lacks "
              f"{', '.join(missing(name, folder) or FILES[name][:4])}{failed}. Get it with "
              f"profiles.load_splits({name!r}, download=True) ({size}), or copy the official "
              f"files there ({DATA_README}). The cells that need it skip.")
        return None


def stl10_source(profile: str | None = None) -> str | Path:
    """What the notebooks load as STL-10: "stl10" when its files are under `data_root()` or in the
    full profile (which downloads them), else the real sample ``stl10-sample/test`` if there."""
    sample = data_root() / "stl10-sample" / "test"
    official = (data_root() / FOLDERS["stl10"] / "train_X.bin").is_file()
    use_sample = sample.is_dir() and not official and (profile or current_profile().name) != "full"
    return sample if use_sample else "stl10"
