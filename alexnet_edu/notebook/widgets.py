"""The interactive feature-map viewer (ipywidgets): pick an image, a layer and a channel."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure

from ..hooks import activations, eval_mode
from .viz import _hwc, denormalize, figure_to_png, to_unit_range

__all__ = ["FeatureMapViewer"]


class FeatureMapViewer:
    """Pick an image, a layer and a channel; see the input, the map and the image's most active
    channels (`figure()`): a widget in JupyterLab and Colab, a PNG elsewhere. Controls
    `image_picker`, `layer`, `channel`, `top_channels` and `image` have the CSS class
    alexnet-edu-<name, - for _> (for browser tests); `widget` holds them all."""

    def __init__(self, model: torch.nn.Module, images: torch.Tensor,
                 titles: Sequence[str] | None = None, layers: Sequence[str] | None = None,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 top_k: int = 8, layer: str | None = None):
        if images.dim() == 3:
            images = images.unsqueeze(0)
        if images.dim() != 4 or len(images) == 0:
            raise ValueError(f"FeatureMapViewer expects images (N, C, H, W), got "
                             f"{tuple(images.shape)}")
        self.model, self.images, self.mean, self.std = model, images, mean, std
        self.titles = list(titles or (f"image {i}" for i in range(len(images))))
        if layers is None:   # only spatial layers have maps to show (conv1 ... pool5)
            every = model.layer_names()
            layers = every[:every.index("pool5") + 1]
        self.top_k = top_k
        self._cache: dict[int, dict[str, torch.Tensor]] = {}

        self.image_picker = widgets.Dropdown(options=[(t, i) for i, t in enumerate(self.titles)],
                                             value=0, description="Image")
        self.layer = widgets.Dropdown(options=list(layers), value=layer or layers[0],
                                      description="Layer")
        self.channel = widgets.IntSlider(value=0, min=0, max=1, description="Channel",
                                         continuous_update=False)
        self.top_channels = widgets.Dropdown(options=[], description="Top channels",
                                             style={"description_width": "initial"})
        self.image = widgets.Image(format="png")
        for name in ("image_picker", "layer", "channel", "top_channels", "image"):
            getattr(self, name).add_class("alexnet-edu-" + name.replace("_", "-"))
        self.widget = widgets.VBox([
            widgets.HBox([self.image_picker, self.layer]),
            widgets.HBox([self.channel, self.top_channels]), self.image])
        self.widget.add_class("alexnet-edu-viewer")

        self._busy = False
        self.image_picker.observe(lambda _: self._on_source_change(), names="value")
        # A new layer opens on its most active channel: channel 0 is often dead or dull.
        self.layer.observe(lambda _: self._on_source_change(jump=True), names="value")
        self.channel.observe(self._on_channel, names="value")
        self.top_channels.observe(self._on_top_pick, names="value")
        self._on_source_change(jump=True)

    # --- data ---------------------------------------------------------------------------------
    def maps(self) -> torch.Tensor:
        """The (C, H, W) maps of the chosen image at the chosen layer."""
        index = self.image_picker.value
        if index not in self._cache:
            x = self.images[index:index + 1].to(next(self.model.parameters()).device)
            with eval_mode(self.model):
                maps = activations(self.model, x, list(self.layer.options))
            self._cache[index] = {k: v[0].cpu() for k, v in maps.items()}
        return self._cache[index][self.layer.value]

    def top(self) -> list[int]:
        """The chosen layer's `top_k` channels with the largest mean activation for this image."""
        means = self.maps().flatten(1).mean(1)
        return means.argsort(descending=True, stable=True)[:self.top_k].tolist()

    # --- events -------------------------------------------------------------------------------
    def _on_source_change(self, jump: bool = False) -> None:
        m = self.maps()
        self._busy = True  # one render for the whole update, not one per control change
        try:
            self.channel.max = m.shape[0] - 1
            means = m.flatten(1).mean(1)
            top = self.top()
            self.top_channels.options = [(f"{c} (mean {means[c]:.3g})", c) for c in top]
            if jump:
                self.channel.value = top[0]
            self._show_channel_in_menu()
        finally:
            self._busy = False
        self.image.value = figure_to_png(self.figure())

    def _show_channel_in_menu(self) -> None:
        # The menu shows the current channel when it is one of the top ones, else stays blank.
        in_top = self.channel.value in [value for _, value in self.top_channels.options]
        self.top_channels.value = self.channel.value if in_top else None

    def _on_channel(self, _change: Any) -> None:
        if not self._busy:   # (the menu then picks this channel: _on_top_pick changes nothing)
            self._show_channel_in_menu()
            self.image.value = figure_to_png(self.figure())

    def _on_top_pick(self, change: Any) -> None:
        if change["new"] is not None and not self._busy:
            self.channel.value = change["new"]

    # --- drawing ------------------------------------------------------------------------------
    def figure(self) -> Figure:
        """The current view: the input, the chosen channel and the image's top channels."""
        index, layer, ch = self.image_picker.value, self.layer.value, self.channel.value
        m = self.maps()
        # A fixed layout: constrained layout would double the time of every redraw.
        fig = Figure(figsize=(10, 5.6))
        cols = max(self.top_k, 4)
        grid = fig.add_gridspec(2, cols, left=0.06, right=0.97, top=0.88, bottom=0.02,
                                hspace=0.35, wspace=0.25, height_ratios=[2.4, 1])
        ax_img = fig.add_subplot(grid[0, :cols // 2])
        ax_img.imshow(_hwc(denormalize(self.images[index], self.mean, self.std)),
                      cmap="gray", vmin=0, vmax=1)
        h, w = self.images.shape[-2:]
        ax_img.set(title=f"input: {self.titles[index]}", xlabel=f"x (px, of {w})",
                   ylabel=f"y (px, of {h})")
        ax_map = fig.add_subplot(grid[0, cols // 2:])
        im = ax_map.imshow(m[ch].numpy(), cmap="viridis", interpolation="nearest")
        fig.colorbar(im, ax=ax_map, label="activation")
        dead = " — dead (all zero)" if m[ch].abs().max() == 0 else ""
        # units are whole: ticks at 0, 1, 2 on a 3 x 3 map, never at -0.5, 0.5, ...
        ax_map.set(title=f"{layer}, channel {ch} of {m.shape[0]}{dead}",
                   xlabel=f"x (unit, of {m.shape[2]})", ylabel=f"y (unit, of {m.shape[1]})",
                   xticks=range(0, m.shape[2], -(-m.shape[2] // 8)),
                   yticks=range(0, m.shape[1], -(-m.shape[1] // 8)))
        tops = self.top()
        shown = to_unit_range(m[tops], dims=(-2, -1))
        for j, (c, img) in enumerate(zip(tops, shown)):
            ax = fig.add_subplot(grid[1, j])
            ax.imshow(img.numpy(), cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(f"ch {c}", fontsize=8)
            ax.set(xticks=[], yticks=[])
        fig.suptitle(f"{layer} feature maps ({m.shape[1]}×{m.shape[2]}); bottom: the {len(tops)} "
                     "most active channels (mean activation), each scaled to its own min–max")
        return fig

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        # The widget where a widget manager runs (JupyterLab, Colab); the PNG everywhere else
        # (CI, GitHub, nbconvert): frontends render the richest type they support. The widget's
        # part is what ipywidgets 8 writes, spelled out: ipywidgets 7 (Colab's) has no method.
        view = {"version_major": 2, "version_minor": 0, "model_id": self.widget.model_id}
        return {"text/plain": repr(self), "application/vnd.jupyter.widget-view+json": view,
                "image/png": base64.b64encode(self.image.value).decode("ascii")}

    def __repr__(self) -> str:
        return (f"FeatureMapViewer({len(self.images)} images, layer={self.layer.value!r}, "
                f"channel={self.channel.value})")
