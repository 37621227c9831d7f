r"""The per-class report: precision, recall and F1 of every class, by scikit-learn's
`classification_report`, kept as tensors and its text table.

**Empty classes.** Precision of a class nobody predicted ($0/0$) and recall of a class with no
examples ($0/0$) are *defined as 0* (scikit-learn's ``zero_division=0``), and so is F1 when
precision + recall = 0. A class missing from a small test set then lowers the macro average
instead of crashing the report; its ``support`` of 0 says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .metrics import confusion_matrix

__all__ = ["ClassReport", "per_class_report"]


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
