"""PCA lighting (§4.1) adds noise in units of the data's standard deviation along each principal
axis (alpha * sqrt(lambda), as Krizhevsky's cuda-convnet2 does), so its size does not depend on
the pixel scale."""

from __future__ import annotations

import torch

from alexnet_edu.data import rgb_pca
from alexnet_edu.transforms import BatchTransform, pca_lighting

# a colour covariance like natural images': one strong "brightness" axis, two weak colour axes
AXES = torch.linalg.qr(torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, -1.0], [1.0, -2.0, 1.0]]).T)[0]
STDS = torch.tensor([0.25, 0.06, 0.02])                 # 0-1 scale


def _images_with_known_covariance(n: int = 64, side: int = 16) -> torch.Tensor:
    """uint8 images whose pixels have (nearly) the covariance AXES diag(STDS^2) AXES^T."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(n, side * side, 3, generator=g) * STDS
    pixels = 0.5 + z @ AXES.T
    return (pixels.clamp(0, 1) * 255).round().to(torch.uint8).view(n, side, side, 3).permute(
        0, 3, 1, 2).contiguous()


def test_rms_shift_is_sigma_times_the_root_of_the_covariance_trace() -> None:
    eigval, eigvec = rgb_pca(_images_with_known_covariance())
    assert torch.allclose(eigval.sqrt(), STDS, rtol=0.05)            # the set-up is right
    flat = torch.full((4000, 3, 9, 9), 128, dtype=torch.uint8)       # crops/flips change nothing
    t = BatchTransform(8, (0.0,) * 3, (1.0,) * 3, train=True, pca=(eigval, eigvec), pca_std=0.1)
    shift = (t(flat) - 128 / 255)[:, :, 0, 0]                        # N x 3, one per image
    rms = shift.pow(2).sum(1).mean().sqrt()
    expected = 0.1 * eigval.sum().sqrt()                             # 0.1 * 0.26 = 0.026
    assert abs(rms / expected - 1) < 0.05, (rms, expected)
    # alpha * lambda (the paper's printed formula read literally) would be 0.1 * 0.065: 4x less
    assert rms > 2 * 0.1 * eigval.pow(2).sum().sqrt()


def test_the_shift_scales_with_the_pixels_not_their_square() -> None:
    """Measure the same images on a 0-255 scale: lambda grows 255^2-fold, the shift 255-fold."""
    eigval, eigvec = rgb_pca(_images_with_known_covariance(8))
    alpha = torch.randn(5, 3) * 0.1
    images = torch.rand(5, 3, 4, 4)
    on_01 = pca_lighting(images, eigval, eigvec, alpha) - images
    on_255 = pca_lighting(images * 255, eigval * 255 ** 2, eigvec, alpha) - images * 255
    assert torch.allclose(on_255, on_01 * 255, rtol=1e-4, atol=1e-4)


def test_each_component_moves_alpha_standard_deviations_along_its_axis() -> None:
    eigval, eigvec = torch.tensor([0.04, 0.0036, 0.0004]), AXES
    alpha = torch.tensor([[1.0, 0.0, 0.0], [0.0, -2.0, 0.0], [0.0, 0.0, 3.0]])
    shift = (pca_lighting(torch.zeros(3, 3, 2, 2), eigval, eigvec, alpha))[:, :, 0, 0]
    assert torch.allclose(shift @ eigvec, torch.diag(torch.tensor([0.2, -0.12, 0.06])),
                          atol=1e-6)
