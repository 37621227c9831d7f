r"""How good is a classifier? Top-k accuracy, the confusion matrix, and the paper's 10-crop
test-time averaging (Section 4.1).

**Top-k.** ImageNet results are reported as top-1 and top-5 error: a prediction is top-k
correct when the true class is among the k highest-scoring classes. We compute the *rank* of the
true class $t$ directly, without sorting,

$$ \mathrm{rank}(t) = \#\{c : s_c > s_t\} + \#\{c < t : s_c = s_t\}, \qquad
   \text{top-}k\text{ correct} \iff \mathrm{rank}(t) < k, $$

which breaks **ties** deterministically: among equal scores the lower class index ranks first.
A model that outputs the same score for every class is only "right" about class 0 in top-1.
An example whose scores contain NaN or ±inf is *not* correct: a diverged network scores 0 %.

The per-class report (precision, recall, F1) is scikit-learn's, in `report.py`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["topk_accuracy", "topk_correct", "confusion_matrix", "average_crops"]


def _check_classes(name: str, t: torch.Tensor, num_classes: int) -> None:
    if t.numel() and (t.min() < 0 or t.max() >= num_classes):
        raise ValueError(f"{name} must lie in [0, {num_classes - 1}] (class indices), got values "
                         f"from {int(t.min())} to {int(t.max())}")


def _check_logits(logits: torch.Tensor, targets: torch.Tensor) -> None:
    if logits.dim() != 2:
        raise ValueError(f"logits must be (N, classes), got shape {tuple(logits.shape)}")
    if targets.shape != logits.shape[:1]:
        raise ValueError(f"targets must be (N,) = ({logits.shape[0]},), got {tuple(targets.shape)}")
    _check_classes("targets", targets, logits.shape[1])


def topk_correct(logits: torch.Tensor, targets: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean (N,) tensor: is the true class among the top `k` scores? Ties: lower index first."""
    _check_logits(logits, targets)
    classes = logits.shape[1]
    if not 1 <= k <= classes:
        raise ValueError(f"top-{k} accuracy needs 1 <= k <= number of classes ({classes}); "
                         f"with {classes} classes every prediction would be top-{k} correct")
    target_score = logits.gather(1, targets[:, None])                        # s_t, (N, 1)
    index = torch.arange(classes, device=logits.device)
    above = (logits > target_score).sum(1)                                   # s_c > s_t
    tied_before = ((logits == target_score) & (index < targets[:, None])).sum(1)
    # no class beats NaN under `>`: without this, all-NaN logits would score 100 %
    finite = torch.isfinite(logits).all(1)
    return (above + tied_before < k) & finite


def topk_accuracy(logits: torch.Tensor, targets: torch.Tensor,
                  ks: Sequence[int] | int = (1, 5)) -> dict[int, float]:
    """Fraction of examples whose true class is in the top k, for each k: {1: 0.91, 5: 0.99}.
    A k larger than the number of classes raises a ValueError (it would be trivially 100 %)."""
    ks = [ks] if isinstance(ks, int) else list(ks)
    n = max(len(targets), 1)
    return {k: topk_correct(logits, targets, k).sum().item() / n for k in ks}


def confusion_matrix(preds: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """`num_classes` x `num_classes` counts: row = true class, column = predicted class."""
    preds = torch.as_tensor(preds).long().flatten()
    targets = torch.as_tensor(targets).long().flatten()
    if preds.shape != targets.shape:
        raise ValueError(f"preds and targets differ in length: {len(preds)} vs {len(targets)}")
    _check_classes("preds", preds, num_classes)
    _check_classes("targets", targets, num_classes)
    # Each (true, predicted) pair gets one bin: true * C + predicted.
    counts = torch.bincount(targets * num_classes + preds, minlength=num_classes * num_classes)
    return counts.view(num_classes, num_classes)


@torch.no_grad()
def average_crops(model: nn.Module, crops: torch.Tensor) -> torch.Tensor:
    """Class probabilities averaged over crops: (N, K, C, H, W) patches -> (N, classes).

    With `transforms.ten_crop`'s patches this is the paper's test-time averaging (Section 4.1):
    "extracting five 224x224 patches (the four corner patches and the center patch) as well as
    their horizontal reflections (hence ten patches in all), and averaging the predictions made
    by the network's softmax layer". Call it in eval mode (dropout off)."""
    n, k = crops.shape[:2]
    logits = model(crops.flatten(0, 1)).float()                      # (N*K, classes)
    return logits.softmax(-1).view(n, k, -1).mean(1)                 # average of the softmaxes
