r"""Local Response Normalization, exactly as in the paper (Section 3.3).

The paper normalizes the ReLU output $a^i_{x,y}$ of kernel $i$ at position $(x, y)$ by the
activity of the $n$ "adjacent" kernel maps at the same position:

$$ b^i_{x,y} = a^i_{x,y} \Big/ \Big(k + \alpha \sum_{j=\max(0,\,i-n/2)}^{\min(N-1,\,i+n/2)}
   (a^j_{x,y})^2\Big)^{\beta}, \qquad k=2,\; n=5,\; \alpha=10^{-4},\; \beta=0.75. $$

**The pitfall.** `torch.nn.LocalResponseNorm(size, alpha, beta, k)` divides `alpha` by `size`:
it computes $k + \frac{\alpha}{n}\sum a^2$ (an average, not a sum). So
`nn.LocalResponseNorm(5, 1e-4, 0.75, 2)` -- what most public AlexNet code writes -- uses an
effective $\alpha$ five times smaller than the paper's. The paper's layer is
`nn.LocalResponseNorm(size, alpha * size, beta, k)`, which is what our `LocalResponseNorm`
equals.

Two implementations:
- `local_response_norm_reference`: the formula above as a loop over channels, for reading.
- `local_response_norm`: the default; the same numbers with a hand-written backward pass, a few
  whole-tensor passes instead of PyTorch's padded 3-D average pooling (see `benchmarks/lrn.py`).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LocalResponseNorm", "local_response_norm", "local_response_norm_reference"]


def _window(size: int) -> tuple[int, int]:
    """How many channels before and after channel i its window covers.

    For odd n the window is centred (2 and 2 for n=5). For even n we follow PyTorch: n//2 before
    and (n-1)//2 after, so that both layers agree for every size.
    """
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
        b[:, i] = a[:, i] / (k + alpha * sum_sq) ** beta
    return b


def _channel_window_sum(t: torch.Tensor, before: int, after: int) -> torch.Tensor:
    """s[:, i] = sum of t[:, i-before : i+after+1] (clipped at the edges), by shifted adds."""
    s = t.clone()
    c = t.shape[1]
    for shift in range(1, min(before, c - 1) + 1):  # channel i - shift contributes to i
        s[:, shift:] += t[:, : c - shift]
    for shift in range(1, min(after, c - 1) + 1):   # channel i + shift contributes to i
        s[:, : c - shift] += t[:, shift:]
    return s


class _LRNFunction(torch.autograd.Function):
    r"""b = a * d^{-beta}, d = k + alpha * W(a^2), W = the channel-window sum.

    Backward, with g = dL/db: since d_j depends on a_i for every window j containing i,

        dL/da_i = g_i d_i^{-beta} - 2 alpha beta a_i * W^T( g * b / d )_i

    where W^T is the window sum with `before` and `after` swapped (the same for odd n).
    """

    @staticmethod
    def forward(ctx, a, size, alpha, beta, k):
        before, after = _window(size)
        compute = a.float() if a.dtype in (torch.float16, torch.bfloat16) else a
        d = _channel_window_sum(compute * compute, before, after).mul_(alpha).add_(k)
        scale = d.pow(-beta)                 # d^{-beta}
        b = compute * scale
        ctx.save_for_backward(compute, d, scale)
        ctx.params = (before, after, alpha, beta)
        ctx.in_dtype = a.dtype
        return b.to(a.dtype)

    @staticmethod
    def backward(ctx, g):
        a, d, scale = ctx.saved_tensors
        before, after, alpha, beta = ctx.params
        g = g.to(a.dtype)
        t = g * a * scale / d                # g * b / d
        w = _channel_window_sum(t, after, before)
        grad = g * scale - (2.0 * alpha * beta) * a * w
        return grad.to(ctx.in_dtype), None, None, None, None


def local_response_norm(a: torch.Tensor, size: int = 5, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 2.0) -> torch.Tensor:
    """The paper's LRN (alpha multiplies the sum) over dim 1 of an (N, C, ...) tensor. Fast path."""
    if a.dim() < 3:
        raise ValueError(f"expected an (N, C, H, W) tensor, got shape {tuple(a.shape)}")
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    return _LRNFunction.apply(a, size, alpha, beta, k)


class LocalResponseNorm(nn.Module):
    """Local Response Normalization with the paper's constants and semantics (Section 3.3).

    b = a / (k + alpha * sum over n adjacent channels of a^2) ** beta, with n=size=5, alpha=1e-4,
    beta=0.75, k=2. Note that alpha multiplies the *sum*; this layer is therefore equal to
    ``torch.nn.LocalResponseNorm(size, alpha * size, beta, k)``, because PyTorch's layer divides
    its alpha by size (it averages). ``reference=True`` selects the slow, loop-over-channels
    implementation.
    """

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
        """The equivalent PyTorch layer: note alpha * size."""
        return nn.LocalResponseNorm(self.size, self.alpha * self.size, self.beta, self.k)
