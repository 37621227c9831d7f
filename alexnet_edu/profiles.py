"""Run profiles: the same code at three sizes, chosen by the machine.

- ``smoke``: CI. A few hundred images, one or two epochs, 67 px: checks that every code path
  runs; its numbers mean nothing.
- ``cpu``: no CUDA GPU (a laptop, Apple MPS, Colab without a GPU). 67 px inputs and a recipe
  tuned for a budget of about 10-15 minutes on 2 CPU cores per training notebook: a result that
  means something (Fashion-MNIST: about 85 % test accuracy, see the README's results).
- ``full``: a CUDA GPU. The paper's input size (227 px) and whole datasets.

``ALEXNET_EDU_PROFILE=smoke|cpu|full`` overrides the choice (``ALEXNET_EDU_SMOKE=1`` still means
smoke). Notebooks and the CLI read their sizes from `run_size`, so a profile changes how much
work is done, never which code does it.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import torch

from .settings import smoke_mode

__all__ = ["PROFILES", "Profile", "RunSize", "current_profile", "profile_named", "run_size",
           "SIZES"]

PROFILES = ("smoke", "cpu", "full")


@dataclass(frozen=True)
class Profile:
    """Which profile this process runs in, and why it was chosen."""

    name: str
    reason: str

    def __str__(self) -> str:
        return (f"profile {self.name!r} ({self.reason}); set ALEXNET_EDU_PROFILE=smoke|cpu|full "
                "to change it")


def profile_named() -> str | None:
    """The profile ``ALEXNET_EDU_PROFILE`` names (None when unset); a ValueError for a name that
    is not one. Reads only the variable (no CUDA call)."""
    chosen = os.environ.get("ALEXNET_EDU_PROFILE", "").strip().lower()
    if chosen and chosen not in PROFILES:
        raise ValueError(f"ALEXNET_EDU_PROFILE={chosen!r} is not a profile: use one of "
                         f"{', '.join(PROFILES)}")
    return chosen or None


def current_profile() -> Profile:
    """The profile: ``ALEXNET_EDU_PROFILE`` if set, ``smoke`` under ``ALEXNET_EDU_SMOKE=1``,
    ``full`` when a CUDA GPU is available, else ``cpu``."""
    chosen = profile_named()
    if chosen:
        return Profile(chosen, "set by ALEXNET_EDU_PROFILE")
    if smoke_mode():
        return Profile("smoke", "ALEXNET_EDU_SMOKE=1: CI's quick check, numbers mean nothing")
    if torch.cuda.is_available():
        return Profile("full", f"a CUDA GPU: {torch.cuda.get_device_name(0)}")
    mps = getattr(torch.backends, "mps", None)
    why = "Apple MPS is not CUDA" if mps is not None and mps.is_available() else "no CUDA GPU"
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

    def train_config(self, **overrides):
        """A `train.TrainConfig` with these sizes (and the paper's recipe for everything else)."""
        from .train import TrainConfig  # train imports this module: import on use

        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                           patience=self.patience, **overrides)

    def describe(self) -> str:
        images = "all images" if self.limit is None else f"at most {self.limit:,} images per split"
        return (f"{images}, {self.image_size} px, {self.epochs} epochs, batch {self.batch_size}, "
                f"lr {self.lr:g}" + (f", {self.seeds} seeds" if self.seeds > 1 else ""))


# Why the cpu sizes: 67 px is the smallest input the paper's layers take (67 -> 15 -> 7 -> 3 ->
# 1) and needs ~13x fewer multiply-adds than 227 px (`shapes.trace`). A run of 10-15 minutes on
# an older 2-core CPU has about 15 epochs, too few for the paper's lr 0.01 and patience 2 to
# reach their plateau: lr 0.02 and patience 1 learn faster there (benchmarks/time_to_accuracy.py
# measured both; the README's Results give the runs).
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
        # 10-minute budget holds one run per arm
        "smoke": RunSize(limit=64, image_size=67, epochs=2, batch_size=32, seeds=2),
        # the paper's lr: at 0.02 the run without LRN diverged to chance in its first epoch
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
