"""What only a CUDA GPU can check: float16 with loss scaling (the T4's precision) and bfloat16
give float32's gradients to rounding and train to finite weights, channels_last trains as NCHW
does, LRN in half precision equals PyTorch's layer, and running out of GPU memory says which
batch size to try.

Marked `cuda`: ``pytest -m cuda`` runs them, and benchmarks/gpu_check.py records their result.
Without a CUDA GPU every test here skips, with that reason.
"""

from __future__ import annotations

import gc
import json
import math

import pytest
import torch
from torch import nn

from alexnet_edu import lrn_fast, standin
from alexnet_edu.checkpoint import load_checkpoint
from alexnet_edu.data import load_splits
from alexnet_edu.evaluation import evaluate, predict
from alexnet_edu.layers import LocalResponseNorm
from alexnet_edu.notebook import interpret
from alexnet_edu.train import (
    OutOfMemory,
    TrainConfig,
    _prepare,
    build_model,
    fit,
    train_one_epoch,
)

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(),
                                 reason="needs a CUDA GPU (benchmarks/gpu_check.py runs these)")]

SIZE = 67   # the smallest input the paper's layers take: the most steps per second
BATCH = 32


def _bf16_hardware() -> bool:
    """Compute capability 8.0 (Ampere) or newer: where `amp_dtype("auto")` picks bfloat16."""
    return torch.cuda.is_available() and torch.cuda.get_device_capability()[0] >= 8


@pytest.fixture
def cuda() -> torch.device:
    return torch.device("cuda")


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    """Stand-in Fashion-MNIST: 288 training images (9 steps of 32 per epoch), 32 for validation."""
    root = tmp_path_factory.mktemp("fashion")
    standin.generate_fashion_mnist(root, n_train=320, n_test=32, seed=0)
    return load_splits("fashion-mnist", root=root, download=False)


def _trained(splits, device, run_dir, **config) -> nn.Module:
    """An AlexNet fitted with the trainer from seed 0, without dropout or augmentation (so that
    two runs differ only in what `config` changes)."""
    model = build_model(splits, image_size=SIZE, dropout=0.0)
    settings = {"epochs": 2, "batch_size": 32, "augment": False, "progress": False, **config}
    fit(model, splits, TrainConfig(**settings), run_dir, device)
    return model


# Relative error of a parameter's gradient under autocast. Rounding errors grow layer by layer
# backwards (ReLUs of near-zero inputs switch), so conv1's is the largest, and bfloat16's (3
# fewer mantissa bits) above float16's; the bounds leave twice that room. A loss scale not undone
# is off by a factor of thousands, a halved or doubled one by 50-100 %: far outside them.
GRADIENT_TOLERANCE = {"fp16": 0.15, "bf16": 0.4}


class _AsIs(nn.Identity):
    """A transform that passes the float batch through (train_one_epoch reads its size)."""

    image_size, out_channels = SIZE, 1


def _gradients(model: nn.Module, amp: str, x: torch.Tensor, y: torch.Tensor) -> dict:
    """The gradients of one step of the trainer (`train.train_one_epoch` on one batch, with
    `fit`'s optimizer and loss scaler), which the GradScaler's step leaves unscaled. Where the
    scaled gradients overflow float16, the scaler skips the update (the weights stay as they
    were) and halves the scale for the next try."""
    config = TrainConfig(amp=amp, progress=False)
    optimizer, _, scaler, dtype = _prepare(model, config, x.device)
    for _ in range(40):
        train_one_epoch(model, [(x, y)], optimizer, scaler, _AsIs(), x.device, 0, config, dtype)
        grads = {name: p.grad.float() for name, p in model.named_parameters()}
        if all(torch.isfinite(g).all() for g in grads.values()):
            return grads
    raise AssertionError("the scaled gradients overflowed at every loss scale")


@pytest.mark.parametrize("amp", ["fp16", "bf16"])
def test_half_precision_gradients_equal_float32s(amp, splits, cuda):
    """float16 (with the GradScaler) and bfloat16 gradients of a training step equal float32's
    to the precision's rounding: the loss scale undone exactly, nothing overflowed unseen."""
    if amp == "bf16" and not _bf16_hardware():
        pytest.skip("bfloat16 needs compute capability 8.0 or newer (this GPU emulates it)")
    x = torch.randn(BATCH, 1, SIZE, SIZE, device=cuda)
    y = torch.arange(BATCH, device=cuda) % 10
    full = _gradients(build_model(splits, image_size=SIZE, dropout=0.0), "off", x, y)
    half = _gradients(build_model(splits, image_size=SIZE, dropout=0.0), amp, x, y)
    for name, f in full.items():
        assert (half[name] - f).norm() <= GRADIENT_TOLERANCE[amp] * f.norm(), name


@pytest.mark.parametrize("amp", ["fp16", "bf16"])
def test_half_precision_training_ends_finite(amp, splits, cuda, tmp_path):
    """18 steps of fit in float16 (the GradScaler skips the first steps whose scaled gradients
    overflow) or bfloat16 end with finite weights and losses. A momentum buffer made from
    uninitialised memory at a skipped step (fused SGD under a scaler) sent weights to 1e10.
    (Closeness to float32 is the gradients' test: a whole run is not compared, because one
    skipped step of 18 moves its final loss as far as a bug might.)"""
    if amp == "bf16" and not _bf16_hardware():
        pytest.skip("bfloat16 needs compute capability 8.0 or newer (this GPU emulates it)")
    model = _trained(splits, cuda, tmp_path, amp=amp)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    history = json.loads((tmp_path / "history.json").read_text())
    assert len(history) == 2
    assert all(math.isfinite(row[k]) for row in history for k in ("train_loss", "val_loss"))


