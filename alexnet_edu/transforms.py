"""What the network sees (§2, §4.1 of the paper): resizing, random crops, mirror images, PCA
colour noise and the ten test patches, done on whole uint8 batches on the model's device:

    transform = BatchTransform(227, splits.mean, splits.std, train=True, pca=splits.pca,
                               out_channels=3).to(device)
    x = transform(images)              # uint8 N x C x H x W -> float N x 3 x 227 x 227, normalized

Whole batches, not per-image PIL transforms: upsampling image by image is the bottleneck on a
small CPU. 227 stands for the paper's 224 (see `shapes`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.torch_version import TorchVersion

__all__ = ["BatchTransform", "resize_batch", "center_crop", "crop_and_flip", "pca_lighting",
           "ten_crop", "PAPER_RESIZE", "PAPER_CROP"]

PAPER_RESIZE, PAPER_CROP = 256, 227               # §2 / §4.1 (the paper's 224 is 227, see shapes)


def resize_batch(images: Tensor, size: int) -> Tensor:
    """Float batch N x C x H x W -> N x C x size x size: shorter side to `size` (bilinear,
    antialiased when shrinking), then the central square (§2)."""
    h, w = images.shape[-2:]
    if min(h, w) == size:   # already that size (e.g. shrunk as it was read): only the crop
        return center_crop(images, size)
    scale = size / min(h, w)
    new_size = (max(size, round(h * scale)), max(size, round(w * scale)))
    antialias = min(h, w) > size
    on_cpu = antialias and not antialias_runs_on(images.device.type)   # MPS before torch 2.7
    out = F.interpolate(images.cpu() if on_cpu else images, size=new_size, mode="bilinear",
                        align_corners=False, antialias=antialias)
    return center_crop(out.to(images.device), size)


def antialias_runs_on(device_type: str, version: str | None = None) -> bool:
    """Whether antialiased bilinear shrinking runs on `device_type` with torch `version`: not on
    Apple's MPS before torch 2.7, which lacks the kernel (`resize_batch` then uses the CPU)."""
    return device_type != "mps" or TorchVersion(version or torch.__version__) >= (2, 7)


def center_crop(images: Tensor, size: int) -> Tensor:
    """The central size x size patch of N x C x H x W."""
    h, w = images.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return images[..., top:top + size, left:left + size]


def crop_and_flip(images: Tensor, size: int, top: Tensor, left: Tensor, flip: Tensor) -> Tensor:
    """Per-image crops `images[n, :, top[n]:top[n]+size, left[n]:left[n]+size]`, mirrored
    where `flip[n]`, as one gather for the whole batch."""
    n = images.shape[0]
    steps = torch.arange(size, device=images.device)
    rows = top.to(images.device)[:, None] + steps                           # N x size
    cols = left.to(images.device)[:, None] + torch.where(
        flip.to(images.device)[:, None], size - 1 - steps, steps)           # N x size
    batch = torch.arange(n, device=images.device)[:, None, None]
    # advanced indices around a slice: result is N x size x size x C
    out = images[batch, :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2)


def pca_lighting(images: Tensor, eigval: Tensor, eigvec: Tensor, alpha: Tensor) -> Tensor:
    r"""§4.1's colour noise: add $\mathbf P\,[\alpha_1 \sqrt{\lambda_1}, \alpha_2 \sqrt{\lambda_2},
    \alpha_3 \sqrt{\lambda_3}]^\top$ to every RGB pixel of image n, with the eigenvectors p_i
    (columns of `eigvec`) and eigenvalues l_i (variances, as `data.rgb_pca` returns them) of the
    pixels' 3 x 3 covariance, and that image's alpha (N x 3, drawn from N(0, 0.1^2)).

    The paper prints alpha_i * lambda_i. Krizhevsky's released code multiplies by the standard
    deviation sqrt(l_i) instead (cuda-convnet2, convdata.py: `ColorNoiseMakerThread` scales its
    draws by `pca_stdevs`), and so do we: the shift along p_i is alpha_i times the data's own
    spread along p_i, whatever the pixel scale, where alpha * lambda (a variance) changes with
    it (fb.resnet.torch, GluonCV and chainercv multiply by lambda on the 0-1 scale: a smaller
    shift). The RMS length of the shift is std(alpha) * sqrt(l_1 + l_2 + l_3)."""
    shift = (alpha.to(eigval) * eigval.clamp_min(0).sqrt()) @ eigvec.T       # N x 3
    return images + shift[:, :, None, None].to(images.dtype)


