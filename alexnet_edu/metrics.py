r"""How good is a classifier? Top-k accuracy, the confusion matrix, per-class precision / recall /
F1, and the paper's 10-crop test-time averaging (Section 4.1).

**Top-k.** ImageNet results are reported as top-1 and top-5 error: a prediction is top-k
correct when the true class is among the k highest-scoring classes. We compute the *rank* of the
true class $t$ directly, without sorting,

$$ \mathrm{rank}(t) = \#\{c : s_c > s_t\} + \#\{c < t : s_c = s_t\}, \qquad
   \text{top-}k\text{ correct} \iff \mathrm{rank}(t) < k, $$

which breaks **ties** deterministically: among equal scores the lower class index ranks first.
A model that outputs the same score for every class is only "right" about class 0 in top-1.
An example whose scores contain NaN or ±inf is *not* correct: a diverged network scores 0 %.

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


@dataclass
class ClassReport:
    """Per-class precision, recall, F1 and support (tensors of length C), and the printed table."""

    classes: list[str]
    precision: torch.Tensor
    recall: torch.Tensor
    f1: torch.Tensor
    support: torch.Tensor
    text: str

    @property
    def macro_f1(self) -> float:
        """Unweighted mean F1 over classes (empty classes count as 0)."""
        return self.f1.mean().item()

    @property
    def accuracy(self) -> float:
        """Overall accuracy = sum of correct / number of examples."""
        return (self.recall.double() * self.support).sum().item() / self.support.sum().item()

    def rows(self) -> list[dict]:
        """One dict per class: cls, precision, recall, f1, support."""
        return [dict(cls=c, precision=p, recall=r, f1=f, support=s) for c, p, r, f, s in zip(
            self.classes, self.precision.tolist(), self.recall.tolist(), self.f1.tolist(),
            self.support.tolist())]

    def table(self) -> str:
        """scikit-learn's text report: one line per class, then accuracy and the averages."""
        return self.text

    __str__ = table


def per_class_report(preds: torch.Tensor, targets: torch.Tensor,
                     classes: Sequence[str] | int) -> ClassReport:
    r"""Precision $= TP/(TP+FP)$, recall $= TP/(TP+FN)$, $F_1 = 2PR/(P+R)$ for every class, by
    `sklearn.metrics.classification_report`. `classes`: the class names or their number.
    0/0 is defined as 0 (empty classes, see the module docstring)."""
    from sklearn.metrics import classification_report  # slow to import; only the report needs it

    names = [str(i) for i in range(classes)] if isinstance(classes, int) else list(classes)
    if not confusion_matrix(preds, targets, len(names)).sum():   # (it checks the inputs)
        raise ValueError("per_class_report needs at least one prediction, got none")
    args = dict(y_true=torch.as_tensor(targets).cpu().flatten().numpy(), zero_division=0,
                y_pred=torch.as_tensor(preds).cpu().flatten().numpy(), labels=range(len(names)))
    scores = classification_report(**args, output_dict=True)   # keyed by "0", "1", ...
    column = [[scores[str(i)][key] for i in range(len(names))]
              for key in ("precision", "recall", "f1-score", "support")]
    return ClassReport(names, *(torch.tensor(c, dtype=torch.float32) for c in column[:3]),
                       torch.tensor(column[3]).long(),
                       classification_report(**args, target_names=names, digits=3))


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