def test_channels_last_trains_as_nchw_does(splits, cuda, tmp_path):
    """float32 with TF32 off: the two layouts run other cuDNN kernels, with the same sums to
    float32 rounding, so the weights after 9 steps agree to rounding."""
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        nchw = _trained(splits, cuda, tmp_path / "nchw", amp="off", channels_last=False, epochs=1)
        nhwc = _trained(splits, cuda, tmp_path / "nhwc", amp="off", channels_last=True, epochs=1)
    assert nhwc.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    for (name, a), b in zip(nchw.state_dict().items(), nhwc.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-5, msg=name)


# the dtype's usual tolerance (torch.testing's defaults): a value rounded once to it passes
TOLERANCE = {torch.float16: 1e-3, torch.bfloat16: 1.6e-2}


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_lrn_in_half_precision_equals_pytorchs_layer(dtype, channels_last, cuda):
    """Our LRN on a conv1-sized float16/bfloat16 batch against torch.nn.LocalResponseNorm(5,
    5e-4, 0.75, 2) (the paper's layer: PyTorch divides alpha by n) in float32 on the same
    rounded inputs: outputs within the dtype's tolerance, gradients within it relative to the
    largest gradient (elementwise ratios blow up where the gradient's two terms cancel)."""
    x = (torch.randn(8, 96, 55, 55, device=cuda).relu() * 10).to(dtype)
    g = torch.randn(x.shape, device=cuda).to(dtype)
    if channels_last:
        x, g = (t.contiguous(memory_format=torch.channels_last) for t in (x, g))
    ours_in, ref_in = x.clone().requires_grad_(), x.float().requires_grad_()
    ours = LocalResponseNorm(5, 1e-4, 0.75, 2.0)(ours_in)
    ref = nn.LocalResponseNorm(5, 5e-4, 0.75, 2.0)(ref_in)
    ours.backward(g)
    ref.backward(g.float())
    assert ours.dtype == dtype and ours_in.grad.dtype == dtype
    tol = TOLERANCE[dtype]
    torch.testing.assert_close(ours.float(), ref, rtol=tol, atol=1e-5)
    error = (ours_in.grad.float() - ref_in.grad).abs().max() / ref_in.grad.abs().max()
    assert error < tol


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_lrn_walks_conv1s_maps_at_batch_128_in_blocks_as_pytorchs_layer(channels_last, cuda):
    """On a GPU our LRN takes conv1's maps at batch 128 (37 M values) in 5 blocks (each block
    is a dozen kernel launches): the cuts between them change nothing, in float32."""
    x = torch.randn(128, 96, 55, 55, device=cuda).relu() * 10
    g = torch.randn_like(x)
    if channels_last:
        x, g = (t.contiguous(memory_format=torch.channels_last) for t in (x, g))
    assert len(lrn_fast._blocks(x)[1]) == 5
    ours_in, ref_in = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours = LocalResponseNorm(5, 1e-4, 0.75, 2.0)(ours_in)
    ref = nn.LocalResponseNorm(5, 5e-4, 0.75, 2.0)(ref_in)
    ours.backward(g)
    ref.backward(g)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours_in.grad, ref_in.grad, rtol=1e-4, atol=1e-5)


def test_evaluate_and_predict_take_images_already_on_the_gpu(splits, cuda, tmp_path):
    """Only CPU tensors can be pinned: images a student moved to the GPU first (`predict(model,
    images.to("cuda"), ...)`) are read as they are, with the same answer as from the CPU."""
    model = _trained(splits, cuda, tmp_path / "run", epochs=1)
    checkpoint = load_checkpoint(tmp_path / "run" / "best.pt")
    images = splits.val.images[:16]
    on_cpu = predict(model, images, checkpoint, cuda)
    on_gpu = predict(model, images.to(cuda), checkpoint, cuda)
    torch.testing.assert_close(on_gpu, on_cpu)
    labels = splits.val.labels[:16]
    assert evaluate(model, (images.to(cuda), labels.to(cuda)), checkpoint, cuda)["n"] == 16


def test_seeded_interpretability_leaves_the_gpus_random_state_alone(splits, cuda):
    """The sanity checks (notebook 09) draw from their own seed, on the GPU where the model is;
    the global generators come back as they were, the GPU's too."""
    model = build_model(splits, image_size=SIZE).to(cuda)
    images = torch.randn(8, 1, SIZE, SIZE, device=cuda)
    before = torch.cuda.get_rng_state()
    list(interpret.cascading_randomization(model, ["fc8", "conv1"], seed=1))
    interpret.train_on_shuffled_labels(model, images, torch.arange(8) % 2, epochs=2, seed=1)
    assert torch.equal(torch.cuda.get_rng_state(), before)


def test_out_of_memory_says_which_batch_size_to_try(cuda, tmp_path):
    """A GPU capped at the model's weights + 256 MiB cannot hold a batch of 256 at 227 px (about
    600 MB of saved activations): fit stops with train.OutOfMemory naming batch 128, not
    PyTorch's allocator report."""
    root = tmp_path / "data"
    standin.generate_fashion_mnist(root, n_train=320, n_test=16, seed=0)
    data = load_splits("fashion-mnist", root=root, download=False)
    model = build_model(data, image_size=227).to(cuda)
    gc.collect()
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(cuda).total_memory
    cap = (torch.cuda.memory_allocated(cuda) + 256 * 2**20) / total
    torch.cuda.set_per_process_memory_fraction(cap, cuda)
    try:
        with pytest.raises(OutOfMemory, match=r"use batch size 128 \("):
            fit(model, data, TrainConfig(epochs=1, batch_size=256, progress=False),
                tmp_path / "run", cuda)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, cuda)
        del model
        gc.collect()
        torch.cuda.empty_cache()
