"""AlexNet: layout, parameter counts, torchvision compatibility, init, activations, errors."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from torch import nn

from alexnet_edu.layers import LocalResponseNorm
from alexnet_edu.model import AlexNet, activations, feature_map_size, smallest_image_size
from alexnet_edu.shapes import conv_output_size


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def paper() -> AlexNet:
    """The paper's network at 227 px (built once: 62 M parameters)."""
    torch.manual_seed(0)
    return AlexNet().eval()


@pytest.fixture(scope="module")
def tv() -> AlexNet:
    """torchvision's layout, 1000 classes (built once)."""
    torch.manual_seed(0)
    return AlexNet(variant="torchvision").eval()


@pytest.fixture(scope="module")
def small() -> AlexNet:
    """The paper's layers at their smallest input, 67 px, 10 classes: cheap forward passes."""
    torch.manual_seed(0)
    return AlexNet(num_classes=10, image_size=67).eval()


def test_paper_layout_in_forward_order(small):
    assert small.layer_names() == [
        "conv1", "relu1", "norm1", "pool1", "conv2", "relu2", "norm2", "pool2",
        "conv3", "relu3", "conv4", "relu4", "conv5", "relu5", "pool5",
        "fc6", "relu6", "drop6", "fc7", "relu7", "drop7", "fc8"]
    convs = [small.layer(f"conv{i}") for i in range(1, 6)]
    assert [c.out_channels for c in convs] == [96, 256, 384, 384, 256]
    assert [c.kernel_size[0] for c in convs] == [11, 5, 3, 3, 3]
    assert [c.stride[0] for c in convs] == [4, 1, 1, 1, 1]
    assert [c.padding[0] for c in convs] == [0, 2, 1, 1, 1]
    for name in ("pool1", "pool2", "pool5"):  # overlapping pooling z=3, s=2 (Section 3.4)
        pool = small.layer(name)
        assert (pool.kernel_size, pool.stride) == (3, 2)
    norm = small.layer("norm1")  # Section 3.3
    assert isinstance(norm, LocalResponseNorm)
    assert (norm.size, norm.alpha, norm.beta, norm.k) == (5, 1e-4, 0.75, 2.0)
    assert small.layer("drop6").p == small.layer("drop7").p == 0.5
    assert small.conv1 is small.layer("conv1") and small.fc8 is small.layer("fc8")
    with pytest.raises(AttributeError):
        _ = small.conv9


def test_options_change_the_layout():
    m = AlexNet(num_classes=7, in_channels=1, image_size=67, lrn=False, dropout=0.2)
    assert "norm1" not in m.layer_names() and "norm2" not in m.layer_names()
    assert m.conv1.in_channels == 1 and m.fc8.out_features == 7 and m.drop7.p == 0.2
    m = AlexNet(image_size=67, activation="tanh", overlapping_pool=False)
    assert isinstance(m.relu1, nn.Tanh) and m.pool1.kernel_size == 2
    rebuilt = AlexNet(**m.config)
    assert rebuilt.config == m.config
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in m.state_dict().items()}


