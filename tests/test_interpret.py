"""Occlusion, saliency and Grad-CAM on models whose answer we know, and fc7 embeddings."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from alexnet_edu import AlexNet, activations
from alexnet_edu.notebook import interpret
from alexnet_edu.notebook.embeddings import extract_features, nearest_neighbours
from alexnet_edu.notebook.interpret import grad_cam, occlusion, occlusion_positions, saliency

REGION = (slice(4, 10), slice(12, 20))   # rows 4..9, columns 12..19 of a 24 x 24 image


class RegionModel(nn.Module):
    """Two classes; logit 0 = weighted sum of channel 0 inside REGION, logit 1 = 0."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter((torch.randn(6, 8) * 0.3 + 1.0) * 0.05)  # logits ~ 1

    def forward(self, x):
        s = (x[:, 0, REGION[0], REGION[1]] * self.weight).sum((1, 2))
        return torch.stack([s, torch.zeros_like(s)], 1)


def _region_mask(h=24, w=24) -> torch.Tensor:
    mask = torch.zeros(h, w, dtype=torch.bool)
    mask[REGION] = True
    return mask


def test_saliency_is_the_weight_inside_the_region_and_zero_outside() -> None:
    torch.manual_seed(0)
    model = RegionModel()
    sal = saliency(model, torch.randn(2, 3, 24, 24), targets=0)
    assert sal.shape == (2, 24, 24)
    mask = _region_mask()
    assert (sal[:, ~mask] == 0).all()
    assert torch.allclose(sal[0][REGION], model.weight.detach().abs())


def _occlusion_by_loop(model, image, target, patch, stride, baseline=0.0):
    """The definition, one occluded copy at a time."""
    with torch.no_grad():
        p0 = model(image[None]).softmax(-1)[0, target]
        rows = []
        for y in range(0, image.shape[1] - patch + 1, stride):
            row = []
            for x in range(0, image.shape[2] - patch + 1, stride):
                occluded = image.clone()
                occluded[:, y:y + patch, x:x + patch] = baseline
                row.append(p0 - model(occluded[None]).softmax(-1)[0, target])
            rows.append(torch.stack(row))
    return torch.stack(rows)


def test_occlusion_matches_the_loop_and_is_zero_away_from_the_region() -> None:
    torch.manual_seed(0)
    model = RegionModel()
    images = torch.rand(2, 3, 24, 24) + 0.5               # positive: the region raises logit 0
    got = occlusion(model, images, targets=[0, 1], patch=4, stride=2, batch_size=7)
    ys, xs = occlusion_positions(24, 4, 2), occlusion_positions(24, 4, 2)
    assert got.shape == (2, len(ys), len(xs)) == (2, 11, 11)
    for i, t in enumerate([0, 1]):
        assert torch.allclose(got[i], _occlusion_by_loop(model, images[i], t, 4, 2), atol=1e-6)
    for a, y in enumerate(ys):
        for b, x in enumerate(xs):
            overlaps = y < 10 and y + 4 > 4 and x < 20 and x + 4 > 12
            if overlaps:
                assert got[0, a, b] > 0, (y, x)            # covering evidence lowers p(class 0)
            else:
                assert got[0, a, b] == 0, (y, x)
    same_image = occlusion(model, images[:1].expand(2, -1, -1, -1), [0, 1], patch=4, stride=2)
    assert torch.allclose(same_image[1], -same_image[0], atol=1e-6)  # two classes: p1 = 1 - p0


def test_occlusion_rejects_a_patch_larger_than_the_image() -> None:
    with pytest.raises(ValueError, match="patch"):
        occlusion(RegionModel(), torch.zeros(1, 3, 24, 24), 0, patch=30)