def ten_crop(images: Tensor, size: int) -> Tensor:
    """§4.1 test-time patches: N x C x H x W -> N x 10 x C x size x size, in the order
    top-left, top-right, bottom-left, bottom-right, centre, then the same five mirrored."""
    h, w = images.shape[-2:]
    if h < size or w < size:
        raise ValueError(f"ten_crop: images {h}x{w} are smaller than the crop {size}")
    five = [images[..., :size, :size], images[..., :size, w - size:],
            images[..., h - size:, :size], images[..., h - size:, w - size:],
            center_crop(images, size)]
    return torch.stack(five + [c.flip(-1) for c in five], dim=1)


class BatchTransform(nn.Module):
    """uint8 batch N x C x H x W -> normalized float N x out_channels x S x S, on the device of
    this module (move it with `.to(device)`; the input follows).

    train: resize to R = round(S * 256 / 227), random S x S crop, random horizontal flip and PCA
    lighting (§4.1). eval: resize to R, central S x S crop; `ten_crop_batch` gives the ten test
    patches (§4.1). With 1-channel data and `out_channels=3` the grey channel is repeated."""

    def __init__(self, image_size: int = PAPER_CROP, mean: tuple[float, ...] = (0.5,),
                 std: tuple[float, ...] = (0.5,), train: bool = False,
                 pca: tuple[Tensor, Tensor] | None = None, pca_std: float = 0.1,
                 flip: bool = True, out_channels: int | None = None,
                 resize_size: int | None = None):
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(f"mean has {len(mean)} channels but std has {len(std)}")
        self.image_size = int(image_size)
        # the paper's 256 : 227 by default; torchvision's ImageNet weights need 256 for 224
        self.resize_size = int(resize_size or round(image_size * PAPER_RESIZE / PAPER_CROP))
        self.train_mode, self.flip, self.pca_std = train, flip, float(pca_std)
        self.in_channels = c = len(mean)
        self.out_channels = out = out_channels or c
        if out != c and (c, out) != (1, 3):
            raise ValueError(f"cannot turn {c}-channel data into {out} channels (only grey -> 3 "
                             "by repetition)")
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)
        self.use_pca = pca is not None and self.pca_std > 0
        for name, value in zip(("eigval", "eigvec"), pca or (torch.zeros(3), torch.eye(3))):
            self.register_buffer(name, torch.as_tensor(value).float(), persistent=False)

    def _to_float(self, images: Tensor) -> Tensor:
        if images.shape[1] != self.in_channels:
            raise ValueError(f"expected {self.in_channels}-channel images (the mean/std given), "
                             f"got shape {tuple(images.shape)}")
        x = images.to(self.mean.device, non_blocking=True)
        x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
        return resize_batch(x, self.resize_size)

    def _finish(self, x: Tensor) -> Tensor:
        x = (x - self.mean) / self.std
        return x.expand(*x.shape[:-3], self.out_channels, *x.shape[-2:]).contiguous()

    def forward(self, images: Tensor) -> Tensor:
        x = self._to_float(images)
        n, size, r = x.shape[0], self.image_size, self.resize_size
        if not self.train_mode:
            return self._finish(center_crop(x, size).contiguous())
        top = torch.randint(0, r - size + 1, (n,), device=x.device)
        left = torch.randint(0, r - size + 1, (n,), device=x.device)
        flip = (torch.rand(n, device=x.device) < 0.5) if self.flip else torch.zeros(
            n, dtype=torch.bool, device=x.device)
        x = crop_and_flip(x, size, top, left, flip)
        if self.use_pca and self.in_channels == 3:
            alpha = torch.randn(n, 3, device=x.device) * self.pca_std
            x = pca_lighting(x, self.eigval, self.eigvec, alpha)
        return self._finish(x.contiguous())

    def ten_crop_batch(self, images: Tensor) -> Tensor:
        """The ten test patches of each image, normalized: N x 10 x out_channels x S x S."""
        return self._finish(ten_crop(self._to_float(images), self.image_size))
