"""Every figure of the package and the notebooks (the interactive viewer is in `widgets`).

One idiom: `fig, ax = viz.subplots(...)`, pyplot's `subplots` without pyplot's global state, so
nothing is shown twice in a notebook and tests can inspect a figure; every function returns it.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.offsetbox import AnnotationBbox, OffsetImage
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from ..shapes import conv_output_size, unread_pixels

__all__ = ["subplots", "draw_windows", "to_unit_range", "denormalize", "figure_to_png",
           "image_grid", "filter_grid", "feature_map_grid", "plot_confusion_matrix",
           "plot_history", "LiveHistoryPlot", "plot_heatmaps", "scatter_2d", "plot_retrieval",
           "plot_towers", "show_figures_inline", "layout_problems", "FIGURE_CHECK_VARIABLE",
           "plot_sanity_checks", "plot_sanity_maps"]

ArrayLike = torch.Tensor | np.ndarray


_AXES_ARGUMENTS = {"sharex", "sharey", "squeeze", "width_ratios", "height_ratios",
                   "subplot_kw", "gridspec_kw"}


def subplots(nrows: int = 1, ncols: int = 1, **kwargs: Any) -> tuple[Figure, Any]:
    """`matplotlib.pyplot.subplots` without pyplot: (figure, axes) in a constrained layout; the
    grid's arguments go to `Figure.subplots`, the others (figsize, dpi, ...) to `Figure`."""
    grid = {k: kwargs.pop(k) for k in list(kwargs) if k in _AXES_ARGUMENTS}
    fig = Figure(**{"layout": "constrained", **kwargs})
    if os.environ.get(FIGURE_CHECK_VARIABLE):
        fig.canvas.mpl_connect("draw_event", _check_after_draw)
    return fig, fig.subplots(nrows, ncols, **grid)


# --- the figure test: text that leaves the figure or lies on other text -----------------------

FIGURE_CHECK_VARIABLE = "ALEXNET_EDU_FIGURE_CHECK"
"""Set to 1 (warn) or a file path (append a line per problem): every figure `subplots` makes
then runs `layout_problems` each time it is drawn."""


def _texts(fig: Figure, ticks: bool) -> list[tuple[str, Any]]:
    """(description, Text) for every visible, non-empty text of the figure."""
    found = [("suptitle", fig._suptitle)] if fig._suptitle is not None else []
    found += [("figure text", t) for t in fig.texts if t is not fig._suptitle]
    for i, ax in enumerate(fig.axes):
        if not ax.get_visible():
            continue
        where = f"axes {i}"
        found += [(f"{where} title", t) for t in (ax.title, ax._left_title, ax._right_title)]
        found += [(f"{where} x label", ax.xaxis.label), (f"{where} y label", ax.yaxis.label)]
        found += [(f"{where} text", t) for t in ax.texts]
        legend = ax.get_legend()
        if legend is not None and legend.get_visible():
            found += [(f"{where} legend", t) for t in legend.get_texts()]
        if ticks:   # only the ticks inside the view: matplotlib keeps a few outside it
            for axis in (ax.xaxis, ax.yaxis):
                lo, hi = sorted(axis.get_view_interval())
                found += [(f"{where} tick label", t) for loc, t in
                          zip(axis.get_majorticklocs(), axis.get_majorticklabels())
                          if lo - 1e-9 * abs(hi - lo) <= loc <= hi + 1e-9 * abs(hi - lo)]
    return [(d, t) for d, t in found if t.get_visible() and t.get_text().strip()]


