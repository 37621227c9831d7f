"""The figure test: `viz.layout_problems` finds text that leaves the figure or lies on other
text, and every figure of the package passes it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alexnet_edu.model import AlexNet
from alexnet_edu.notebook import viz
from alexnet_edu.shapes import trace


@pytest.fixture
def made_wrong(monkeypatch):
    """Figures made unreadable on purpose: kept out of the session's figure check (conftest.py),
    which would otherwise fail the run for them."""
    monkeypatch.delenv(viz.FIGURE_CHECK_VARIABLE, raising=False)


def test_layout_problems_finds_a_title_wider_than_its_figure_and_overlapping_titles(
        made_wrong) -> None:
    # notebook 01's bar chart: two long titles over 6-inch panels
    fig, axes = viz.subplots(1, 2, figsize=(12, 4))
    for ax in axes:
        ax.bar(["conv1", "fc6"], [0.03, 37.7])
        ax.set_title("Multiply-adds per image per layer (AlexNet, 227 x 227, groups=1)")
        ax.set_ylabel("multiply-adds (millions)")
    problems = viz.layout_problems(fig)
    assert any("sticks out of the figure" in p for p in problems), problems
    fig, axes = viz.subplots(1, 2, figsize=(3, 2), layout=None)
    axes[0].set_title("a long title that runs into the next one")
    axes[1].set_title("the next one")
    assert any("overlaps axes 1 title" in p for p in viz.layout_problems(fig))


def test_layout_problems_finds_a_bar_label_drawn_over_the_neighbouring_bar(made_wrong) -> None:
    # what plot_towers did: the label of the short bar sits on the tall bar beside it
    one = np.array([105.0, 448.0, 150.0, 224.0, 150.0, 38.0, 17.0, 4.0])
    two = one * np.array([1, 0.5, 1, 0.5, 0.5, 1, 1, 1])
    fig, ax = viz.subplots(figsize=(6, 3.8))
    ax.bar(np.arange(8) - 0.2, one, width=0.4)
    halved = ax.bar(np.arange(8) + 0.2, two, width=0.4)
    ax.bar_label(halved, labels=[f"-{p - q:.2f} M" if p > q else "" for p, q in zip(one, two)],
                 fontsize=7, padding=2)
    ax.set_yscale("log")
    assert any("drawn over a bar" in p for p in viz.layout_problems(fig))


def test_a_clean_figure_has_no_problems_and_the_colour_bar_label_is_checked(made_wrong) -> None:
    fig, ax = viz.subplots(figsize=(4, 3))
    im = ax.imshow(np.zeros((4, 4)))
    ax.set(title="short", xlabel="x", ylabel="y")
    bar = fig.colorbar(im, ax=ax, shrink=0.3)
    assert viz.layout_problems(fig, ticks=True) == []
    bar.set_label("a colour-bar label far longer than its shrunken colour bar can hold")
    assert any("y label" in p and "sticks out" in p for p in viz.layout_problems(fig))


def _package_figures() -> dict:
    """Each figure of viz, drawn from typical inputs when called (notebook-sized)."""
    torch.manual_seed(0)
    titles = [f"class {i}\n→ class {i} (93%)" for i in range(4)]
    history = [dict(epoch=e, train_loss=2 / e, train_acc=0.1 * e, val_loss=2.1 / e,
                    val_acc=0.09 * e, lr=0.01, images_per_s=100.0) for e in range(1, 6)]
    classes = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship",
               "truck"]
    images = torch.randint(0, 255, (40, 3, 32, 32), dtype=torch.uint8)
    labels = torch.arange(40) % 10
    idx = torch.randint(0, 40, (3, 4))
    methods = ("occlusion", "gradient saliency", "Grad-CAM", "edge detector (no model)")
    stages = ["trained", "fc8", "fc7", "fc6", "conv5", "conv4", "conv3", "conv2", "conv1"]
    sanity = {"stages": stages,
              "maps": {m: [torch.rand(4, 8, 8) for _ in stages] for m in methods},
              "spearman": {m: list(np.linspace(1, 0, len(stages))) for m in methods},
              "ssim": {m: list(np.linspace(1, 0.2, len(stages))) for m in methods}}
    return {
        "image_grid": lambda: viz.image_grid(images[:8], titles=classes[:8]),
        "filter_grid": lambda: viz.filter_grid(torch.randn(96, 3, 11, 11), ncols=16),
        "feature_map_grid": lambda: viz.feature_map_grid(torch.rand(16, 3, 3),
                                                         title="relu5 of 'cat'"),
        "feature_map_grid shared": lambda: viz.feature_map_grid(torch.rand(16, 3, 3), shared=True),
        "confusion": lambda: viz.plot_confusion_matrix(torch.randint(0, 30, (10, 10)), classes),
        "history": lambda: viz.plot_history(history),
        "heatmaps": lambda: viz.plot_heatmaps(torch.rand(4, 3, 67, 67), torch.rand(4, 5, 5),
                                      titles=titles, title="Grad-CAM (relu5)"),
        "heatmaps signed": lambda: viz.plot_heatmaps(torch.rand(4, 3, 67, 67), torch.randn(4, 5, 5),
                                             titles=titles, title="Occlusion (11px patch)"),
        "scatter": lambda: viz.scatter_2d(torch.randn(40, 2), labels, classes, images=images),
        "retrieval": lambda: viz.plot_retrieval(images, [0, 5, 9], {"fc7": idx, "pixels": idx},
                                        labels=labels, classes=classes),
        "towers": lambda: viz.plot_towers(trace(AlexNet(groups=1), (3, 227, 227)),
                                  trace(AlexNet(groups=2), (3, 227, 227))),
        "windows": lambda: viz.draw_windows(24, 11, 4),
        "sanity": lambda: viz.plot_sanity_checks(sanity),
        "sanity maps": lambda: viz.plot_sanity_maps(torch.rand(3, 67, 67), sanity),
    }


@pytest.mark.parametrize("name", list(_package_figures()))
def test_every_figure_of_the_package_is_readable(name) -> None:
    assert viz.layout_problems(_package_figures()[name]()) == []


def test_the_check_runs_after_every_draw_when_the_variable_names_a_file(tmp_path,
                                                                       monkeypatch) -> None:
    report = tmp_path / "figures.txt"
    monkeypatch.setenv(viz.FIGURE_CHECK_VARIABLE, str(report))
    fig, ax = viz.subplots(figsize=(2, 2))
    ax.set_title("a title far too long for a figure two inches wide")
    viz.figure_to_png(fig)                     # what a notebook does to show it
    viz.figure_to_png(fig)                     # shown twice: reported once
    lines = report.read_text().splitlines()
    assert len(lines) == 1 and "sticks out of the figure" in lines[0]
    monkeypatch.delenv(viz.FIGURE_CHECK_VARIABLE)
    fig, ax = viz.subplots(figsize=(2, 2))
    ax.set_title("a title far too long for a figure two inches wide")
    viz.figure_to_png(fig)
    assert len(report.read_text().splitlines()) == 1    # not installed without the variable


def test_signed_maps_are_centred_on_zero_and_unsigned_ones_use_a_perceptual_map() -> None:
    signed = torch.zeros(1, 4, 4)
    signed[0, 0, 0], signed[0, 3, 3] = 0.5, -0.25
    fig = viz.plot_heatmaps(torch.rand(1, 3, 4, 4), signed)
    overlay = fig.axes[1].images[-1]
    assert overlay.get_cmap().name == "RdBu_r" and overlay.get_clim() == (-1.0, 1.0)
    shown = np.asarray(overlay.get_array())
    assert shown[0, 0] == 1.0 and shown[3, 3] == -0.5 and shown[1, 2] == 0.0   # 0 stays 0
    fig = viz.plot_heatmaps(torch.rand(1, 3, 4, 4), torch.rand(1, 4, 4))
    assert fig.axes[1].images[-1].get_cmap().name == "inferno"
    assert "jet" not in {im.get_cmap().name for ax in fig.axes for im in ax.images}


def test_feature_map_grid_masks_missing_values_instead_of_drawing_them_as_zero() -> None:
    ratio = torch.full((1, 3, 3), 0.5)
    ratio[0, 0, 0], ratio[0, 2, 2] = float("nan"), 0.1           # a = 0: no ratio there
    fig = viz.feature_map_grid(ratio)
    shown = fig.axes[0].images[0].get_array()
    assert shown.mask[0, 0] and not shown.mask[2, 2]
    assert shown[2, 2] == 0.0 and shown[1, 1] == 1.0              # scaled over the finite values
    assert any(ax.get_ylabel() for ax in fig.axes)                # a colour bar, labelled
