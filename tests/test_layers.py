"""Local Response Normalization: the paper's formula (Section 3.3) in both implementations.

The yardstick is `torch.nn.LocalResponseNorm(size, alpha * size, beta, k)`: PyTorch divides its
alpha by size, so this is the paper's layer (alpha multiplies the sum over n adjacent channels).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import alexnet_edu.lrn_fast as lrn_fast
from alexnet_edu.layers import LocalResponseNorm, local_response_norm, local_response_norm_reference

FP32 = dict(rtol=1e-6, atol=1e-6)  # "equal within 1e-6" in float32
# Constants under which the inhibition term matters (with the paper's alpha=1e-4 and inputs ~1,
# d is ~k and a bug in the window would hide below float32 rounding).
STRONG = dict(alpha=0.05, beta=0.75, k=1.0)


def torch_lrn(x, size, alpha=1e-4, beta=0.75, k=2.0):
    return nn.LocalResponseNorm(size, alpha * size, beta, k)(x)


def layouts(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The same values as NCHW, channels-last and a non-contiguous (transposed) view."""
    return {"contiguous": x,
            "channels_last": x.contiguous(memory_format=torch.channels_last),
            "strided": x.transpose(2, 3).contiguous().transpose(2, 3)}


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 6, 7])
@pytest.mark.parametrize("channels", [1, 3, 5, 8])
def test_fast_and_reference_equal_torch_with_alpha_times_size(size, channels):
    torch.manual_seed(size * 10 + channels)
    x = torch.randn(2, channels, 5, 6) * 4  # both signs; alpha*sum(a^2) far from negligible
    # k = 0 and k = 0.3 too: the kernel spreads k over the window's channels and its pads
    for constants in (dict(), STRONG, dict(alpha=0.05, beta=0.75, k=0.0),
                      dict(alpha=0.05, beta=0.6, k=0.3)):
        expected = torch_lrn(x, size, **constants)
        for name, view in layouts(x).items():
            got = local_response_norm(view, size, **constants)
            torch.testing.assert_close(got, expected, **FP32, msg=f"fast, {name}, {constants}")
        ref = local_response_norm_reference(x, size, **constants)
        torch.testing.assert_close(ref, expected, **FP32, msg=f"reference, {constants}")


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"])
@pytest.mark.parametrize("size", [2, 5])
def test_gradients_equal_torch(size, layout):
    torch.manual_seed(size)
    x = layouts(torch.randn(3, 7, 4, 5) * 3)[layout]
    g = torch.randn(3, 7, 4, 5).transpose(2, 3).contiguous().transpose(2, 3)  # odd strides too
    grads = []
    for fn in (local_response_norm, torch_lrn):
        a = x.detach().requires_grad_()
        fn(a, size, **STRONG).backward(g)
        grads.append(a.grad)
    torch.testing.assert_close(grads[0], grads[1], **FP32)
    assert grads[0].stride() == x.stride(), "the gradient keeps the input's memory format"


@pytest.mark.parametrize("size", [1, 2, 3, 5, 6, 9])
def test_gradcheck_float64(size):
    torch.manual_seed(size)
    x = torch.randn(2, 6, 2, 3, dtype=torch.float64, requires_grad=True)
    # beta=0.75 runs the rsqrt path, beta=0.6 the general power
    for beta in (0.75, 0.6):
        assert torch.autograd.gradcheck(
            lambda t, beta=beta: local_response_norm(t, size, alpha=0.1, beta=beta, k=1.0), (x,))


@pytest.mark.parametrize("block", [23, 2 * 10 * 63])
def test_many_ragged_blocks_agree(monkeypatch, block):
    """Blocks that cut through a sample (and, channels-last, across samples), or hold several
    whole samples, change nothing."""
    torch.manual_seed(0)
    x = torch.randn(3, 10, 7, 9) * 4
    g = torch.randn_like(x)
    expected = torch_lrn(x, 5, **STRONG)
    a = x.clone().requires_grad_()
    torch_lrn(a, 5, **STRONG).backward(g)
    # 23: 2 pixels x 10 channels per block, ragged tail; 1260: two whole 10x7x9 samples per
    # block, then the third alone
    monkeypatch.setattr(lrn_fast, "_BLOCK", block)
    samples = [b.indices(3) for b, _ in lrn_fast._blocks(x)[1]]
    assert samples == ([(0, 2, 1), (2, 3, 1)] if block > 23 else [(n, n + 1, 1) for n in range(3)
                                                                  for _ in range(32)])
    for name, view in layouts(x).items():
        b = view.detach().clone().requires_grad_()
        got = local_response_norm(b, 5, **STRONG)
        got.backward(g)
        torch.testing.assert_close(got, expected, **FP32, msg=name)
        torch.testing.assert_close(b.grad, a.grad, **FP32, msg=name)


