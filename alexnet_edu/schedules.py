r"""Learning-rate schedules beyond the paper's, set per optimizer step: a linear warm-up and the
half cosine. The paper's own rule (divide by 10 when the validation error stops improving,
Section 5) is `train.fit`'s ReduceLROnPlateau; these suit short runs of a fixed length."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["step_lr"]


def step_lr(config: Any, step: int, steps_per_epoch: int) -> float | None:
    r"""The learning rate of optimizer step `step` (from 0) of a run with `config` (a
    `train.TrainConfig`) where it is set per step: lr (step
    + 1) / warm-up steps during the linear warm-up, and with ``schedule="cosine"`` the half
    cosine from lr to min_lr over the remaining steps (not in the paper; it suits a fixed number
    of epochs, but is not better everywhere),
    $$ \epsilon_t = \epsilon_{\min} + \tfrac12(\epsilon - \epsilon_{\min})(1 + \cos(\pi t / T)). $$
    None: the paper's plateau rule decides, per epoch (it needs the validation error)."""
    warmup = round(config.warmup_epochs * steps_per_epoch)
    if step < warmup:
        return config.lr * (step + 1) / warmup
    if config.schedule == "cosine":
        total = max(config.epochs * steps_per_epoch - warmup, 1)
        cosine = 0.5 * (1 + math.cos(math.pi * (step - warmup) / total))
        return config.min_lr + (config.lr - config.min_lr) * cosine
    return config.lr if step == warmup and warmup > 0 else None
