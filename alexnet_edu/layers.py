r"""Local Response Normalization, exactly as in the paper (Section 3.3).

The paper normalizes the ReLU output $a^i_{x,y}$ of kernel $i$ at position $(x, y)$ by the
activity of the $n$ "adjacent" kernel maps at the same position:

$$ b^i_{x,y} = a^i_{x,y} \Big/ \Big(k + \alpha \sum_{j=\max(0,\,i-n/2)}^{\min(N-1,\,i+n/2)}
   (a^j_{x,y})^2\Big)^{\beta}, \qquad k=2,\; n=5,\; \alpha=10^{-4},\; \beta=0.75. $$

**The paper's text vs its code.** `torch.nn.LocalResponseNorm(size, alpha, beta, k)` divides
`alpha` by `size`: it computes $k + \frac{\alpha}{n}\sum a^2$ (an average, not a sum). So did
the code that trained AlexNet: cuda-convnet's parser divides the configured `scale` by `size`
for cross-map normalization (`dic['scale'] /= dic['size']`, layer.py), and cuda-convnet2's
ImageNet layer files set scale=0.0001, pow=0.75, minDiv=2 (k). Caffe uses `alpha_ / size_`
(lrn_layer.cpp), and its bvlc_alexnet keeps the default k = 1. So
`nn.LocalResponseNorm(5, 1e-4, 0.75, 2)` is the released code's layer, five times weaker than
the printed formula. This module follows the printed formula:
`nn.LocalResponseNorm(size, alpha * size, beta, k)` equals our `LocalResponseNorm`, and
`LocalResponseNorm(alpha=1e-4 / 5)` is the code's layer (notebook 02, section 3).
torchvision's AlexNet has no LRN.

`local_response_norm_reference` is the formula as a loop over channels, for reading;
`local_response_norm` computes the same numbers fast (`alexnet_edu.lrn_fast`) for training.
"""

from __future__ import annotations

import torch
from torch import nn

from .lrn_fast import lrn

__all__ = ["LocalResponseNorm", "local_response_norm", "local_response_norm_reference"]


def _window(size: int) -> tuple[int, int]:
    """Channels before and after i in its window: 2 and 2 for n=5; n//2, (n-1)//2 as PyTorch."""
    return size // 2, (size - 1) // 2


def local_response_norm_reference(a: torch.Tensor, size: int = 5, alpha: float = 1e-4,
                                  beta: float = 0.75, k: float = 2.0) -> torch.Tensor:
    """The paper's LRN written as its formula, one channel at a time: slow, for teaching."""
    before, after = _window(size)
    channels = a.shape[1]
    b = torch.empty_like(a)
    for i in range(channels):
        lo, hi = max(0, i - before), min(channels - 1, i + after)
        sum_sq = (a[:, lo:hi + 1] ** 2).sum(dim=1)  # sum_j (a^j)^2 over the n adjacent maps
        b[:, i] = a[:, i] / (k + alpha * sum_sq) ** beta   # b^i = a^i / (k + alpha sum)^beta
    return b


def local_response_norm(a: torch.Tensor, size: int = 5, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 2.0) -> torch.Tensor:
    """The paper's LRN (alpha multiplies the sum) over dim 1 of an (N, C, ...) tensor, fast."""
    if not isinstance(a, torch.Tensor) or a.dim() < 3:
        shape = tuple(a.shape) if isinstance(a, torch.Tensor) else type(a).__name__
        raise ValueError(f"LRN expects a batch of feature maps (N, C, H, W), got {shape}; "
                         "add a batch dimension with x.unsqueeze(0)")
    if not a.is_floating_point():
        raise TypeError(f"LRN expects a floating-point tensor, got {a.dtype}; convert with "
                        "x.float()")
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size (the number n of adjacent channels) must be an int >= 1, got "
                         f"{size!r}")
    return lrn(a, *_window(size), alpha, beta, k)


class LocalResponseNorm(nn.Module):
    """The paper's LRN layer (Section 3.3): n=size=5, alpha=1e-4, beta=0.75, k=2, alpha
    multiplying the *sum*, so it equals ``nn.LocalResponseNorm(size, alpha * size, beta, k)``
    (`to_torch`). ``reference=True`` runs the loop over channels."""

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0,
                 reference: bool = False):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k
        self.reference = reference

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        fn = local_response_norm_reference if self.reference else local_response_norm
        return fn(a, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"

    def to_torch(self) -> nn.LocalResponseNorm:
        """The equivalent PyTorch layer: PyTorch divides its alpha by size, so pass alpha * size."""
        return nn.LocalResponseNorm(self.size, self.alpha * self.size, self.beta, self.k)