def test_a_gpu_walks_conv1s_maps_in_five_blocks_a_cpu_in_cache_sized_ones():
    """Each block costs a dozen kernel launches: off the CPU ('meta' stands in for a GPU) the
    maps of conv1 at batch 128 (37 M values) go in 5 blocks of up to 2^23 values (~0.3 GB of
    float32 scratch), in either layout; on a CPU in blocks of lrn_fast._BLOCK values, which fit
    in its cache."""
    nchw = torch.empty(128, 96, 55, 55, device="meta")
    for x in (nchw, nchw.to(memory_format=torch.channels_last)):
        assert len(lrn_fast._blocks(x)[1]) == 5
    on_cpu = torch.empty(8, 96, 55, 55)
    assert len(lrn_fast._blocks(on_cpu)[1]) == math.ceil(8 / (lrn_fast._BLOCK // (96 * 55 * 55)))


def test_conv1_sized_input_over_several_blocks():
    torch.manual_seed(1)
    x = torch.randn(2, 96, 27, 27).relu_() * 20  # 729 pixels: several blocks per sample
    torch.testing.assert_close(local_response_norm(x), torch_lrn(x, 5), rtol=1e-6, atol=1e-5)


def test_other_ranks_and_empty_batch():
    torch.manual_seed(2)
    for shape in [(2, 6, 11), (2, 6, 3, 4, 5), (0, 6, 4, 4)]:
        x = torch.randn(shape) * 3
        torch.testing.assert_close(local_response_norm(x, 3, **STRONG),
                                   torch_lrn(x, 3, **STRONG), **FP32)


def test_the_alpha_over_n_pitfall():
    """nn.LocalResponseNorm(5, 1e-4, ...) -- what public AlexNet code writes -- is not the paper's
    layer: its alpha is divided by n, so it normalizes less."""
    torch.manual_seed(3)
    x = torch.randn(4, 16, 8, 8).relu_() * 60  # conv1-like magnitudes: alpha*sum(a^2) ~ 1
    paper = LocalResponseNorm()(x)
    pitfall = nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0)(x)
    assert (pitfall - paper).abs().max() > 1.0
    assert (pitfall >= paper - 1e-5).all(), "the smaller alpha divides by less, everywhere"
    torch.testing.assert_close(nn.LocalResponseNorm(5, 5e-4, 0.75, 2.0)(x), paper,
                               rtol=1e-6, atol=1e-5)


def test_bfloat16_channels_last_agrees_with_float32():
    torch.manual_seed(4)
    x = (torch.randn(2, 12, 9, 9).relu_() * 30).bfloat16().contiguous(
        memory_format=torch.channels_last)
    g = torch.randn(2, 12, 9, 9).bfloat16()
    a16 = x.clone().requires_grad_()
    y16 = local_response_norm(a16, 5, **STRONG)
    y16.backward(g)
    a32 = x.float().requires_grad_()
    y32 = local_response_norm(a32, 5, **STRONG)
    y32.backward(g.float())
    assert y16.dtype == a16.grad.dtype == torch.bfloat16
    assert y16.is_contiguous(memory_format=torch.channels_last)
    # computed in float32 from the same bf16 inputs: only the final rounding to bf16 differs
    torch.testing.assert_close(y16.float(), y32, rtol=8e-3, atol=1e-3)
    torch.testing.assert_close(a16.grad.float(), a32.grad, rtol=8e-3, atol=1e-3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        torch.testing.assert_close(local_response_norm(x, 5, **STRONG), y16)


# Each precision's tolerance for one rounding of the output (bfloat16 keeps 8 significant bits,
# float16 11) plus a few float32 roundings inside.
HALF = {torch.bfloat16: dict(rtol=8e-3, atol=1e-3), torch.float16: dict(rtol=1e-3, atol=1e-4)}


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"])
@pytest.mark.parametrize("size", [4, 5])
def test_half_precision_equals_the_reference(dtype, layout, size):
    """From the same half-precision input and upstream gradient, the fast path's output and input
    gradient equal the float64 reference (the loop over channels, and PyTorch's layer), rounded
    to the input's precision; they keep its dtype and memory format."""
    torch.manual_seed(size)
    x = layouts((torch.randn(2, 12, 9, 9).relu_() * 30).to(dtype))[layout]
    g = torch.randn(2, 12, 9, 9).to(dtype)
    a = x.detach().requires_grad_()
    y = local_response_norm(a, size, **STRONG)
    y.backward(g)
    a64 = x.double().requires_grad_()
    y64 = torch_lrn(a64, size, **STRONG)
    y64.backward(g.double())
    torch.testing.assert_close(local_response_norm_reference(x.double(), size, **STRONG), y64,
                               **FP32)
    assert y.dtype == a.grad.dtype == dtype
    dense = x if layout != "strided" else x.contiguous()   # other strides: made contiguous
    assert y.stride() == dense.stride() and a.grad.stride() == x.stride(), "memory format"
    torch.testing.assert_close(y.double(), y64, **HALF[dtype])
    # gradients cancel to ~0 in places: compare with a tolerance relative to the largest
    tol = HALF[dtype]["rtol"] * a64.grad.abs().max().item()
    torch.testing.assert_close(a.grad.double(), a64.grad, rtol=HALF[dtype]["rtol"], atol=tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_channels_last_and_nchw_give_the_same_numbers(dtype):
    """The two memory formats take different block shapes through the kernel: same results."""
    torch.manual_seed(6)
    x = (torch.randn(3, 20, 11, 13).relu_() * 30).to(dtype)
    g = torch.randn(3, 20, 11, 13).to(dtype)
    results = []
    for fmt in (torch.contiguous_format, torch.channels_last):
        a = x.contiguous(memory_format=fmt).detach().requires_grad_()
        y = local_response_norm(a, 5, **STRONG)
        y.backward(g.contiguous(memory_format=fmt))
        assert y.is_contiguous(memory_format=fmt) and a.grad.is_contiguous(memory_format=fmt)
        results.append((y, a.grad))
    torch.testing.assert_close(results[0], results[1], rtol=0, atol=0)


def test_module_defaults_are_the_papers_constants():
    layer = LocalResponseNorm()
    assert (layer.size, layer.alpha, layer.beta, layer.k) == (5, 1e-4, 0.75, 2.0)
    assert repr(layer) == "LocalResponseNorm(size=5, alpha=0.0001, beta=0.75, k=2.0)"
    assert "alpha * size" in LocalResponseNorm.__doc__.replace("``", "")


def test_to_torch_and_reference_module_are_equivalent():
    torch.manual_seed(5)
    layer = LocalResponseNorm(size=4, alpha=0.02, beta=0.7, k=1.5)
    theirs = layer.to_torch()
    assert isinstance(theirs, nn.LocalResponseNorm)
    assert (theirs.size, theirs.alpha, theirs.beta, theirs.k) == (4, 0.08, 0.7, 1.5)
    x = torch.randn(2, 9, 5, 5) * 3
    torch.testing.assert_close(layer(x), theirs(x), **FP32)
    slow = LocalResponseNorm(size=4, alpha=0.02, beta=0.7, k=1.5, reference=True)
    torch.testing.assert_close(slow(x), theirs(x), **FP32)


def test_bad_input_gives_clear_errors():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\).*unsqueeze"):
        local_response_norm(torch.randn(96, 55))
    with pytest.raises(TypeError, match="floating-point.*x.float"):
        local_response_norm(torch.ones(1, 3, 2, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="size .* int >= 1"):
        local_response_norm(torch.randn(1, 3, 2, 2), size=0)
    with pytest.raises(ValueError, match="size .* int >= 1"):
        local_response_norm(torch.randn(1, 3, 2, 2), size=2.5)


def test_lrn_keeps_the_inputs_device():
    """The kernel's buffers follow the input: a 'meta' tensor stands in for a GPU here (buffers
    made on the CPU would raise a cross-device error, as they would on CUDA)."""
    x = torch.ones(2, 6, 4, 4, device="meta", requires_grad=True)
    y = local_response_norm(x)
    y.sum().backward()
    assert y.device == x.grad.device == x.device and y.shape == x.shape
