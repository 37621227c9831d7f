"""End-to-end: the feature-map notebook's widgets work in a real JupyterLab in a real browser.

nbval runs notebooks without a front end, so a viewer that is blank in the browser (a missing
lab extension, a widget-version mismatch, a widget that never updates) passes there. Here we open
the notebook in JupyterLab in headless Chromium, run all cells from the Run menu, and check that
the viewer's controls are on the page and that choosing another layer changes the picture.

    pytest tests/e2e -rA      # prints where the screenshots went
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import nbformat
import pytest

from .conftest import SCREENSHOTS, Lab, copy_notebook

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
except ImportError:  # without Playwright the browser_context fixture skips, saying why
    PlaywrightTimeout = TimeoutError

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
FEATURE_MAPS = ROOT / "notebooks" / "07_filters_and_feature_maps.ipynb"
# CSS classes the viewer puts on its controls (ipywidgets' add_class).
LAYER_CONTROL = ".alexnet-edu-layer select"
IMAGE = ".alexnet-edu-image img, img.alexnet-edu-image"
RUN_TIMEOUT_S = 600  # a guard against hangs, not a speed test: smoke-mode 07 takes 10-60 s

TINY_VIEWER = '''\
# A layer picker and an image, built like the feature-map viewer (ipywidgets only).
import io

import ipywidgets as widgets
import numpy as np
from PIL import Image


def picture(layer: str) -> bytes:
    rng = np.random.default_rng(len(layer) + sum(map(ord, layer)))
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (48, 96), dtype=np.uint8)).save(buffer, "png")
    return buffer.getvalue()


layer = widgets.Dropdown(options=["conv1", "conv2", "conv5"], description="Layer")
layer.add_class("alexnet-edu-layer")
image = widgets.Image(value=picture("conv1"), format="png", width=384)
image.add_class("alexnet-edu-image")
layer.observe(lambda change: setattr(image, "value", picture(change["new"])), "value")
widgets.VBox([layer, image])
'''


def _tiny_notebook(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Widget smoke test"),
                nbformat.v4.new_code_cell(TINY_VIEWER)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    path = folder / "tiny_viewer.ipynb"
    nbformat.write(nb, path)
    return path


def _open_and_run_all(page, lab: Lab, name: str) -> None:
    """Open a notebook, wait for its kernel, Run > Run All Cells, wait until every cell ran."""
    page.goto(lab.notebook_url(name))
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
    # The page's kernel indicator says "idle" before any kernel exists; ask the server instead.
    lab.wait_for_kernel(name, "idle", timeout=90)
    # Focus the notebook (Run All Cells acts on the current notebook), then Run > Run All Cells;
    # once more if no cell started (a click that lands while the page is still settling).
    started = """() => [...document.querySelectorAll(
        '.jp-NotebookPanel .jp-CodeCell .jp-InputArea-prompt')]
        .some(p => /\\[(\\*|\\d+)\\]/.test(p.textContent))"""
    for attempt in range(2):
        page.locator(".jp-NotebookPanel .jp-Cell").first.click()
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        try:
            page.wait_for_function(started, timeout=15_000, polling=250)
            break
        except PlaywrightTimeout:
            if attempt:
                raise
    # Done when every code cell shows an execution count ([7]) and none is waiting ([*]).
    page.wait_for_function(
        """() => {
            const prompts = [...document.querySelectorAll(
                '.jp-NotebookPanel .jp-CodeCell .jp-InputArea-prompt')];
            return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
        }""", timeout=RUN_TIMEOUT_S * 1000, polling=500)
    lab.wait_for_kernel(name, "idle", timeout=30)
    errors = page.locator(".jp-OutputArea-output", has_text="Traceback (most recent call last)")
    if errors.count():
        pytest.fail(f"{name}: a cell raised in JupyterLab:\n{errors.first.inner_text()[-2000:]}")
    broken = page.locator(".jp-OutputArea-output", has_text="Error displaying widget")
    assert not broken.count(), f"{name}: {broken.first.inner_text()}"


def _change_layer_changes_image(page) -> None:
    control = page.locator(LAYER_CONTROL).first
    image = page.locator(IMAGE).first
    control.wait_for(state="visible", timeout=30_000)
    image.wait_for(state="visible", timeout=30_000)
    image.scroll_into_view_if_needed()
    before_src, before_pixels = image.get_attribute("src"), image.screenshot()
    options = control.locator("option").all_inner_texts()
    assert len(options) >= 2, f"the layer control offers {options}; need two layers to compare"
    current = control.input_value()
    values = control.locator("option").evaluate_all("os => os.map(o => o.value)")
    target = next(v for v in values if v != current)
    control.select_option(target)
    deadline = time.monotonic() + 30
    while image.get_attribute("src") == before_src and time.monotonic() < deadline:
        time.sleep(0.25)
    assert image.get_attribute("src") != before_src, (
        "choosing another layer did not change the image (its src stayed the same for 30 s)")
    deadline = time.monotonic() + 10    # the new image may take a moment to decode and paint
    while image.screenshot() == before_pixels and time.monotonic() < deadline:
        time.sleep(0.25)
    assert image.screenshot() != before_pixels, (
        "the image's src changed but its pixels did not (for 10 s)")


def _screenshot(page, folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    SCREENSHOTS.append(path)
    print(f"screenshot: {path}")
    return path


@pytest.mark.parametrize("which", ["tiny", "feature_maps"])
def test_viewer_renders_and_follows_the_layer_control(which, browser_context, lab,
                                                      artifacts_dir, tmp_path) -> None:
    if which == "tiny":  # the harness itself: any ipywidgets viewer renders and updates
        name = copy_notebook(lab, _tiny_notebook(tmp_path))
    else:
        if not FEATURE_MAPS.exists():
            pytest.skip(f"{FEATURE_MAPS.name} is not in notebooks/ yet")
        name = copy_notebook(lab, FEATURE_MAPS)
    page = browser_context.new_page()
    try:
        _open_and_run_all(page, lab, name)
        _change_layer_changes_image(page)
    finally:
        _screenshot(page, artifacts_dir, Path(name).stem)
        page.close()
