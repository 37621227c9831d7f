r"""Which pixels made the network say "dog"? Three answers, each with its blind spots (notebook
09), for *normalized* images (N, C, H, W) and any classifier (run in eval mode, its mode restored):

- **occlusion** (Zeiler & Fergus 2014, Section 4.2): the class probability's drop when a grey patch
  (0 after normalization: the training mean) covers each position; one forward pass per position;
- **saliency** (Simonyan et al. 2014): $M_{uv} = \max_c |\partial s_t / \partial x_{c,u,v}|$ for
  the class logit $s_t$; one backward pass, a local and noisy linearization;
- **Grad-CAM** (Selvaraju et al. 2017): $\mathrm{ReLU}(\sum_k \alpha_k A^k)$, $\alpha_k$ the mean
  gradient of $s_t$ over map $A^k$ of a late conv layer; smooth, as coarse as the layer.

**Sanity checks** (Adebayo et al. 2018): an explanation of the *model* must change with the model.
`sanity_check` compares each method's maps as the layers are re-initialized from fc8 down;
`edge_map`, blind to the model, is the reference that fails; `train_on_shuffled_labels` is their
second test. Results are CPU tensors.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..hooks import eval_mode, find_layer, on_outputs
from .viz import to_unit_range

__all__ = ["occlusion", "occlusion_positions", "saliency", "grad_cam", "upsample", "edge_map",
           "rank_correlation", "ssim", "cascading_randomization", "sanity_check",
           "train_on_shuffled_labels", "CASCADE_LAYERS"]

Method = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
CASCADE_LAYERS = ("fc8", "fc7", "fc6", "conv5", "conv4", "conv3", "conv2", "conv1")


def _targets(targets: int | Sequence[int] | torch.Tensor, n: int, device) -> torch.Tensor:
    t = torch.as_tensor(targets, dtype=torch.long, device=device).flatten()
    if t.numel() == 1:
        t = t.expand(n)
    if t.numel() != n:
        raise ValueError(f"got {n} images but {t.numel()} target classes")
    return t


def occlusion_positions(size: int, patch: int, stride: int) -> list[int]:
    """Top-left corners along one side: 0, stride, 2*stride, ... up to size - patch."""
    if not 1 <= patch <= size or stride < 1:
        raise ValueError(f"need 1 <= patch ({patch}) <= image size ({size}) and stride >= 1 "
                         f"(got stride {stride})")
    return list(range(0, size - patch + 1, stride))


@torch.no_grad()
def occlusion(model: nn.Module, images: torch.Tensor, targets: int | Sequence[int] | torch.Tensor,
              patch: int = 16, stride: int = 8, baseline: float = 0.0,
              batch_size: int = 64) -> torch.Tensor:
    """(N, rows, cols) drop in the target class's probability when a `patch` x `patch` square of
    value `baseline` covers each position (`occlusion_positions`): positive = it supported it."""
    if images.dim() != 4:
        raise ValueError(f"occlusion expects a batch (N, C, H, W), got {tuple(images.shape)}")
    n, _, h, w = images.shape
    ys, xs = occlusion_positions(h, patch, stride), occlusion_positions(w, patch, stride)
    t = _targets(targets, n, images.device)
    jobs = [(i, y, x) for i in range(n) for y in ys for x in xs]   # one occluded copy each
    drops = []
    with eval_mode(model):
        # the probability of each row's target class
        prob = lambda x, rows: model(x).float().softmax(-1).gather(1, t[rows, None])[:, 0]
        base = prob(images, slice(None))
        for start in range(0, len(jobs), batch_size):
            chunk = jobs[start:start + batch_size]
            rows = torch.tensor([i for i, _, _ in chunk], device=images.device)
            batch = images[rows]                                     # a copy
            for b, (_, y, x) in enumerate(chunk):
                batch[b, :, y:y + patch, x:x + patch] = baseline
            drops.append(base[rows] - prob(batch, rows))
    return torch.cat(drops).cpu().view(n, len(ys), len(xs))


def saliency(model: nn.Module, images: torch.Tensor,
             targets: int | Sequence[int] | torch.Tensor) -> torch.Tensor:
    """(N, H, W) gradient saliency: max over channels of |d logit_target / d pixel|."""
    t = _targets(targets, len(images), images.device)
    x = images.detach().clone().requires_grad_(True)
    with eval_mode(model), torch.enable_grad():
        scores = model(x).gather(1, t[:, None]).sum()  # images are independent: one backward
        (grad,) = torch.autograd.grad(scores, x)
    return grad.abs().amax(dim=1).cpu()


def grad_cam(model: nn.Module, images: torch.Tensor, targets: int | Sequence[int] | torch.Tensor,
             layer: str = "relu5", size: tuple[int, int] | None = None) -> torch.Tensor:
    """(N, h, w) Grad-CAM maps of `layer` (default: conv5 after its ReLU) for the target classes,
    at the layer's resolution, or resized to `size` (e.g. the image's (H, W)) when given."""
    t = _targets(targets, len(images), images.device)
    store: dict[str, torch.Tensor] = {}

    def keep(name: str, output: torch.Tensor) -> torch.Tensor:
        # Differentiate with respect to the maps the next layers read (not a copy off the path
        # to the scores), and hand them a copy so that an in-place ReLU changes the copy.
        store["maps"] = output
        return output.clone()

    with on_outputs(model, [layer], keep), eval_mode(model), torch.enable_grad():
        scores = model(images.detach()).gather(1, t[:, None]).sum()
        maps = store["maps"]
        (grad,) = torch.autograd.grad(scores, maps)
    weights = grad.mean(dim=(-2, -1), keepdim=True)                 # alpha_k, (N, K, 1, 1)
    cam = F.relu((weights * maps.detach()).sum(1)).cpu()            # (N, h, w)
    return upsample(cam, size) if size is not None else cam


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinearly resize (N, h, w) maps to (N, *size), e.g. to lay them over the images."""
    return F.interpolate(maps[:, None].float(), size=tuple(size), mode="bilinear",
                         align_corners=False)[:, 0]