class TwoChannelModel(nn.Module):
    """feat (2 channels) -> logit c = w_c * sum of channel c: Grad-CAM for class c is known."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(OrderedDict(
            feat=nn.Conv2d(2, 2, 1, bias=False), relu=nn.ReLU(inplace=True),
            pool=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten()))
        with torch.no_grad():
            self.net.feat.weight.copy_(torch.eye(2).view(2, 2, 1, 1))
        self.w = torch.tensor([2.0, 3.0])

    def forward(self, x):
        return self.net(x) * self.w * 64                    # 8 x 8 maps: mean * 64 = sum


def test_grad_cam_highlights_the_class_object_exactly() -> None:
    x = torch.zeros(1, 2, 8, 8)
    x[0, 0, :3, :3] = 1.0                                  # class 0's "object", top-left
    x[0, 1, 5:, 5:] = 2.0                                  # class 1's "object", bottom-right
    model = TwoChannelModel()
    for c in (0, 1):
        cam = grad_cam(model, x, c, layer="net.relu")
        # d logit_c / d A^k = w_c for k == c, else 0  =>  L = ReLU(w_c * A^c)
        assert torch.allclose(cam[0], model.w[c] * x[0, c]), c
    # The layer *before* the in-place ReLU must keep its negative values (the hook hands the
    # ReLU a copy). With w_1 < 0, alpha_1 = w_1 * (share of positive units) < 0, so the map is
    # positive exactly where A^1 is negative: it would be 0 there if the ReLU had clipped A^1.
    model.w = torch.tensor([2.0, -3.0])
    x[0, 1, 0, 0] = -1.0
    cam = grad_cam(model, x, 1, layer="net.feat")
    alpha = -3.0 * 9 / 64                                  # 9 of the 64 units of A^1 are > 0
    assert torch.allclose(cam[0], torch.relu(alpha * x[0, 1]))
    assert cam[0, 0, 0] > 0


def test_grad_cam_on_alexnet_matches_splitting_the_network_by_hand() -> None:
    torch.manual_seed(0)
    model = AlexNet(num_classes=5, image_size=67, init="kaiming").eval()
    x = torch.randn(2, 3, 67, 67)
    cam = grad_cam(model, x, [1, 3])
    # independent computation: run the features up to relu5, differentiate the rest
    names = list(model._modules)   # every layer of the Sequential, in forward order
    a = x
    for name in names[:names.index("relu5") + 1]:
        a = model._modules[name](a)
    a = a.detach().requires_grad_(True)
    logits = a
    for name in names[names.index("relu5") + 1:]:
        logits = model._modules[name](logits)
    logits.gather(1, torch.tensor([[1], [3]])).sum().backward()
    expected = torch.relu((a.grad.mean((2, 3), keepdim=True) * a).sum(1)).detach()
    assert cam.shape == (2, 3, 3)
    assert torch.allclose(cam, expected, atol=1e-5)
    assert grad_cam(model, x, [1, 3], size=(67, 67)).shape == (2, 67, 67)
    assert not model.training


# --- embeddings -------------------------------------------------------------------------------

def test_extract_features_is_batched_graph_free_and_matches_activations() -> None:
    torch.manual_seed(0)
    model = AlexNet(num_classes=4, image_size=67, init="kaiming")
    model.train()                                          # extract must switch dropout off
    x = torch.randn(5, 3, 67, 67)
    labels = torch.tensor([0, 1, 2, 3, 0])
    feats, got_labels = extract_features(model, (x, labels), layer="relu7", batch_size=2,
                                         progress=False)
    assert feats.shape == (5, 4096) and torch.equal(got_labels, labels)
    assert not feats.requires_grad and feats.grad_fn is None
    assert model.training                                  # mode restored
    model.eval()
    assert torch.allclose(feats, activations(model, x, "relu7")["relu7"], atol=1e-5)
    pooled, _ = extract_features(model, x, layer="pool5", progress=False)
    assert pooled.shape == (5, 256)                       # 256 x 1 x 1, flattened


def test_extract_features_applies_a_transform_to_uint8_images() -> None:
    from alexnet_edu.transforms import BatchTransform

    model = AlexNet(num_classes=4, image_size=67, init="kaiming").eval()
    images = torch.randint(0, 256, (3, 3, 80, 80), dtype=torch.uint8)
    transform = BatchTransform(67, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), train=False)
    feats, _ = extract_features(model, (images, torch.zeros(3)), transform=transform,
                                progress=False)
    assert torch.allclose(feats, activations(model, transform(images), "relu7")["relu7"],
                          atol=1e-5)
    with pytest.raises(ValueError, match="transform"):
        extract_features(model, images, progress=False)


def test_nearest_neighbours_matches_brute_force() -> None:
    torch.manual_seed(0)
    gallery = torch.randn(30, 7)
    queries = gallery[:4] + 0.01 * torch.randn(4, 7)
    dist, idx = nearest_neighbours(queries, gallery, k=3)
    brute = ((queries[:, None] - gallery[None]) ** 2).sum(-1).sqrt()
    assert torch.equal(idx[:, 0], torch.arange(4))
    assert torch.equal(idx, brute.argsort(1)[:, :3])
    assert torch.allclose(dist, brute.sort(1).values[:, :3], atol=1e-5)
    _, idx = nearest_neighbours(gallery, gallery, k=1, exclude_self=True)
    assert (idx[:, 0] != torch.arange(30)).all()
    _, idx = nearest_neighbours(gallery * 5, gallery, k=1, metric="cosine")
    assert torch.equal(idx[:, 0], torch.arange(30))        # cosine ignores the scale
    with pytest.raises(ValueError, match="k must be"):
        nearest_neighbours(gallery, gallery, k=31)


# --- sanity checks (Adebayo et al. 2018) ------------------------------------------------------

def test_rank_correlation_is_spearmans_and_ssim_is_one_only_for_the_same_structure() -> None:
    from scipy.stats import spearmanr

    torch.manual_seed(0)
    a, b = torch.rand(3, 9, 9), torch.rand(3, 9, 9)
    got = interpret.rank_correlation(a, b)
    expected = [spearmanr(x.flatten(), y.flatten()).statistic for x, y in zip(a, b)]
    assert torch.allclose(got, torch.tensor(expected, dtype=torch.float32), atol=1e-6)
    assert torch.allclose(interpret.rank_correlation(a, a.exp()), torch.ones(3))  # ranks only
    assert torch.allclose(interpret.rank_correlation(a, -a), -torch.ones(3))
    assert interpret.rank_correlation(a[:1], torch.zeros(1, 9, 9)).isnan().all()  # no ranking
    # maps of different sizes are compared at the larger one
    assert interpret.rank_correlation(torch.rand(2, 3, 3), torch.rand(2, 9, 9)).shape == (2,)

    assert torch.allclose(interpret.ssim(a, 5 * a + 2), torch.ones(3), atol=1e-5)  # min-max
    assert torch.allclose(interpret.ssim(a, b), interpret.ssim(b, a), atol=1e-6)
    assert (interpret.ssim(a, b) < 0.3).all() and (interpret.ssim(a, -a) < 0).all()


def test_ssim_matches_the_formula_at_one_window() -> None:
    """One 11 x 11 map = one window position: eq. 13 of Wang et al. with Gaussian weights."""
    torch.manual_seed(1)
    a, b = torch.rand(1, 11, 11).double(), torch.rand(1, 11, 11).double()
    unit = [(t - t.min()) / (t.max() - t.min()) for t in (a, b)]
    g = torch.exp(-(torch.arange(11.0) - 5) ** 2 / (2 * 1.5 ** 2)).double()
    w = g[:, None] * g[None, :]
    w = w / w.sum()
    x, y = unit[0][0], unit[1][0]
    mx, my = (w * x).sum(), (w * y).sum()
    vx, vy = (w * (x - mx) ** 2).sum(), (w * (y - my) ** 2).sum()
    cxy = (w * (x - mx) * (y - my)).sum()
    c1, c2 = 1e-4, 9e-4
    expected = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    assert abs(interpret.ssim(a, b).item() - expected.item()) < 1e-5


def test_edge_map_ignores_the_model_and_finds_the_edge() -> None:
    x = torch.zeros(1, 3, 8, 8)
    x[..., 4:] = 1.0                                            # a vertical edge at column 4
    edges = interpret.edge_map(AlexNet(num_classes=2, image_size=67), x, 0)
    assert edges.shape == (1, 8, 8)
    assert set(edges[0].nonzero()[:, 1].tolist()) == {3, 4}      # either side of the edge
    assert torch.equal(edges, interpret.edge_map(nn.Identity(), x, 1))


def test_cascading_randomization_resets_the_named_layers_top_down_and_leaves_the_model() -> None:
    torch.manual_seed(0)
    model = AlexNet(num_classes=3, image_size=67, init="kaiming")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    layers = ["fc8", "fc7", "conv5", "conv1"]
    steps = list(interpret.cascading_randomization(model, layers, seed=3))
    assert [name for name, _ in steps] == layers
    for k, (name, randomized) in enumerate(steps):
        state = randomized.state_dict()
        for layer in model.layer_names() if hasattr(model, "layer_names") else layers:
            key = f"{layer}.weight"
            if key not in state:
                continue
            changed = not torch.equal(state[key], before[key])
            assert changed == (layer in layers[:k + 1]), (name, layer)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    again = list(interpret.cascading_randomization(model, layers, seed=3))
    assert torch.equal(again[-1][1].conv1.weight, steps[-1][1].conv1.weight)   # seeded


class BlobClassifier(nn.Module):
    """A linear classifier whose class-0 weights form a smooth blob: a stand-in for a trained
    model, whose gradient saliency is |weights| (the blob) whatever the image."""

    def __init__(self):
        super().__init__()
        self.fc8 = nn.Linear(3 * 16 * 16, 2)
        yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
        blob = torch.exp(-((yy - 5) ** 2 + (xx - 10) ** 2) / 8)
        with torch.no_grad():
            self.fc8.weight.zero_()
            self.fc8.weight[0] = 0.02 * blob.repeat(3, 1, 1).flatten()   # logit ~ 1
            self.fc8.bias.zero_()

    def forward(self, x):
        return self.fc8(x.flatten(1))


def test_sanity_check_passes_a_model_dependent_method_and_fails_an_edge_detector() -> None:
    torch.manual_seed(0)
    model = BlobClassifier()
    images = torch.rand(4, 3, 16, 16)
    images[..., 8:] += 1.0                                      # an edge the detector will find
    methods = {"saliency": interpret.saliency, "edges": interpret.edge_map,
               "occlusion": lambda m, x, t: interpret.occlusion(m, x, t, patch=4, stride=2)}
    result = interpret.sanity_check(model, images, 0, methods, layers=["fc8"])
    assert result["stages"] == ["trained", "fc8"]
    assert all(s[0] == pytest.approx(1.0) for s in result["spearman"].values())
    assert all(s[0] == pytest.approx(1.0, abs=1e-5) for s in result["ssim"].values())
    # randomized fc8: the blob is gone from saliency and occlusion...
    assert abs(result["spearman"]["saliency"][1]) < 0.3
    assert abs(result["spearman"]["occlusion"][1]) < 0.5        # 49 positions: chance ~ 0.2
    assert result["ssim"]["saliency"][1] < 0.3
    # ...but an explanation that never looks at the model cannot tell: it fails the check
    assert result["spearman"]["edges"][1] == pytest.approx(1.0)
    assert result["ssim"]["edges"][1] == pytest.approx(1.0, abs=1e-5)
    assert torch.equal(result["maps"]["saliency"][0], interpret.saliency(model, images, 0))


def test_train_on_shuffled_labels_memorizes_a_permutation_on_a_fresh_copy() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(OrderedDict(flat=nn.Flatten(), fc7=nn.Linear(3 * 8 * 8, 64),
                                      relu=nn.ReLU(), fc8=nn.Linear(64, 4)))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images, labels = torch.randn(32, 3, 8, 8), torch.arange(32) % 4
    fitted, accuracy = interpret.train_on_shuffled_labels(model, images, labels, epochs=200,
                                                          lr=1e-2, batch_size=8, seed=1)
    assert accuracy == 1.0 and not fitted.training
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # untouched
    with torch.no_grad():
        predicted = fitted(images).argmax(1)
    torch.manual_seed(1)
    shuffled = labels[torch.randperm(32)]
    assert torch.equal(predicted, shuffled) and not torch.equal(shuffled, labels)