def layout_problems(fig: Figure, ticks: bool = False, renderer: Any = None,
                    tolerance: float = 1.0) -> list[str]:
    """What makes a drawn figure hard to read, as sentences: text that sticks out of the figure
    or overlaps other text (by more than `tolerance` px both ways; tick labels with `ticks`), or
    an annotation drawn over a bar or the legend. Draws the figure unless given a `renderer`."""
    if renderer is None:
        if not hasattr(fig.canvas, "get_renderer"):
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            FigureCanvasAgg(fig)
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
    page = fig.bbox.padded(tolerance)
    boxes = [(d, t.get_text(), t.get_window_extent(renderer)) for d, t in _texts(fig, ticks)]
    problems = [f"{d} {text!r} sticks out of the figure" for d, text, box in boxes
                if not page.contains(box.x0, box.y0) or not page.contains(box.x1, box.y1)]
    problems += [f"{d1} {t1!r} overlaps {d2} {t2!r}" for i, (d1, t1, b1) in enumerate(boxes)
                 for d2, t2, b2 in boxes[i + 1:] if _overlap(b1, b2, tolerance)]
    for i, ax in enumerate(fig.axes):
        legend = ax.get_legend()
        covers = [("a bar", p.get_window_extent(renderer)) for p in ax.patches
                  if isinstance(p, Rectangle) and p.get_visible() and p.get_fill()]
        if legend is not None and legend.get_visible():
            covers.append(("the legend", legend.get_window_extent(renderer)))
        for d, text, box in boxes:
            what = d == f"axes {i} text" and next(
                (w for w, other in covers if _overlap(box, other, tolerance)), None)
            if what:
                problems.append(f"{d} {text!r} is drawn over {what}")
    return problems


def _overlap(a: Any, b: Any, tolerance: float) -> bool:
    return (min(a.x1, b.x1) - max(a.x0, b.x0) > tolerance
            and min(a.y1, b.y1) - max(a.y0, b.y0) > tolerance)


def _check_after_draw(event: Any) -> None:
    """draw_event handler installed by `subplots` when FIGURE_CHECK_VARIABLE is set."""
    fig = event.canvas.figure
    reported = fig.__dict__.setdefault("_layout_reported", set())   # each problem once
    new = [p for p in layout_problems(fig, renderer=event.renderer) if p not in reported]
    reported.update(new)
    name = fig._suptitle.get_text() if fig._suptitle is not None else next(
        (ax.get_title() for ax in fig.axes if ax.get_title()), "untitled figure")
    lines = [f"figure {name!r}: {p}".replace("\n", " ") for p in new]
    target = os.environ.get(FIGURE_CHECK_VARIABLE, "")
    if target in ("1", "warn"):
        for line in lines:
            warnings.warn(line, stacklevel=2)
    elif lines:
        with open(target, "a", encoding="utf-8") as out:
            out.write("".join(line + "\n" for line in lines))


