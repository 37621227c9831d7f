r"""How good is a classifier? Top-k accuracy, the confusion matrix, per-class precision / recall /
F1, and the paper's 10-crop test-time averaging (Section 4.1).

**Top-k.** ImageNet results are reported as top-1 and top-5 error: a prediction is top-k
correct when the true class is among the k highest-scoring classes. We compute the *rank* of the
true class $t$ directly, without sorting,

$$ \mathrm{rank}(t) = \#\{c : s_c > s_t\} + \#\{c < t : s_c = s_t\}, \qquad
   \text{top-}k\text{ correct} \iff \mathrm{rank}(t) < k, $$

which also fixes how **ties** are broken, deterministically: among equal scores the class with
the lower index ranks first (as a stable sort would). A model that outputs the same score for
every class is therefore only "right" about class 0 in top-1, never about all of them.

**Non-finite scores are wrong.** An example whose scores contain NaN or ±inf is counted as
*not* top-k correct: a diverged network must score 0 %, never 100 %.

**Empty classes.** Precision of a class nobody predicted ($0/0$) and recall of a class with no
examples ($0/0$) are *defined as 0* (scikit-learn's ``zero_division=0``), and so is F1 when
precision + recall = 0. A class missing from a small test set then lowers the macro average
instead of crashing the report; its ``support`` of 0 says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["topk_accuracy", "topk_correct", "confusion_matrix", "per_class_report", "ClassReport",
           "average_crops"]


def _check_logits(logits: torch.Tensor, targets: torch.Tensor) -> None:
    if logits.dim() != 2:
        raise ValueError(f"logits must be (N, classes), got shape {tuple(logits.shape)}")
    if targets.shape != logits.shape[:1]:
        raise ValueError(f"targets must be (N,) = ({logits.shape[0]},), got {tuple(targets.shape)}")
    if targets.numel() and (targets.min() < 0 or targets.max() >= logits.shape[1]):
        raise ValueError(f"targets must be class indices in [0, {logits.shape[1] - 1}], "
                         f"got values from {int(targets.min())} to {int(targets.max())}")


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
    # A NaN or infinite score is a wrong answer: no class beats NaN under `>`, so without this
    # line a diverged model (all-NaN logits) would score 100 %.
    finite = torch.isfinite(logits).all(1)
    return (above + tied_before < k) & finite


def topk_accuracy(logits: torch.Tensor, targets: torch.Tensor,
                  ks: Sequence[int] | int = (1, 5)) -> dict[int, float]:
    """Fraction of examples whose true class is in the top k, for each k: {1: 0.91, 5: 0.99}.

    A k larger than the number of classes raises a ValueError (it would be trivially 100 %).
    """
    ks = [ks] if isinstance(ks, int) else list(ks)
    n = max(len(targets), 1)
    return {k: topk_correct(logits, targets, k).sum().item() / n for k in ks}


def confusion_matrix(preds: torch.Tensor, targets: torch.Tensor,
                     num_classes: int) -> torch.Tensor:
    """`num_classes` x `num_classes` counts: row = true class, column = predicted class."""
    preds = torch.as_tensor(preds).long().flatten()
    targets = torch.as_tensor(targets).long().flatten()
    if preds.shape != targets.shape:
        raise ValueError(f"preds and targets differ in length: {len(preds)} vs {len(targets)}")
    for name, t in (("preds", preds), ("targets", targets)):
        if t.numel() and (t.min() < 0 or t.max() >= num_classes):
            raise ValueError(f"{name} must lie in [0, {num_classes - 1}], got values from "
                             f"{int(t.min())} to {int(t.max())}")
    # Each (true, predicted) pair gets one bin: true * C + predicted.
    counts = torch.bincount(targets * num_classes + preds, minlength=num_classes * num_classes)
    return counts.view(num_classes, num_classes)


@dataclass
class ClassReport:
    """Per-class precision, recall, F1 and support (tensors of length C), plus class names."""

    classes: list[str]
    precision: torch.Tensor
    recall: torch.Tensor
    f1: torch.Tensor
    support: torch.Tensor

    @property
    def macro_f1(self) -> float:
        """Unweighted mean F1 over classes (empty classes count as 0)."""
        return self.f1.mean().item()

    @property
    def accuracy(self) -> float:
        """Overall accuracy = sum of correct / number of examples."""
        total = self.support.sum().item()
        return (self.recall * self.support).sum().item() / total if total else 0.0

    def rows(self) -> list[dict]:
        """One dict per class: class, precision, recall, f1, support."""
        return [dict(cls=c, precision=p, recall=r, f1=f, support=s) for c, p, r, f, s in zip(
            self.classes, self.precision.tolist(), self.recall.tolist(), self.f1.tolist(),
            self.support.tolist())]

    def table(self) -> str:
        """The report as an aligned text table."""
        width = max([len(c) for c in self.classes] + [9])
        lines = [f"{'class':<{width}}  precision  recall     f1  support"]
        for row in self.rows():
            lines.append(f"{row['cls']:<{width}}  {row['precision']:9.3f}  {row['recall']:6.3f}"
                         f"  {row['f1']:5.3f}  {row['support']:7d}")
        lines.append(f"{'macro avg':<{width}}  {self.precision.mean():9.3f}  "
                     f"{self.recall.mean():6.3f}  {self.macro_f1:5.3f}  "
                     f"{int(self.support.sum()):7d}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _safe_div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a / b, with 0 where b == 0 (the module docstring explains why 0)."""
    return torch.where(b > 0, a / b.clamp(min=1e-12), torch.zeros_like(a))


def per_class_report(preds: torch.Tensor, targets: torch.Tensor,
                     classes: Sequence[str] | int) -> ClassReport:
    r"""Precision $= TP/(TP+FP)$, recall $= TP/(TP+FN)$, $F_1 = 2PR/(P+R)$ for every class.

    `classes` is the list of class names or their number. 0/0 is defined as 0 (empty classes).
    """
    names = [str(i) for i in range(classes)] if isinstance(classes, int) else list(classes)
    cm = confusion_matrix(preds, targets, len(names)).double()
    tp = cm.diag()
    precision = _safe_div(tp, cm.sum(0))       # column sum: everything predicted as the class
    recall = _safe_div(tp, cm.sum(1))          # row sum: everything that truly is the class
    f1 = _safe_div(2 * precision * recall, precision + recall)
    return ClassReport(names, precision.float(), recall.float(), f1.float(), cm.sum(1).long())


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
