"""Plot helpers on edge cases, the feature-map viewer's widgets, and activation shapes."""

from __future__ import annotations

import math

import matplotlib
import matplotlib.axes
import numpy as np
import pytest
import torch

from alexnet_edu import AlexNet, activations
from alexnet_edu.notebook import viz
from alexnet_edu.notebook.widgets import FeatureMapViewer
from alexnet_edu.shapes import conv_output_size, unread_pixels, unused_pixels


@pytest.fixture(scope="module")
def small_model() -> AlexNet:
    torch.manual_seed(0)
    return AlexNet(num_classes=10, image_size=67, init="kaiming").eval()


def _shown(fig) -> list[np.ndarray]:
    """The arrays of every image drawn in the figure's visible axes."""
    return [np.asarray(im.get_array()) for ax in fig.axes if ax.get_visible()
            for im in ax.images]


# --- to_unit_range / denormalize --------------------------------------------------------------

def test_unit_range_scales_each_map_and_zeroes_constant_maps() -> None:
    x = torch.stack([torch.zeros(4, 4), torch.full((4, 4), 7.0), torch.arange(16.).view(4, 4)])
    y = viz.to_unit_range(x, dims=(-2, -1))
    assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
    assert (y[0] == 0).all() and (y[1] == 0).all(), "constant maps must become 0, not NaN"
    assert y[2].min() == 0 and y[2].max() == 1
    assert torch.allclose(y[2], x[2] / 15)


def test_unit_range_handles_nan_inf_and_empty() -> None:
    y = viz.to_unit_range(torch.tensor([float("nan"), float("inf"), -1.0, 1.0]))
    assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
    assert y[3] == 1 and y[2] == 0
    assert viz.to_unit_range(torch.empty(0)).numel() == 0


def test_denormalize_inverts_normalize_and_clips() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 3, 5, 5)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    normalized = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(viz.denormalize(normalized, mean, std), x, atol=1e-6)
    assert viz.denormalize(torch.full((3, 2, 2), 100.0), mean, std).max() == 1
    u8 = torch.tensor([[[0, 255]]], dtype=torch.uint8)
    assert torch.equal(viz.denormalize(u8), torch.tensor([[[0.0, 1.0]]]))


# --- grids -------------------------------------------------------------------------------------

def test_feature_map_grid_with_dead_maps_and_one_channel() -> None:
    maps = torch.zeros(3, 6, 6)
    maps[1] = 5.0                                    # constant, not zero
    maps[2, 2, 3] = 1.0
    fig = viz.feature_map_grid(maps)
    arrays = _shown(fig)
    assert len(arrays) == 3
    for a in arrays:
        assert np.isfinite(a).all() and a.min() >= 0 and a.max() <= 1
    assert arrays[2].max() == 1 and arrays[0].max() == 0
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert "dead" in titles[0] and "dead" not in titles[1]
    # one channel given as (H, W), or as (1, H, W): one axis, no indexing error
    for one in (torch.randn(6, 6), torch.randn(1, 6, 6)):
        assert len(_shown(viz.feature_map_grid(one))) == 1


def test_feature_map_grid_rejects_a_batch() -> None:
    with pytest.raises(ValueError, match="one image"):
        viz.feature_map_grid(torch.zeros(2, 3, 4, 4))


def test_image_grid_one_image_titles_and_layout() -> None:
    fig = viz.image_grid(torch.randint(0, 255, (3, 8, 8), dtype=torch.uint8), titles=["cat"])
    assert len(_shown(fig)) == 1 and fig.axes[0].get_title() == "cat"
    assert _shown(fig)[0].shape == (8, 8, 3)
    fig = viz.image_grid(torch.rand(10, 1, 8, 8), ncols=4)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 10 and len(fig.axes) == 12      # 3 rows x 4, two hidden
    assert _shown(fig)[0].shape == (8, 8)                  # grey images stay 2-D
    assert fig._suptitle is not None


