r"""Which pixels made the network say "dog"? Three answers, each with its own blind spots.

**Occlusion** (Zeiler & Fergus 2014, Section 4.2): slide a grey patch over the image and record
how much the probability of the class drops,

$$ O_{ij} = p_t(x) - p_t(x \odot \text{patch at } (i s,\ j s)). $$

Model-agnostic and easy to trust, but one forward pass per position, and the answer depends on the
patch size and on what "grey" means (here: 0 after normalization, i.e. the training mean).

**Gradient saliency** (Simonyan, Vedaldi & Zisserman 2014): $M_{uv} = \max_c
|\partial s_t / \partial x_{c,u,v}|$, the sensitivity of the class score $s_t$ (the logit, before
the softmax) to each pixel. One backward pass; but it is a *local* linearization - noisy, and
large where a tiny change matters, not necessarily where the object is.

**Grad-CAM** (Selvaraju et al. 2017): weight the maps $A^k$ of a late conv layer by the mean
gradient of the score, $\alpha_k = \frac{1}{HW}\sum_{ij} \partial s_t / \partial A^k_{ij}$, and
keep the positive part, $L = \mathrm{ReLU}(\sum_k \alpha_k A^k)$. Class-specific and smooth,
but only as sharp as the layer (13x13 for AlexNet's conv5 at 227 px).

All three take *normalized* float images (N, C, H, W), work with any classifier `nn.Module`, run
it in eval mode (restoring its mode afterwards) and return CPU tensors.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .model import eval_mode, find_layer

__all__ = ["occlusion", "occlusion_positions", "saliency", "grad_cam", "upsample"]


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
    value `baseline` covers the image at each position (`occlusion_positions`). Positive =
    the region supported the class. Occluded copies are evaluated `batch_size` at a time."""
    if images.dim() != 4:
        raise ValueError(f"occlusion expects a batch (N, C, H, W), got {tuple(images.shape)}")
    n, _, h, w = images.shape
    ys, xs = occlusion_positions(h, patch, stride), occlusion_positions(w, patch, stride)
    t = _targets(targets, n, images.device)
    corners = [(y, x) for y in ys for x in xs]
    out = torch.empty(n, len(corners))
    with eval_mode(model):
        base = model(images).float().softmax(-1).gather(1, t[:, None])[:, 0]
        for i in range(n):
            drops = []
            for start in range(0, len(corners), batch_size):
                chunk = corners[start:start + batch_size]
                batch = images[i:i + 1].repeat(len(chunk), 1, 1, 1)
                for b, (y, x) in enumerate(chunk):
                    batch[b, :, y:y + patch, x:x + patch] = baseline
                p = model(batch).float().softmax(-1)[:, t[i]]
                drops.append(base[i] - p)
            out[i] = torch.cat(drops).cpu()
    return out.view(n, len(ys), len(xs))


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

    # Not `model.activations`: its copies are off the path to the scores; the gradient must be
    # taken with respect to the maps the next layers really read.
    def hook(module, inputs, output):
        store["maps"] = output
        # Hand the next layers a copy: an in-place ReLU after `layer` then changes the copy,
        # not the maps we differentiate with respect to.
        return output.clone()

    handle = find_layer(model, layer).register_forward_hook(hook)
    try:
        with eval_mode(model), torch.enable_grad():
            scores = model(images.detach()).gather(1, t[:, None]).sum()
            maps = store["maps"]
            (grad,) = torch.autograd.grad(scores, maps)
    finally:
        handle.remove()
    weights = grad.mean(dim=(-2, -1), keepdim=True)                 # alpha_k, (N, K, 1, 1)
    cam = F.relu((weights * maps.detach()).sum(1)).cpu()            # (N, h, w)
    return upsample(cam, size) if size is not None else cam


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinearly resize (N, h, w) maps to (N, *size), e.g. to lay them over the images."""
    return F.interpolate(maps[:, None].float(), size=tuple(size), mode="bilinear",
                         align_corners=False)[:, 0]