def draw_windows(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1,
                 ax: Axes | None = None) -> Figure:
    """Draw every position of a sliding window along one axis: the input row (padding hatched,
    unread pixels red), then one row per output with its taps darker."""
    out = conv_output_size(size, kernel, stride, padding, dilation)
    extent = dilation * (kernel - 1) + 1
    lost = set(unread_pixels(size, kernel, stride, padding, dilation))
    if ax is None:
        _, ax = subplots(figsize=(min(14, 2 + 0.3 * (size + 2 * padding)),
                                  min(8, 1.2 + 0.3 * (out + 1))))
    for x in range(-padding, size + padding):  # the input row, y = -1
        pad = x < 0 or x >= size
        colour = "0.85" if pad else ("tab:red" if x in lost else "white")
        ax.add_patch(Rectangle((x, -1), 1, 0.8, facecolor=colour, edgecolor="0.4",
                               hatch="//" if pad else None, gid="padding" if pad else "pixel"))
    # tab10 without its red (index 3): red means "never read" in the input row
    colours = [c for i, c in enumerate(matplotlib.colormaps["tab10"].colors) if i != 3]
    for j in range(out):  # output j reads padded positions j*stride ... j*stride + extent - 1
        start = j * stride - padding
        c = colours[j % len(colours)]
        ax.add_patch(Rectangle((start, j), extent, 0.8, facecolor=c, alpha=0.25, edgecolor=c,
                               gid="window"))
        for t in range(kernel):
            ax.add_patch(Rectangle((start + t * dilation + 0.15, j + 0.15), 0.7, 0.5,
                                   facecolor=c, alpha=0.8, gid="tap"))
    ax.set_xlim(-padding - 0.5, size + padding + 0.5)
    ax.set_ylim(out + 0.2, -1.4)
    rows = list(range(0, out, max(1, out // 12)))  # at most ~12 labelled rows
    ax.set_yticks([-0.6] + [j + 0.4 for j in rows], ["input"] + [str(j) for j in rows])
    ax.set(xlabel="pixel position (hatched: padding, red: never read)", ylabel="output index")
    exact = (size + 2 * padding - extent) / stride + 1
    ax.set_title(f"input {size}, kernel {kernel}, stride {stride}, padding {padding}"
                 + (f", dilation {dilation}" if dilation != 1 else "")
                 + f"\n({size} + 2*{padding} - {extent}) / {stride} + 1 = {exact:g}"
                 + f" -> {out} outputs" + (f", {len(lost)} pixel(s) never read" if lost else ""))
    return ax.figure


def to_unit_range(x: ArrayLike, dims: Sequence[int] | None = None) -> torch.Tensor:
    """Min-max scale `x` to [0, 1] over `dims` (all when None); constant slices (dead ReLU maps)
    and NaN/inf become 0."""
    t = torch.as_tensor(x).detach().to("cpu", torch.float32).nan_to_num(0.0, 0.0, 0.0)  # NaN, ±inf
    dims = tuple(range(t.dim())) if dims is None else tuple(dims)
    if t.numel() == 0 or not dims:
        return torch.zeros_like(t)
    lo = t.amin(dim=dims, keepdim=True)
    span = t.amax(dim=dims, keepdim=True) - lo
    # where span == 0 the numerator is 0 too; dividing by 1 there gives 0 instead of 0/0
    return ((t - lo) / torch.where(span > 0, span, torch.ones_like(span))).clamp_(0.0, 1.0)


def denormalize(images: torch.Tensor, mean: Sequence[float] | None = None,
                std: Sequence[float] | None = None) -> torch.Tensor:
    """Undo ``(x - mean) / std`` and clip to [0, 1]; uint8 / 255; no mean/std: min-max per image."""
    t = torch.as_tensor(images).detach().cpu()
    if t.dtype == torch.uint8:
        return t.float() / 255.0
    t = t.float()
    if mean is None or std is None:
        return to_unit_range(t, dims=tuple(range(1, t.dim())) if t.dim() == 4 else None)
    shape = (1, -1, 1, 1) if t.dim() == 4 else (-1, 1, 1)
    m, s = (torch.as_tensor(v, dtype=torch.float32).view(shape) for v in (mean, std))
    return torch.nan_to_num(t * s + m).clamp(0.0, 1.0)


def _hwc(image: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] -> what imshow wants: (H, W, 3) or (H, W) for one channel."""
    if image.dim() == 3:
        image = image[0] if image.shape[0] == 1 else image[:3].permute(1, 2, 0)
    return image.numpy()


def _pictures(nrows: int, ncols: int, figsize: tuple[float, float]) -> tuple[Figure, np.ndarray]:
    """A 2-D array of axes for images: no ticks (pixel numbers would only crowd them)."""
    return subplots(nrows, ncols, figsize=figsize, squeeze=False,
                    subplot_kw={"xticks": [], "yticks": []})


def _grid(n: int, ncols: int | None, cell: float, max_cols: int = 8) -> tuple[Figure, np.ndarray]:
    """A figure with at least `n` axes in a 2-D array (always 2-D, even for one image)."""
    if n < 1:
        raise ValueError("nothing to plot: got 0 images/maps")
    ncols = max(1, min(n, ncols or max_cols))
    nrows = math.ceil(n / ncols)
    fig, axes = _pictures(nrows, ncols, (cell * ncols + 0.4, cell * nrows + 0.6))
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes


def figure_to_png(fig: Figure, dpi: int = 80) -> bytes:
    """Render a figure to PNG bytes (what an ipywidgets Image shows)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def show_figures_inline() -> None:
    """In IPython, show a returned Figure as a PNG: figures built without pyplot have no display
    until pyplot's inline backend is loaded."""
    from IPython import get_ipython  # ipywidgets, a dependency, brings IPython
    shell = get_ipython()
    if shell is None or not hasattr(shell, "display_formatter"):
        return
    png = shell.display_formatter.formatters["image/png"]
    if Figure not in png:   # else the inline backend already shows figures
        png.for_type(Figure, lambda fig: figure_to_png(fig, dpi=100))


def image_grid(images: torch.Tensor, titles: Sequence[str] | None = None,
               mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
               ncols: int | None = None, title: str = "Images") -> Figure:
    """Show a batch (N, C, H, W) or one image (C, H, W), uint8 or normalized (`denormalize`)."""
    t = torch.as_tensor(images)
    t = t[None] if t.dim() == 3 else t
    if t.dim() != 4:
        raise ValueError(f"image_grid expects (N, C, H, W) or (C, H, W), got {tuple(t.shape)}")
    shown = denormalize(t, mean, std)
    fig, axes = _grid(len(shown), ncols, cell=1.6)
    for i, ax in enumerate(axes.flat[:len(shown)]):
        ax.imshow(_hwc(shown[i]), cmap="gray", vmin=0, vmax=1)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=8)
    fig.suptitle(f"{title} ({len(shown)} × {t.shape[-2]}×{t.shape[-1]} px)")
    return fig


def filter_grid(weight: torch.Tensor, ncols: int = 12, title: str = "conv1 filters") -> Figure:
    """Show conv kernels (out, in, kH, kW) like the paper's Figure 3, each scaled on its own (3
    input channels in colour, else the first in grey)."""
    w = torch.as_tensor(weight).detach().cpu().float()
    if w.dim() != 4:
        raise ValueError(f"filter_grid wants conv weights (out, in, kH, kW), got {tuple(w.shape)}")
    if w.shape[1] not in (1, 3):
        w = w[:, :1]
    shown = to_unit_range(w, dims=(1, 2, 3))
    fig, axes = _grid(len(shown), ncols, cell=0.8, max_cols=ncols)
    for i, ax in enumerate(axes.flat[:len(shown)]):
        ax.imshow(_hwc(shown[i]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    kind = "colour" if w.shape[1] == 3 else "grey"
    # two lines: a grid of 8 columns is too narrow for the whole caption on one
    fig.suptitle(f"{title}\n{len(w)} kernels of {w.shape[-2]}×{w.shape[-1]} px ({kind}, "
                 f"each scaled to its own min–max)")
    return fig


def feature_map_grid(maps: torch.Tensor, channels: Sequence[int] | None = None,
                     ncols: int = 8, title: str = "Feature maps", cmap: str = "viridis",
                     shared: bool = False) -> Figure:
    """Show feature maps (C, H, W) or one (H, W), `channels` (default the first 32), each on its
    own scale or, `shared`, one; NaN means "no value" and is drawn grey."""
    m = torch.as_tensor(maps).detach().cpu().float()
    if m.dim() == 4 and m.shape[0] != 1:
        raise ValueError(f"feature_map_grid shows one image's maps (C, H, W); got a batch "
                         f"of {m.shape[0]}: pass maps[i]")
    if m.dim() not in (2, 3, 4):
        raise ValueError(f"feature_map_grid expects (C, H, W) maps, got {tuple(m.shape)}")
    m = m[0] if m.dim() == 4 else m[None] if m.dim() == 2 else m   # -> (C, H, W)
    chosen = list(channels) if channels is not None else list(range(min(32, m.shape[0])))
    picked = m[chosen]
    missing = ~torch.isfinite(picked)
    if shared:
        finite = picked[~missing]
        low, high = (finite.min().item(), finite.max().item()) if finite.numel() else (0.0, 1.0)
        shown, label = picked, "activation (one scale for all maps)"
    else:   # per map, over its finite values: a missing one takes the map's min (and is masked)
        lo = picked.masked_fill(missing, float("inf")).amin((-2, -1), keepdim=True)
        shown = to_unit_range(torch.where(missing, lo, picked), dims=(-2, -1))
        low, high, label = 0.0, 1.0, "0 = map's min, 1 = its max"
    colours = matplotlib.colormaps[cmap].with_extremes(bad="0.85")
    fig, axes = _grid(len(chosen), ncols, cell=1.2, max_cols=ncols)
    for ax, c, img, gaps in zip(axes.flat, chosen, shown, missing):
        im = ax.imshow(np.ma.masked_array(img.numpy(), gaps.numpy()), cmap=colours, vmin=low,
                       vmax=high, interpolation="nearest")
        values = m[c][torch.isfinite(m[c])]
        dead = values.numel() == 0 or values.abs().max() == 0
        ax.set_title(f"ch {c}" + (" (dead)" if dead else f" max {values.max().item():.2g}"),
                     fontsize=7)
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.9, aspect=30).set_label(label, fontsize=7)
    scale = "one shared scale" if shared else "each scaled to its own min–max"
    fig.suptitle(f"{title}: {len(chosen)} of {m.shape[0]} channels, {m.shape[1]}×{m.shape[2]} "
                 f"({scale}" + ("; grey: no value)" if missing.any() else ")"))
    return fig


def plot_confusion_matrix(matrix: ArrayLike, classes: Sequence[str],
                          title: str = "Confusion matrix") -> Figure:
    """Rows = true class, columns = predicted, each row as % of that class's images."""
    cm = torch.as_tensor(matrix).detach().cpu().double()
    if cm.dim() != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(classes):
        raise ValueError(f"expected a {len(classes)}×{len(classes)} matrix for {len(classes)} "
                         f"classes, got shape {tuple(cm.shape)}")
    shown = 100 * cm / cm.sum(1, keepdim=True).clamp_min(1)
    k = len(classes)
    side = max(4.0, 0.45 * k + 2)
    fig, ax = subplots(figsize=(side + 1, side))
    im = ax.imshow(shown.numpy(), cmap="Blues", vmin=0, vmax=100)
    fig.colorbar(im, ax=ax, label="% of the true class")
    ax.set_xticks(range(k), classes, rotation=45, ha="right")
    ax.set_yticks(range(k), classes)
    ax.set(xlabel="predicted class", ylabel="true class")
    if k <= 20:
        top = shown.max().item() or 1
        for (i, j), v in np.ndenumerate(shown.numpy()):
            ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7,
                    color="white" if v > 0.6 * top else "black")
    total = int(cm.sum().item())
    acc = 100 * cm.diagonal().sum().item() / max(total, 1)
    ax.set_title(f"{title} ({total} images, accuracy {acc:.1f}%)")
    return fig


def _history_rows(history: Any) -> list[Mapping[str, Any]]:
    rows = list(history)
    if rows and not isinstance(rows[0], Mapping):
        raise TypeError("history must be a list of per-epoch dicts (epoch, train_loss, ...)")
    return rows


def plot_towers(one: Sequence, two: Sequence, layers: Sequence[str] = (
        "conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")) -> Figure:
    """Parameters and multiply-adds per layer of one tower (groups=1) against the paper's two
    (groups=2, §3.2), from two `shapes.trace` tables."""
    fig, axes = subplots(1, 2, figsize=(12, 3.8))
    x = np.arange(len(layers))
    for ax, (key, label, unit) in zip(axes, (("parameters", "Parameters", "millions"),
                                             ("mult_adds", "Multiply-adds", "millions per image"))):
        a, b = ([getattr(table.row(n), key) / 1e6 for n in layers] for table in (one, two))
        ax.bar(x - 0.2, a, width=0.4, label="groups=1 (one tower)")
        ax.bar(x + 0.2, b, width=0.4, label="groups=2 (two towers, as in the paper)")
        for i, (p, q) in enumerate(zip(a, b)):
            if p > q:   # above the pair, not on top of the taller neighbour bar
                ax.text(x[i], p * 1.25, f"-{p - q:.2f} M", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x, layers)
        ax.set_yscale("log")
        ax.set_ylim(top=max(a + b) * 12)   # room for the labels and the legend above the bars
        ax.set(xlabel="layer", ylabel=f"{label.lower()} ({unit}, log scale)")
        ax.set_title(f"{label} per layer, one tower vs two (labels: saved by groups=2)", fontsize=9)
        ax.legend(fontsize=8, loc="upper left")
    return fig


def plot_history(history: Sequence[Mapping[str, Any]], title: str = "Training curves",
                 fig: Figure | None = None) -> Figure:
    """Loss, accuracy (%) and learning rate per epoch of `fit`'s history (missing keys: skipped)."""
    rows = _history_rows(history)
    if fig is None:
        fig, axes = subplots(1, 3, figsize=(12, 3.4))
    else:   # redraw in place (`LiveHistoryPlot`)
        fig.clear()
        axes = fig.subplots(1, 3)
    epochs = [r.get("epoch", i + 1) for i, r in enumerate(rows)]

    def series(key: str) -> list[float] | None:
        values = [r.get(key) for r in rows]
        return None if all(v is None for v in values) else [
            math.nan if v is None else float(v) for v in values]

    for ax, key, label in ((axes[0], "loss", "cross-entropy loss"),
                           (axes[1], "acc", "top-1 accuracy (%)")):
        for split, style in (("train", "-o"), ("val", "-s")):
            ys = series(f"{split}_{key}")
            if ys is not None:   # accuracy as a fraction -> %
                factor = 100.0 if key == "acc" and max(
                    (y for y in ys if y == y), default=2.0) <= 1.0 else 1.0
                ax.plot(epochs, [y * factor for y in ys], style, ms=3, label=split)
        if ax.lines:
            ax.legend()
        ax.set(title=("loss", "accuracy")[key == "acc"], ylabel=label)
    lr = series("lr")
    if lr is not None:
        axes[2].plot(epochs, lr, "-o", ms=3, color="tab:green")
        if all(v > 0 for v in lr if v == v):
            axes[2].set_yscale("log")
    axes[2].set(title="learning rate (÷10 on plateau, §5)", ylabel="learning rate")
    for ax in axes:   # whole epochs only: no ticks at 1.2, 1.4, ...
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    speed = series("images_per_s")
    last = f", last epoch {speed[-1]:.0f} images/s" if speed and not math.isnan(speed[-1]) else ""
    fig.suptitle(f"{title}: {len(rows)} epoch(s){last}")
    return fig


class LiveHistoryPlot:
    """Redraw `plot_history` in place after every epoch, given the history or one epoch's dict:
    ``fit(..., on_epoch_end=LiveHistoryPlot())``."""

    def __init__(self, title: str = "Training curves (live)"):
        self.title = title
        self.history: list[Mapping[str, Any]] = []
        self.figure: Figure | None = None
        self._handle = None

    def __call__(self, record: Any, *args: Any, **kwargs: Any) -> None:
        self.history = ([*self.history, dict(record)] if isinstance(record, Mapping)
                        else [dict(r) for r in _history_rows(record)])
        self.figure = plot_history(self.history, self.title, fig=self.figure)
        from IPython import get_ipython
        from IPython.display import display
        if get_ipython() is None:   # plain Python: nothing to draw on
            return
        if self._handle is None:
            self._handle = display(self.figure, display_id=True)
        else:
            self._handle.update(self.figure)


def plot_heatmaps(images: torch.Tensor, maps: torch.Tensor, titles: Sequence[str] | None = None,
                  mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                  title: str = "Attribution") -> Figure:
    """Each image (top row) and its heat map (N, h, w) over it (bottom row): unsigned maps scaled
    per image (`inferno`), signed ones (occlusion) by their largest |value| (`RdBu_r`, 0 white)."""
    imgs = torch.as_tensor(images)
    imgs = denormalize(imgs if imgs.dim() == 4 else imgs.unsqueeze(0), mean, std)
    m = torch.as_tensor(maps).detach().cpu().float()
    m = m[None] if m.dim() == 2 else m
    if len(m) != len(imgs):
        raise ValueError(f"got {len(imgs)} images but {len(m)} maps")
    m = torch.nn.functional.interpolate(m.unsqueeze(1), size=imgs.shape[-2:], mode="bilinear",
                                        align_corners=False)[:, 0].nan_to_num(0.0, 0.0, 0.0)
    if (m < 0).any():
        peak = m.abs().amax(dim=(-2, -1), keepdim=True)
        m = m / torch.where(peak > 0, peak, torch.ones_like(peak))
        cmap, low, label = "RdBu_r", -1.0, "value / largest |value| (per image)"
    else:
        m = to_unit_range(m, dims=(-2, -1))
        cmap, low, label = "inferno", 0.0, "0 = min, 1 = max (per image)"
    n = len(imgs)
    fig, axes = _pictures(2, n, (2.0 * n + 1.2, 4.6))
    for i in range(n):
        axes[0, i].imshow(_hwc(imgs[i]), cmap="gray", vmin=0, vmax=1)
        axes[1, i].imshow(_hwc(imgs[i]), cmap="gray", vmin=0, vmax=1)
        im = axes[1, i].imshow(m[i].numpy(), cmap=cmap, alpha=0.6, vmin=low, vmax=1)
        if titles is not None:
            axes[0, i].set_title(str(titles[i]), fontsize=8)
    axes[0, 0].set_ylabel("image")
    axes[1, 0].set_ylabel("map")
    fig.colorbar(im, ax=axes[1, :].tolist()).set_label(label, fontsize=7)
    fig.suptitle(title)
    return fig


def scatter_2d(points: ArrayLike, labels: ArrayLike, classes: Sequence[str],
               images: torch.Tensor | None = None, title: str = "Embedding",
               axis_names: tuple[str, str] = ("component 1", "component 2")) -> Figure:
    """2-D points (N, 2) coloured by class; with `images`, about 24 also show a thumbnail."""
    pts = np.asarray(torch.as_tensor(points).detach().cpu().float())
    lab = np.asarray(torch.as_tensor(labels).cpu())
    fig, ax = subplots(figsize=(9, 7))
    colours = matplotlib.colormaps["tab10" if len(classes) <= 10 else "tab20"]
    for c, name in enumerate(classes):
        if (sel := lab == c).any():
            ax.scatter(pts[sel, 0], pts[sel, 1], s=14, label=name, color=colours(c % 20))
    if images is not None:
        shown = denormalize(images)
        for i in range(0, len(pts), max(1, len(pts) // 24)):
            box = OffsetImage(_hwc(shown[i]), zoom=36 / shown.shape[-1], cmap="gray")   # 36 px
            edge = colours(int(lab[i]) % 20)   # framed in its class colour
            ax.add_artist(AnnotationBbox(box, pts[i], frameon=True, pad=0.15,
                                         bboxprops=dict(edgecolor=edge, linewidth=1.5)))
    ax.set(xlabel=axis_names[0], ylabel=axis_names[1], title=f"{title} ({len(pts)} images)")
    ax.legend(fontsize=7, markerscale=1.5, loc="best")
    return fig


def plot_retrieval(images: torch.Tensor, queries: Sequence[int],
                   neighbours: Mapping[str, torch.Tensor], labels: ArrayLike | None = None,
                   classes: Sequence[str] | None = None,
                   title: str = "Nearest neighbours") -> Figure:
    """One row per query: the image, then its k neighbours in each space (``{"fc7": (Q, k)
    indices into images}``), as the paper's Figure 4; another class gets a red title."""
    shown = denormalize(torch.as_tensor(images))
    spaces = list(neighbours)
    k = int(next(iter(neighbours.values())).shape[1])
    cols = 1 + len(spaces) * k
    fig, axes = _pictures(len(queries), cols, (1.25 * cols + 0.6, 1.45 * len(queries) + 0.7))

    def name(i: int) -> str:
        c = None if labels is None else int(labels[i])
        return f"#{i}" if c is None else str(c) if classes is None else classes[c]

    for r, q in enumerate(queries):
        entries = [("query", int(q))] + [(s, int(j)) for s in spaces
                                         for j in neighbours[s][r].tolist()]
        for col, (space, i) in enumerate(entries):
            ax = axes[r, col]
            ax.imshow(_hwc(shown[i]), cmap="gray", vmin=0, vmax=1)
            wrong = labels is not None and space != "query" and int(labels[i]) != int(labels[q])
            ax.set_title(name(i), fontsize=7, color="red" if wrong else "black")
            if r == 0 and (col == 0 or (col - 1) % k == 0):
                ax.set_xlabel("query" if col == 0 else f"{space} neighbours →", fontsize=8)
                ax.xaxis.set_label_position("top")
    fig.suptitle(f"{title}: columns = query, then {k} nearest in "
                 + " and in ".join(spaces) + " (Euclidean distance; red = other class)")
    return fig


def plot_sanity_checks(result: Mapping[str, Any],
                       title: str = "Cascading randomization (Adebayo et al. 2018)") -> Figure:
    """`interpret.sanity_check`'s Spearman (left) and SSIM (right) scores per randomization
    step: a method that explains the model falls towards 0."""
    stages = list(result["stages"])
    fig, axes = subplots(1, 2, figsize=(11, 3.8), sharey=True)
    x = np.arange(len(stages))
    for ax, key, label in ((axes[0], "spearman", "Spearman rank correlation"),
                           (axes[1], "ssim", "SSIM")):
        for i, (name, scores) in enumerate(result[key].items()):
            ax.plot(x, scores, "-o", ms=4, label=name, color=matplotlib.colormaps["tab10"](i))
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_xticks(x, ["trained"] + [f"→{s}" for s in stages[1:]], rotation=45, ha="right")
        ax.set(xlabel="randomized from fc8 down to", ylabel=label, ylim=(-0.3, 1.05))
        ax.set_title(f"{label} with the trained model's map", fontsize=9)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8, loc="lower left")
    fig.suptitle(f"{title}: mean over {len(next(iter(result['maps'].values()))[0])} images")
    return fig


def plot_sanity_maps(image: torch.Tensor, result: Mapping[str, Any], index: int = 0,
                     mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                     stages: Sequence[str] | None = None) -> Figure:
    """One image's maps from `interpret.sanity_check`: a row per method, a column per step."""
    columns = [result["stages"].index(s) for s in stages or result["stages"]]
    methods = list(result["maps"])
    fig, axes = _pictures(len(methods), len(columns) + 1,
                          (1.3 * (len(columns) + 1) + 0.8, 1.35 * len(methods) + 0.8))
    picture = _hwc(denormalize(torch.as_tensor(image)[None], mean, std)[0])
    for r, name in enumerate(methods):
        axes[r, 0].imshow(picture, cmap="gray", vmin=0, vmax=1)
        axes[r, 0].set_ylabel(name, fontsize=8)
        for c, k in enumerate(columns, start=1):
            m = to_unit_range(result["maps"][name][k][index], dims=(-2, -1))
            axes[r, c].imshow(m.numpy(), cmap="inferno", vmin=0, vmax=1)
            if r == 0:
                axes[r, c].set_title("trained" if k == 0 else f"→{result['stages'][k]}", fontsize=8)
    axes[0, 0].set_title("image", fontsize=8)
    fig.suptitle("Maps as the layers are randomized (each map scaled to its own min–max)",
                 fontsize=10)
    return fig