@pytest.mark.parametrize("groups, expected", [(1, 62_378_344), (2, 60_965_224)])
def test_paper_parameter_counts(groups, expected):
    with torch.device("meta"):  # shapes only: no memory, no time
        model = AlexNet(groups=groups)
    assert model.fc6.weight.is_meta
    assert _count(model) == expected
    # the same number from the layer formulas: conv k*k*(C_in/g)*C_out + C_out, fc in*out + out
    layers = [(3, 96, 11, 1), (96, 256, 5, groups), (256, 384, 3, 1), (384, 384, 3, groups),
              (384, 256, 3, groups)]
    formula = sum(k * k * (cin // g) * cout + cout for cin, cout, k, g in layers)
    formula += sum(i * o + o for i, o in ((256 * 6 * 6, 4096), (4096, 4096), (4096, 1000)))
    assert formula == expected


def test_two_towers_halve_conv2_conv4_conv5():
    one, two = AlexNet(image_size=67, groups=1), AlexNet(image_size=67, groups=2)
    for name in ("conv2", "conv4", "conv5"):
        assert two.layer(name).groups == 2
        assert two.layer(name).weight.shape[1] * 2 == one.layer(name).weight.shape[1]
    for name in ("conv1", "conv3"):  # conv3 sees both towers' maps (Figure 2)
        assert two.layer(name).weight.shape == one.layer(name).weight.shape
    half = sum(one.layer(n).weight.numel() // 2 for n in ("conv2", "conv4", "conv5"))
    assert _count(one) - _count(two) == half == 1_413_120
    # tower independence: the second half of conv2's inputs never reaches its first 128 maps
    conv2 = two.conv2
    x = torch.randn(1, 96, 27, 27)
    y = x.clone()
    y[:, 48:] = torch.randn(1, 48, 27, 27)
    with torch.no_grad():
        a, b = conv2(x), conv2(y)
    assert torch.equal(a[:, :128], b[:, :128])
    assert not torch.allclose(a[:, 128:], b[:, 128:])


def test_torchvision_weights_load_unchanged_and_give_identical_outputs(tv):
    torch.manual_seed(1)
    theirs = torchvision.models.alexnet(weights=None).eval()  # random init: no download
    ours = tv  # built with our own init: every value below comes from torchvision's weights
    assert not torch.equal(ours.conv1.weight, theirs.features[0].weight)
    assert _count(ours) == _count(theirs) == 61_100_840
    result = ours.load_state_dict(theirs.state_dict())  # strict: every key used, none missing
    assert not result.missing_keys and not result.unexpected_keys
    assert torch.equal(ours.conv1.weight, theirs.features[0].weight)
    assert torch.equal(ours.fc8.bias, theirs.classifier[6].bias)
    for size in (63, 131):  # adaptive pooling: any size from 63 up
        x = torch.randn(2, 3, size, size)
        with torch.no_grad():
            out = ours(x)
            assert torch.equal(out, theirs(x)), size
    assert out.std() > 0  # not a trivially equal constant output
    # and torchvision's keys map one-to-one onto ours, in order
    assert [v.shape for v in ours.state_dict().values()] == [
        v.shape for v in theirs.state_dict().values()]


def test_earlier_layout_state_dicts_load(small):
    """Checkpoints saved before the layers were flattened (features.conv1.weight, ...) load."""
    old = {(("classifier." if k.startswith("fc") else "features.") + k): v
           for k, v in small.state_dict().items()}
    fresh = AlexNet(num_classes=10, image_size=67, init="kaiming")
    result = fresh.load_state_dict(old)
    assert not result.missing_keys and not result.unexpected_keys
    assert all(torch.equal(v, small.state_dict()[k]) for k, v in fresh.state_dict().items())


def test_forward_shapes_and_size_helpers(small, tv):
    assert smallest_image_size("paper") == 67 and smallest_image_size("torchvision") == 63
    assert feature_map_size(227) == 6 and feature_map_size(67) == 1
    with torch.no_grad():
        assert small(torch.randn(3, 3, 67, 67)).shape == (3, 10)
    with torch.no_grad():
        assert tv(torch.randn(1, 3, 63, 63)).shape == (1, 1000)
    with pytest.raises(ValueError, match="smallest that fits is 67x67"):
        AlexNet(image_size=66)
    # the plain z=2, s=2 pooling (Section 3.4's comparison) fits smaller inputs: 39 px
    assert smallest_image_size("paper", pool_kernel=2) == 39
    plain = AlexNet(10, image_size=63, overlapping_pool=False)
    with torch.no_grad():
        assert plain(torch.randn(2, 3, 63, 63)).shape == (2, 10)
    with pytest.raises(ValueError, match="smallest that fits is 39x39"):
        AlexNet(image_size=38, overlapping_pool=False)


def test_activations_by_name(paper):
    torch.manual_seed(1)
    x = torch.randn(2, 3, 227, 227)
    names = ["conv1", "relu1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5",
             "fc6", "relu7", "fc8"]
    acts = activations(paper, x, names)
    assert list(acts) == names
    side = {"conv1": 55, "relu1": 55, "pool1": 27, "conv2": 27, "pool2": 13, "conv3": 13,
            "conv4": 13, "conv5": 13, "pool5": 6}
    for name, s in side.items():
        layer = paper.layer(name.replace("relu", "conv").replace("pool", "conv"))
        assert acts[name].shape == (2, layer.out_channels, s, s), name
    assert acts["fc6"].shape == acts["relu7"].shape == (2, 4096)
    assert acts["fc8"].shape == (2, 1000)
    # conv1's output is copied before the in-place ReLU after it overwrites it
    expected = nn.functional.conv2d(x, paper.conv1.weight, paper.conv1.bias, stride=4)
    assert (acts["conv1"] < 0).any()
    torch.testing.assert_close(acts["conv1"], expected)
    torch.testing.assert_close(acts["relu1"], expected.clamp_min(0))
    # the fc8 output is the model's output, and no graph is kept by default
    with torch.no_grad():
        torch.testing.assert_close(acts["fc8"], paper(x))
    assert all(not a.requires_grad for a in acts.values())
    assert all(not m._forward_hooks for m in paper.modules())


def test_activations_with_grad_and_errors(small):
    x = torch.randn(1, 3, 67, 67)
    acts = activations(small, x, "conv5", grad=True)
    assert acts["conv5"].requires_grad
    acts["conv5"].sum().backward()
    assert small.conv1.weight.grad is not None and small.conv1.weight.grad.abs().sum() > 0
    small.zero_grad(set_to_none=True)
    with pytest.raises(KeyError, match="conv1"):
        activations(small, x, ["conv6"])


def test_paper_init_statistics(paper):
    ones = {"conv2", "conv4", "conv5", "fc6", "fc7"}  # Section 5
    for name in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"):
        layer = paper.layer(name)
        w = layer.weight.detach()
        assert abs(w.std().item() - 0.01) < 0.01 * (0.15 if w.numel() > 30_000 else 0.3), name
        assert abs(w.mean().item()) < 0.002, name
        expected_bias = 1.0 if name in ones else 0.0
        assert torch.all(layer.bias == expected_bias), name


def test_kaiming_and_pytorch_inits():
    torch.manual_seed(0)
    m = AlexNet(image_size=67, init="kaiming")
    fan_in = 3 * 11 * 11
    assert m.conv1.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.05)
    assert m.fc6.weight.std().item() == pytest.approx(math.sqrt(2 / 256), rel=0.02)
    assert m.fc8.weight.std().item() == pytest.approx(math.sqrt(1 / 4096), rel=0.02)  # linear
    assert all(torch.all(m.layer(n).bias == 0) for n in ("conv1", "conv2", "fc6", "fc8"))
    m.reset_parameters("pytorch")  # PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    bound = 1 / math.sqrt(fan_in)
    assert m.conv1.bias.abs().max() <= bound and m.conv1.bias.abs().max() > bound / 2
    assert m.conv1.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)


@pytest.mark.parametrize("shape, dtype, words", [
    ((3, 67, 67), torch.float32, r"expects a batch of shape \(N, 3, H, W\).*unsqueeze"),
    ((1, 1, 67, 67), torch.float32, "built for 3 input channel"),
    ((1, 3, 60, 60), torch.float32, "smallest square input .* 67x67"),
    ((1, 3, 68, 68), torch.float32, r"built for 67x67 .*AlexNet\(image_size=68\)"),
    ((1, 3, 67, 67), torch.uint8, r"floating-point.*x.float\(\) / 255"),
])
def test_bad_inputs_raise_clear_errors(small, shape, dtype, words):
    with pytest.raises(ValueError, match=words):
        small(torch.zeros(shape, dtype=dtype))


def test_torchvision_variant_too_small_and_bad_arguments(tv):
    with pytest.raises(ValueError, match="at least 63x63"):
        tv(torch.zeros(1, 3, 62, 62))
    assert conv_output_size(62, 11, 4, 2) == 14  # conv1 still fits; the pooling chain does not
    for kwargs, words in [(dict(variant="vgg"), "variant must be one of"),
                          (dict(init="xavier"), "init must be one of"),
                          (dict(groups=3), "groups must be 1 or 2"),
                          (dict(variant="torchvision", groups=2), "no towers"),
                          (dict(activation="gelu"), "activation must be one of")]:
        with pytest.raises(ValueError, match=words):
            AlexNet(image_size=67, **kwargs)