def test_filter_grid_colour_grey_and_zero_filters() -> None:
    w = torch.randn(5, 3, 11, 11)
    w[0] = 0
    arrays = _shown(viz.filter_grid(w))
    assert len(arrays) == 5 and arrays[1].shape == (11, 11, 3)
    assert all(np.isfinite(a).all() and 0 <= a.min() and a.max() <= 1 for a in arrays)
    assert arrays[0].max() == 0                            # a zero filter: flat, not NaN
    grey = _shown(viz.filter_grid(torch.randn(1, 1, 5, 5)))
    assert len(grey) == 1 and grey[0].shape == (5, 5)


def test_confusion_matrix_rows_are_percentages_and_empty_rows_stay_zero() -> None:
    cm = torch.tensor([[3, 1, 0], [0, 0, 0], [2, 0, 2]])
    fig = viz.plot_confusion_matrix(cm, ["a", "b", "c"])
    shown = _shown(fig)[0]
    assert np.allclose(shown.sum(1), [100, 0, 100])
    assert np.isclose(shown[0, 0], 75)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    assert "62.5%" in ax.get_title()                       # (3 + 0 + 2) / 8
    with pytest.raises(ValueError, match="3×3"):
        viz.plot_confusion_matrix(torch.zeros(2, 2), ["a", "b", "c"])


HISTORY = [dict(epoch=1, train_loss=2.0, train_acc=0.3, val_loss=2.1, val_acc=0.25, lr=0.01,
                images_per_s=100.0),
           dict(epoch=2, train_loss=1.5, train_acc=0.5, val_loss=1.7, val_acc=0.4, lr=0.001,
                images_per_s=120.0)]


def test_plot_history_plots_the_numbers_with_accuracy_in_percent() -> None:
    fig = viz.plot_history(HISTORY)
    loss_ax, acc_ax, lr_ax = fig.axes[:3]
    assert [list(line.get_ydata()) for line in loss_ax.lines] == [[2.0, 1.5], [2.1, 1.7]]
    assert [list(line.get_ydata()) for line in acc_ax.lines] == [[30.0, 50.0], [25.0, 40.0]]
    assert list(lr_ax.lines[0].get_ydata()) == [0.01, 0.001]
    assert all(ax.get_xlabel() == "epoch" and ax.get_ylabel() for ax in (loss_ax, acc_ax, lr_ax))
    fig.canvas.draw()   # epochs are whole numbers: no tick at 1.2, 1.4, ...
    assert all(float(t).is_integer() for ax in (loss_ax, acc_ax, lr_ax)
               for t in ax.get_xticks())
    # a history without validation keys still plots
    fig = viz.plot_history([{k: v for k, v in r.items() if not k.startswith("val")}
                            for r in HISTORY])
    assert len(fig.axes[0].lines) == 1


def test_live_history_plot_accepts_records_or_the_whole_history() -> None:
    live = viz.LiveHistoryPlot()
    for record in HISTORY:
        live(record)
    assert [r["epoch"] for r in live.history] == [1, 2]
    assert list(live.figure.axes[0].lines[0].get_ydata()) == [2.0, 1.5]
    live(HISTORY[:1])
    assert len(live.history) == 1 and len(live.figure.axes[0].lines[0].get_ydata()) == 1


def test_plot_heatmaps_single_image_and_constant_map() -> None:
    fig = viz.plot_heatmaps(torch.rand(3, 16, 16), torch.zeros(4, 4), titles=["x"])
    arrays = _shown(fig)
    assert len(arrays) == 3                               # image, image + overlay
    assert arrays[-1].shape == (16, 16) and np.isfinite(arrays[-1]).all()
    assert arrays[-1].max() == 0


# --- activations --------------------------------------------------------------------------------

def test_activation_shapes_per_layer_name(small_model) -> None:
    # 67 px, the paper's kernels: 67 -conv1-> (67-11)/4+1 = 15 -pool-> 7 -conv2-> 7 -pool-> 3
    # -conv3..5-> 3 -pool5-> 1; fc6/fc7 4096; fc8 the classes.
    expected = {"conv1": (96, 15, 15), "relu1": (96, 15, 15), "norm1": (96, 15, 15),
                "pool1": (96, 7, 7), "conv2": (256, 7, 7), "pool2": (256, 3, 3),
                "conv3": (384, 3, 3), "conv4": (384, 3, 3), "relu5": (256, 3, 3),
                "pool5": (256, 1, 1), "fc6": (4096,), "relu7": (4096,), "fc8": (10,)}
    out = activations(small_model, torch.randn(2, 3, 67, 67), list(expected))
    assert list(out) == list(expected)
    for name, shape in expected.items():
        assert tuple(out[name].shape) == (2, *shape), name
    # the stored conv1 output is the pre-ReLU copy, even though relu1 works in place
    assert (out["conv1"] < 0).any() and (out["relu1"] >= 0).all()
    assert torch.equal(out["relu1"], out["conv1"].clamp_min(0))


