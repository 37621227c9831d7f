"""Output-size arithmetic against real PyTorch layers, and `trace` against the formulas."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from alexnet_edu.model import AlexNet
from alexnet_edu.shapes import (
    LayerRow,
    Trace,
    conv_output_size,
    pool_output_size,
    trace,
    unread_pixels,
    unused_pixels,
)


def _random_axis(rng: random.Random) -> tuple[int, int, int, int, int]:
    """(size, kernel, stride, padding, dilation) along one axis, often too small to fit."""
    return (rng.randint(1, 24), rng.randint(1, 7), rng.randint(1, 4), rng.randint(0, 3),
            rng.randint(1, 3))


def _ours_or_error(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except ValueError:
        return "error"


def _torch_or_error(layer_fn, x, *args, **kwargs):
    try:
        return tuple(layer_fn(x, *args, **kwargs).shape[-2:])
    except RuntimeError:
        return ("error", "error")


def test_conv_output_size_equals_pytorch_on_random_configs():
    rng = random.Random(0)
    checked = fitted = 0
    for _ in range(300):
        (h, kh, sh, ph, dh), (w, kw, sw, pw, dw) = _random_axis(rng), _random_axis(rng)
        x = torch.zeros(1, 1, h, w)
        weight = torch.zeros(1, 1, kh, kw)
        got = _torch_or_error(nn.functional.conv2d, x, weight, None, (sh, sw), (ph, pw), (dh, dw))
        ours = (_ours_or_error(conv_output_size, h, kh, sh, ph, dh),
                _ours_or_error(conv_output_size, w, kw, sw, pw, dw))
        if "error" in got:  # PyTorch refuses if either axis does not fit
            assert "error" in ours, (h, kh, sh, ph, dh, w, kw, sw, pw, dw)
        else:
            assert ours == got, (h, kh, sh, ph, dh, w, kw, sw, pw, dw)
            fitted += 1
        checked += 1
    assert fitted > 100 and checked - fitted > 20  # both outcomes were exercised


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_pool_output_size_equals_pytorch_on_random_configs(ceil_mode):
    rng = random.Random(1 + ceil_mode)
    fitted = refused = ceil_differs = 0
    for _ in range(400):
        (h, kh, sh, ph, dh), (w, kw, sw, pw, dw) = _random_axis(rng), _random_axis(rng)
        x = torch.zeros(1, 1, h, w)
        got = _torch_or_error(nn.functional.max_pool2d, x, (kh, kw), (sh, sw), (ph, pw), (dh, dw),
                              ceil_mode=ceil_mode)
        ours = (_ours_or_error(pool_output_size, h, kh, sh, ph, dh, ceil_mode),
                _ours_or_error(pool_output_size, w, kw, sw, pw, dw, ceil_mode))
        config = (h, kh, sh, ph, dh, w, kw, sw, pw, dw, ceil_mode)
        if "error" in got:
            assert "error" in ours, config
            refused += 1
        else:
            assert ours == got, config
            fitted += 1
            floor = _ours_or_error(pool_output_size, h, kh, sh, ph, dh, False)
            ceil_differs += ceil_mode and floor != got[0]
    assert fitted > 100 and refused > 20
    if ceil_mode:
        assert ceil_differs > 10  # ceil_mode really changed some sizes


def test_pool_output_size_equals_avg_pool_and_stride_defaults_to_kernel():
    rng = random.Random(3)
    for _ in range(100):
        size, kernel, stride, padding, _ = _random_axis(rng)
        ceil_mode = rng.random() < 0.5
        x = torch.zeros(1, 1, size, size)
        got = _torch_or_error(nn.functional.avg_pool2d, x, kernel, stride, padding,
                              ceil_mode=ceil_mode)[0]
        assert _ours_or_error(pool_output_size, size, kernel, stride, padding,
                              ceil_mode=ceil_mode) == got
    assert pool_output_size(12, 3) == nn.MaxPool2d(3)(torch.zeros(1, 1, 12, 12)).shape[-1] == 4


def test_alexnet_sizes_and_the_224_puzzle():
    # Section 3.5 / Figure 2: 227 -> 55 -> 27 -> 13 -> 13 -> 13 -> 6
    assert conv_output_size(227, 11, 4) == 55
    assert pool_output_size(55, 3, 2) == 27
    assert conv_output_size(27, 5, 1, 2) == 27
    assert pool_output_size(27, 3, 2) == 13
    assert conv_output_size(13, 3, 1, 1) == 13
    assert pool_output_size(13, 3, 2) == 6
    # the paper's 224: (224 - 11) / 4 + 1 = 54.25 is floored
    assert (224 - 11) / 4 + 1 == 54.25
    assert conv_output_size(224, 11, 4) == 54
    assert conv_output_size(224, 11, 4, padding=2) == 55  # torchvision's fix: pad conv1 by 2


@pytest.mark.parametrize("call, words", [
    (lambda: conv_output_size(10, 11), "at least 11"),
    (lambda: conv_output_size(5, 3, dilation=3), "effective size 7"),
    (lambda: conv_output_size(4, 11, padding=3), "at least 5"),
    (lambda: pool_output_size(2, 3, 2), "at least 3"),
    (lambda: pool_output_size(10, 3, padding=2), "at most half the kernel"),
    (lambda: conv_output_size(10, 3, stride=0), "stride must be an integer >= 1"),
    (lambda: conv_output_size(10, 3, padding=-1), "padding must be an integer >= 0"),
    (lambda: conv_output_size(10.5, 3), "size must be an integer"),
    (lambda: pool_output_size(0, 3), "size must be an integer >= 1"),
])
def test_windows_that_do_not_fit_raise_value_error_with_explanation(call, words):
    with pytest.raises(ValueError, match=words):
        call()


def test_ceil_mode_keeps_a_partial_window_like_pytorch():
    # 2 pixels, window 3: floor mode refuses, ceil mode keeps one clipped window
    assert nn.MaxPool2d(3, 2, ceil_mode=True)(torch.zeros(1, 1, 2, 2)).shape[-1] == 1
    assert pool_output_size(2, 3, 2, ceil_mode=True) == 1
    with pytest.raises(ValueError, match="ceil_mode=True"):
        pool_output_size(2, 3, 2)


def _expected_alexnet_rows(groups: int, num_classes: int = 1000) -> dict[str, tuple]:
    """(output shape, parameters, mult-adds) of AlexNet's weight layers, from the formulas."""
    convs = [(96, 11, 4, 0, 1), (256, 5, 1, 2, groups), (384, 3, 1, 1, 1), (384, 3, 1, 1, groups),
             (256, 3, 1, 1, groups)]
    rows, channels, side = {}, 3, 227
    for i, (out, k, s, p, g) in enumerate(convs, start=1):
        side = conv_output_size(side, k, s, p)
        weights = out * (channels // g) * k * k
        rows[f"conv{i}"] = ((out, side, side), weights + out, weights * side * side)
        if i in (1, 2, 5):
            side = pool_output_size(side, 3, 2)
        channels = out
    features = channels * side * side
    for name, n_in, n_out in (("fc6", features, 4096), ("fc7", 4096, 4096),
                              ("fc8", 4096, num_classes)):
        rows[name] = ((n_out,), n_in * n_out + n_out, n_in * n_out)
    return rows


@pytest.fixture(scope="module")
def paper_traces():
    """{groups: (model, trace at 227)}: built once, the model takes a second or two."""
    models = {g: AlexNet(groups=g, init="kaiming") for g in (1, 2)}
    return {g: (m, trace(m, (3, 227, 227))) for g, m in models.items()}


@pytest.mark.parametrize("groups", [1, 2])
def test_trace_rows_match_formulas(groups, paper_traces):
    model, t = paper_traces[groups]
    assert isinstance(t, Trace) and all(isinstance(r, LayerRow) for r in t)
    assert [r.name for r in t] == model.layer_names()
    for name, (shape, params, mult_adds) in _expected_alexnet_rows(groups).items():
        row = t.row(name)
        assert row.output_shape == shape, name
        assert row.parameters == params, name
        assert row.mult_adds == mult_adds, name
    assert t.row("pool5").output_shape == (256, 6, 6)
    assert t.row("norm1").kind == "LocalResponseNorm" and t.row("norm1").parameters == 0
    assert t.total_parameters == sum(p.numel() for p in model.parameters())
    assert t.total_mult_adds == sum(r.mult_adds for r in t)


def test_trace_fc6_holds_most_parameters(paper_traces):
    _, t = paper_traces[1]
    fc6 = t.row("fc6")
    assert fc6.parameters == 256 * 6 * 6 * 4096 + 4096  # 37.7 M
    assert fc6.parameters / t.total_parameters > 0.6


def test_trace_table_restores_model_and_removes_hooks():
    model = AlexNet(num_classes=10, image_size=67, init="kaiming").train()
    t = trace(model, torch.Size([1, 3, 67, 67]))  # a batch shape is accepted too
    assert model.training
    assert all(not m._forward_hooks for m in model.modules())
    lines = t.table().splitlines()
    assert lines[0].split() == ["layer", "type", "output", "shape", "parameters", "mult-adds"]
    assert len(lines) == len(t) + 4  # header, rule, rows, rule, totals
    assert lines[-1].split() == ["total", f"{t.total_parameters:,}", f"{t.total_mult_adds:,}"]
    assert "96 x 15 x 15" in lines[2]  # conv1 at 67: (67 - 11) / 4 + 1 = 15
    assert str(t) == t.table()
    with pytest.raises(KeyError, match="conv1"):
        t.row("conv9")
    with pytest.raises(ValueError, match="channels, height, width"):
        trace(model, (67, 67))


def test_trace_of_torchvision_variant_any_size():
    t = trace(AlexNet(variant="torchvision", init="kaiming"), (3, 100, 100))
    side = conv_output_size(100, 11, 4, 2)
    assert t.row("conv1").output_shape == (64, side, side)
    assert t.row("avgpool").output_shape == (256, 6, 6)
    assert t.total_parameters == 61_100_840


def test_unused_pixels_is_what_no_window_reads():
    rng = random.Random(4)
    for _ in range(200):
        size, kernel, stride, padding, dilation = _random_axis(rng)
        try:
            lost = unused_pixels(size, kernel, stride, padding, dilation)
        except ValueError:
            continue
        # which real pixels does the convolution's output depend on? ask autograd
        x = torch.zeros(1, 1, 1, size, requires_grad=True)
        weight = torch.ones(1, 1, 1, kernel)
        nn.functional.conv2d(x, weight, None, (1, stride), (0, padding), (1, dilation)).sum() \
            .backward()
        read = torch.nonzero(x.grad[0, 0, 0]).flatten()
        last_read = int(read.max()) if read.numel() else -1
        assert lost == size - 1 - last_read, (size, kernel, stride, padding, dilation)
        # and every pixel it does not read, wherever it is
        unread = sorted(set(range(size)) - set(read.tolist()))
        assert unread_pixels(size, kernel, stride, padding, dilation) == unread
    assert unused_pixels(224, 11, 4) == 1 and unused_pixels(227, 11, 4) == 0
    assert unread_pixels(224, 11, 4) == [223] and unread_pixels(13, 1, 2) == [1, 3, 5, 7, 9, 11]