def edge_map(model: nn.Module, images: torch.Tensor,
             targets: int | Sequence[int] | torch.Tensor) -> torch.Tensor:
    """(N, H, W) Sobel edge strength of the images, max over channels. It ignores `model` and
    `targets` on purpose: the reference "explanation" that must fail a sanity check."""
    x = images.detach().float().cpu()
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    kernels = torch.stack([kx, kx.T])[:, None]                             # (2, 1, 3, 3)
    flat = F.pad(x.flatten(0, 1)[:, None], (1, 1, 1, 1), mode="replicate")
    grad = F.conv2d(flat, kernels)                                         # (N*C, 2, H, W)
    return grad.pow(2).sum(1).sqrt().view(*x.shape).amax(1)


def _same_size(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, ...]:
    a, b = (torch.as_tensor(t).detach().cpu().float().reshape(-1, *t.shape[-2:]) for t in (a, b))
    if len(a) != len(b):
        raise ValueError(f"got {len(a)} maps and {len(b)} maps to compare")
    size = tuple(max(x, y) for x, y in zip(a.shape[-2:], b.shape[-2:]))
    return tuple(t if t.shape[-2:] == size else upsample(t, size) for t in (a, b))


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N,) Spearman rank correlation over pixels between maps a[i] and b[i] (N, h, w); maps of
    different sizes are resized to the larger. NaN where a map is constant (no ranking)."""
    from scipy.stats import rankdata

    # Spearman's rho is Pearson's correlation of the ranks (ties share their mean rank)
    ra, rb = (torch.from_numpy(rankdata(t.flatten(1).numpy(), axis=1)) for t in _same_size(a, b))
    return torch.stack([torch.corrcoef(torch.stack(pair))[0, 1] for pair in zip(ra, rb)]).float()


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """(N,) structural similarity (Wang et al. 2004, eq. 13; 1 = the same map) of maps a[i] and
    b[i] each scaled to [0, 1] (so L = 1, C1 = (0.01 L)^2, C2 = (0.03 L)^2), with their Gaussian
    window (11 taps, sigma 1.5; fewer on small maps), averaged over the valid positions."""
    a, b = (to_unit_range(t, dims=(-2, -1))[:, None].double() for t in _same_size(a, b))
    taps = min(window, *a.shape[-2:])
    taps -= 1 - taps % 2                                                   # odd
    g = torch.exp(-(torch.arange(taps, dtype=torch.float64) - taps // 2) ** 2 / (2 * sigma ** 2))
    w = (torch.outer(g, g) / g.sum() ** 2)[None, None]                    # normalized 2-D window
    blur = lambda t: F.conv2d(t, w)
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)
             / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2)))
    return index.mean((1, 2, 3)).float()


@contextlib.contextmanager
def _seeded(seed: int, model: nn.Module) -> Iterator[None]:
    """Random draws from `seed` inside; afterwards the global generators are as they were: the
    CPU's, and those of the GPUs `model` is on (it draws its weights and dropout masks there)."""
    gpus = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=gpus):
        torch.manual_seed(seed)
        yield