# --- the feature-map viewer ------------------------------------------------------------------

def test_feature_map_viewer_controls_and_updates(small_model) -> None:
    torch.manual_seed(1)
    images = torch.randn(2, 3, 67, 67)
    viewer = FeatureMapViewer(small_model, images, titles=["a", "b"])
    assert list(viewer.layer.options) == small_model.layer_names()[:len(viewer.layer.options)]
    assert viewer.layer.options[0] == "conv1" and "pool5" in viewer.layer.options
    assert [label for label, _ in viewer.image_picker.options] == ["a", "b"]
    assert "alexnet-edu-layer" in viewer.layer._dom_classes
    assert "alexnet-edu-image" in viewer.image._dom_classes
    assert viewer.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert viewer.channel.max == 95                           # conv1: 96 channels

    before = viewer.image.value
    viewer.layer.value = "conv3"
    assert viewer.channel.max == 383 and viewer.image.value != before

    # top-activating channels: sorted by mean activation of the shown image
    maps = activations(small_model, images[:1], "conv3")["conv3"][0]
    means = maps.flatten(1).mean(1)
    top = [value for _, value in viewer.top_channels.options]
    assert top == means.argsort(descending=True)[:viewer.top_k].tolist()
    # a new layer opens on its most active channel, and the menu shows it
    assert viewer.channel.value == top[0] and viewer.top_channels.value == top[0]
    before = viewer.image.value
    viewer.top_channels.value = top[1]
    assert viewer.channel.value == top[1] and viewer.image.value != before
    viewer.channel.value = next(c for c in range(384) if c not in top)
    assert viewer.top_channels.value is None           # not a top channel: the menu is blank
    viewer.channel.value = top[2]
    assert viewer.top_channels.value == top[2]

    before = viewer.image.value
    viewer.image_picker.value = 1
    assert viewer.image.value != before and viewer.channel.value == top[2]   # channel kept
    assert torch.allclose(viewer.maps(), activations(small_model, images[1:], "conv3")["conv3"][0])
    bundle = viewer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and "image/png" in bundle


def test_feature_map_viewer_one_image_and_bad_input(small_model) -> None:
    viewer = FeatureMapViewer(small_model, torch.randn(3, 67, 67), layers=["pool5"])
    assert list(viewer.layer.options) == ["pool5"] and viewer.channel.max == 255
    assert math.isfinite(float(viewer.maps().sum()))
    fig = viewer.figure()                 # pool5 of a 67 px image: 1 x 1 units
    fig.canvas.draw()
    unit_map = next(ax for ax in fig.axes if ax.get_xlabel().startswith("x (unit"))
    assert all(float(t).is_integer() for t in [*unit_map.get_xticks(), *unit_map.get_yticks()])
    assert viewer.top_channels.style.description_width == "initial"   # "Top channels" in full
    with pytest.raises(ValueError, match="N, C, H, W"):
        FeatureMapViewer(small_model, torch.randn(67, 67))


