"""Metrics against hand-computed cases: top-k with ties, confusion matrix, P/R/F1, 10-crop."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from alexnet_edu.metrics import (
    average_crops,
    confusion_matrix,
    topk_accuracy,
    topk_correct,
)
from alexnet_edu.report import per_class_report
from alexnet_edu.transforms import ten_crop


def test_topk_hand_computed():
    logits = torch.tensor([[0.1, 0.7, 0.2, 0.0],    # ranking 1, 2, 0, 3
                           [0.5, 0.1, 0.3, 0.9],    # ranking 3, 0, 2, 1
                           [0.0, 0.0, 1.0, 2.0]])   # ranking 3, 2, 0, 1 (0 before 1: tie)
    targets = torch.tensor([1, 2, 0])
    assert topk_correct(logits, targets, 1).tolist() == [True, False, False]
    assert topk_correct(logits, targets, 2).tolist() == [True, False, False]
    assert topk_correct(logits, targets, 3).tolist() == [True, True, True]
    assert topk_accuracy(logits, targets, (1, 3, 4)) == {1: 1 / 3, 3: 1.0, 4: 1.0}


def test_ties_break_towards_the_lower_class_index():
    flat = torch.zeros(4, 5)                      # a model that says nothing
    targets = torch.tensor([0, 1, 2, 4])
    # rank of class t among equal scores is t: only class 0 is top-1, classes 0 and 1 top-2
    assert topk_correct(flat, targets, 1).tolist() == [True, False, False, False]
    assert topk_correct(flat, targets, 2).tolist() == [True, True, False, False]
    logits = torch.tensor([[1.0, 3.0, 3.0, 0.0]])
    assert topk_correct(logits, torch.tensor([1]), 1).item()        # 1 ties 2 and wins
    assert not topk_correct(logits, torch.tensor([2]), 1).item()    # 2 ties 1 and loses
    assert topk_correct(logits, torch.tensor([2]), 2).item()
    # deterministic: the same answer whatever order the rows come in
    again = topk_correct(flat.flip(0), targets.flip(0), 2).flip(0)
    assert again.tolist() == [True, True, False, False]


def test_k_larger_than_classes_is_refused():
    with pytest.raises(ValueError, match="number of classes"):
        topk_accuracy(torch.zeros(2, 3), torch.tensor([0, 1]), (1, 5))
    with pytest.raises(ValueError, match="1 <= k"):
        topk_accuracy(torch.zeros(2, 3), torch.tensor([0, 1]), 0)
    with pytest.raises(ValueError, match="class indices"):
        topk_accuracy(torch.zeros(2, 3), torch.tensor([0, 3]), 1)


def test_confusion_matrix_rows_are_true_classes():
    preds = torch.tensor([0, 1, 1, 2, 2, 2])
    targets = torch.tensor([0, 0, 1, 1, 2, 2])
    expected = torch.tensor([[1, 1, 0],
                             [0, 1, 1],
                             [0, 0, 2]])
    assert torch.equal(confusion_matrix(preds, targets, 3), expected)
    with pytest.raises(ValueError, match="preds must lie"):
        confusion_matrix(torch.tensor([3]), torch.tensor([0]), 3)


def test_per_class_report_hand_computed_with_empty_classes():
    # class 3 has no examples and is never predicted; class 2 has examples, never predicted
    preds = torch.tensor([0, 0, 1, 1, 0])
    targets = torch.tensor([0, 1, 1, 2, 0])
    report = per_class_report(preds, targets, ["a", "b", "c", "d"])
    # a: TP 2, predicted 3, true 2 -> P 2/3, R 1;  b: TP 1, predicted 2, true 2 -> P 1/2, R 1/2
    assert torch.allclose(report.precision, torch.tensor([2 / 3, 1 / 2, 0.0, 0.0]))
    assert torch.allclose(report.recall, torch.tensor([1.0, 1 / 2, 0.0, 0.0]))
    assert torch.allclose(report.f1, torch.tensor([0.8, 0.5, 0.0, 0.0]))
    assert report.support.tolist() == [2, 2, 1, 0]
    assert report.accuracy == pytest.approx(3 / 5)
    assert report.macro_f1 == pytest.approx(1.3 / 4)
    assert "d" in report.table() and not torch.isnan(report.f1).any()


def test_per_class_report_agrees_with_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    g = torch.Generator().manual_seed(0)
    preds, targets = torch.randint(0, 6, (200,), generator=g), torch.randint(0, 5, (200,),
                                                                              generator=g)
    report = per_class_report(preds, targets, 7)
    p, r, f, s = metrics.precision_recall_fscore_support(targets, preds, labels=range(7),
                                                         zero_division=0)
    assert torch.allclose(report.precision.double(), torch.from_numpy(p), atol=1e-6)
    assert torch.allclose(report.recall.double(), torch.from_numpy(r), atol=1e-6)
    assert torch.allclose(report.f1.double(), torch.from_numpy(f), atol=1e-6)
    assert report.support.tolist() == s.tolist()


class _PixelModel(nn.Module):
    """Logits = a fixed linear map of the pixels: different crops give different answers."""

    def __init__(self, size: int, classes: int = 3):
        super().__init__()
        self.w = nn.Parameter(torch.randn(classes, size * size, generator=torch.Generator()
                                          .manual_seed(1)))

    def forward(self, x):
        return x.flatten(1) @ self.w.T


def test_ten_crop_averaging_averages_softmax_over_corners_centre_and_mirrors():
    images = torch.randn(2, 1, 6, 7, generator=torch.Generator().manual_seed(0))
    model, s = _PixelModel(4), 4
    crops = [images[..., :s, :s], images[..., :s, 3:], images[..., 2:, :s], images[..., 2:, 3:],
             images[..., 1:5, 1:5]]
    crops += [c.flip(-1) for c in crops]
    expected = torch.stack([model(c).softmax(-1) for c in crops]).mean(0)
    got = average_crops(model, ten_crop(images, s))
    assert torch.allclose(got, expected, atol=1e-6)
    assert torch.allclose(got.sum(-1), torch.ones(2))
    # averaging softmaxes is not the softmax of averaged logits
    assert not torch.allclose(got, torch.stack([model(c) for c in crops]).mean(0).softmax(-1))
    assert average_crops(model, torch.stack(crops, 1)).shape == (2, 3)
    with pytest.raises(ValueError, match="smaller than the crop 8"):
        average_crops(_PixelModel(8), ten_crop(images, 8))