def cascading_randomization(model: nn.Module, layers: Sequence[str] = CASCADE_LAYERS,
                            seed: int = 0) -> Iterator[tuple[str, nn.Module]]:
    """Yield (layer, copy of `model`) with `layers` re-initialized cumulatively, top first: fc8,
    then fc8 and fc7, ... by their `reset_parameters` (PyTorch's defaults), seeded with `seed`."""
    current = copy.deepcopy(model)
    with _seeded(seed, model):
        for name in layers:
            layer = find_layer(current, name)
            if not hasattr(layer, "reset_parameters"):
                raise ValueError(f"layer {name!r} has no weights to randomize")
            layer.reset_parameters()
            yield name, copy.deepcopy(current)


def sanity_check(model: nn.Module, images: torch.Tensor,
                 targets: int | Sequence[int] | torch.Tensor, methods: Mapping[str, Method],
                 layers: Sequence[str] = CASCADE_LAYERS, seed: int = 0) -> dict:
    """Adebayo et al.'s cascading randomization test: each method(model, images, targets) ->
    (N, h, w) maps runs on the trained model, then after each step of `cascading_randomization`.
    Returns {"stages": ["trained", *layers], "maps": {method: [maps per stage]}, "spearman",
    "ssim": {method: [mean over images per stage]}}; a method passes when its scores fall."""
    t = _targets(targets, len(images), images.device)
    maps = {name: [method(model, images, t).detach().cpu()] for name, method in methods.items()}
    for _, randomized in cascading_randomization(model, layers, seed):
        for name, method in methods.items():
            maps[name].append(method(randomized, images, t).detach().cpu())
    spearman = {name: [rank_correlation(m[0], x).nanmean().item() for x in m]
                for name, m in maps.items()}
    similar = {name: [ssim(m[0], x).mean().item() for x in m] for name, m in maps.items()}
    return {"stages": ["trained", *layers], "maps": maps, "spearman": spearman, "ssim": similar}


def train_on_shuffled_labels(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                             epochs: int = 50, lr: float = 3e-4, batch_size: int = 32,
                             seed: int = 0) -> tuple[nn.Module, float]:
    """Adebayo et al.'s data randomization test: a re-initialized copy of `model` trained with
    Adam on `images` (normalized) and `labels` permuted by `seed`, until it fits them all or
    `epochs` run out. Returns the copy (eval mode) and its accuracy on the permuted labels."""
    with _seeded(seed, model):
        shuffled = labels[torch.randperm(len(labels))].to(images.device)
        copy_ = copy.deepcopy(model)
        for module in copy_.modules():
            if module is not copy_ and hasattr(module, "reset_parameters"):
                module.reset_parameters()
        optimizer = torch.optim.Adam(copy_.parameters(), lr=lr)
        accuracy = 0.0
        for _ in range(epochs):
            for module in copy_.modules():   # dropout off: memorizing takes far fewer steps
                module.training = not isinstance(module, nn.Dropout)
            for batch in torch.randperm(len(images)).split(batch_size):
                loss = F.cross_entropy(copy_(images[batch]), shuffled[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            with eval_mode(copy_), torch.no_grad():
                predicted = torch.cat([copy_(part).argmax(1) for part in images.split(256)])
            accuracy = (predicted == shuffled).float().mean().item()
            if accuracy == 1.0:
                break
    return copy_.eval(), accuracy