def test_plot_towers_draws_both_nets_and_labels_what_groups_saves() -> None:
    from alexnet_edu.shapes import trace

    one, two = trace(AlexNet(groups=1), (3, 227, 227)), trace(AlexNet(groups=2), (3, 227, 227))
    fig = viz.plot_towers(one, two)
    params_ax, madds_ax = fig.axes[:2]
    heights = [round(p.get_height() * 1e6) for p in params_ax.patches]
    assert heights[:8] == [one.row(n).parameters for n in
                           ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")]
    assert heights[9] == two.row("conv2").parameters       # the groups=2 bars follow
    saved = [t.get_text() for t in params_ax.texts if t.get_text()]
    assert len(saved) == 3                                 # conv2, conv4 and conv5 are halved
    assert "ultiply-adds" in madds_ax.get_ylabel() + madds_ax.get_title()


def test_draw_windows_draws_one_window_per_output():
    ax = viz.draw_windows(24, 11, 4).axes[0]
    kinds = [p.get_gid() for p in ax.patches]
    assert kinds.count("window") == conv_output_size(24, 11, 4) == 4
    assert kinds.count("tap") == 4 * 11
    assert kinds.count("pixel") == 24 and kinds.count("padding") == 0
    red = [p for p in ax.patches if p.get_gid() == "pixel" and p.get_facecolor()[0] > 0.7
           and p.get_facecolor()[1] < 0.3]
    assert len(red) == unused_pixels(24, 11, 4) == 1
    assert "4.25 -> 4 outputs" in ax.get_title()
    # no window is drawn in the red the legend keeps for "never read" (output 3 once was)
    ax = viz.draw_windows(48, 3, 2).axes[0]
    red = matplotlib.colors.to_rgb("tab:red")
    assert all(p.get_facecolor()[:3] != red for p in ax.patches if p.get_gid() != "pixel")
    # a stride longer than the window leaves pixels between windows unread: red too
    ax = viz.draw_windows(13, 1, 2).axes[0]
    red_at = [p.get_x() for p in ax.patches if p.get_gid() == "pixel"
              and p.get_facecolor()[:3] == matplotlib.colors.to_rgb("tab:red")]
    assert red_at == unread_pixels(13, 1, 2) == [1, 3, 5, 7, 9, 11]
    assert "6 pixel(s) never read" in ax.get_title()
    ax = viz.draw_windows(9, 3, 2, padding=1, dilation=2).axes[0]
    assert [p.get_gid() for p in ax.patches].count("padding") == 2
    # on an Axes of a figure the caller made: it draws there and returns that figure
    fig, axes = viz.subplots(1, 2)
    assert viz.draw_windows(13, 3, 2, ax=axes[1]) is fig and axes[1].patches and not axes[0].patches
    with pytest.raises(ValueError, match="does not fit"):
        viz.draw_windows(4, 5)


def test_subplots_squeezes_like_pyplot_and_lays_out_without_pyplot():
    fig, ax = viz.subplots(figsize=(4, 3))
    assert isinstance(ax, matplotlib.axes.Axes) and tuple(fig.get_size_inches()) == (4, 3)
    assert fig.get_layout_engine() is not None          # constrained: no tight_layout needed
    _, row = viz.subplots(1, 3)
    _, grid = viz.subplots(2, 2, sharey=True)
    _, one = viz.subplots(squeeze=False)
    assert row.shape == (3,) and grid.shape == (2, 2) and one.shape == (1, 1)
    assert grid[0, 0].get_shared_y_axes().joined(grid[0, 0], grid[1, 1])
    assert fig.canvas.manager is None                    # not registered with pyplot
    # pyplot's figure arguments reach the figure, its grid arguments the axes
    fig, axes = viz.subplots(1, 2, dpi=50, facecolor="0.9", width_ratios=[1, 3])
    assert fig.dpi == 50 and fig.get_facecolor()[:3] == (0.9, 0.9, 0.9)
    assert axes[1].get_position().width > 2 * axes[0].get_position().width


def test_one_plotting_idiom_no_pyplot_in_the_package_or_the_notebooks():
    """Figures come from `viz.subplots` (or a viz function) everywhere: pyplot's global
    figures would be shown twice beside a returned figure, and never closed in a loop."""
    import json
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    sources = {p.name: p.read_text() for p in (root / "alexnet_edu").glob("*.py")}
    for nb in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        sources.update({f"{nb.name} cell {i}": "".join(c["source"]) for i, c in enumerate(cells)
                        if c["cell_type"] == "code"})
    pyplot = re.compile(r"import matplotlib\.pyplot|from matplotlib\.pyplot import"
                        r"|from matplotlib import pyplot|import pylab|\bplt\.|%matplotlib|%pylab")
    offenders = [where for where, text in sources.items() if pyplot.search(text)]
    assert not offenders, f"pyplot used in {offenders}: draw with viz.subplots instead"
