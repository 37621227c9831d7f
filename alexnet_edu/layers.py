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

import math

import torch
from torch import nn
from torch.autograd.function import once_differentiable

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


# The fast path works on blocks of about this many elements. Why blocks: LRN is a dozen cheap
# element-wise passes (square, window sum, scale, multiply; more in the backward pass). Over a
# whole conv1 batch (64x96x55x55 floats = 74 MB) every pass goes out to main memory; over a block
# of a few MB the temporaries stay in the CPU's cache. Too small a block costs a dozen op launches
# per block instead. The size is a measured optimum (`python benchmarks/lrn.py --sweep-blocks`).
_BLOCK = 600_000


def _channel_window_sum(t: torch.Tensor, before: int, after: int) -> torch.Tensor:
    """s[i] = t[i-before] + ... + t[i+after] along the channel dim -2 of a (..., C, L) block
    (clipped at the edges): shifted adds."""
    c = t.shape[-2]
    s = t.clone()
    for shift in range(1, min(before, c - 1) + 1):  # channel i - shift contributes to i
        s[..., shift:, :].add_(t[..., : c - shift, :])
    for shift in range(1, min(after, c - 1) + 1):   # channel i + shift contributes to i
        s[..., : c - shift, :].add_(t[..., shift:, :])
    return s


def _denominator(x: torch.Tensor, before: int, after: int, alpha: float,
                 k: float) -> torch.Tensor:
    """d = k + alpha * sum over the window of x^2, for one (C, L) block."""
    return _channel_window_sum(x * x, before, after).mul_(alpha).add_(k)


def _inverse_power(d: torch.Tensor, beta: float) -> torch.Tensor:
    """d^(-beta). For the paper's beta = 3/4, d^(-1/2) / d^(1/4) = rsqrt(d) / rsqrt(rsqrt(d)):
    two cheap rsqrt passes instead of a general pow (exp and log); the same float32 result to a
    few ulp."""
    if beta == 0.75:
        r = d.rsqrt()
        return r.div_(r.rsqrt())
    return d.pow(-beta)


def _channel_blocks(t: torch.Tensor) -> tuple[torch.Tensor, list[tuple[slice, slice]]]:
    """A (B, C, L) view of `t` (channels on dim 1, no copy) and the blocks to visit, as
    (b-range, l-range) pairs: `v[b_range, :, l_range]` is a (b, C, l) block.

    `t` must be contiguous or channels-last. Contiguous (N, C, H, W) -> (N, C, H*W); where one
    image is smaller than a block (small maps: 67 px inputs), a block takes several whole images.
    Channels-last memory is (N, H, W, C) -> (1, C, N*H*W) with channel stride 1: a block is then
    a run of whole pixels, and the window sum adds neighbours that sit next to each other.
    """
    if t.is_contiguous():
        v = t.reshape(t.shape[0], t.shape[1], math.prod(t.shape[2:]))
    else:
        perm = (0, *range(2, t.dim()), 1)
        v = t.permute(perm).reshape(1, -1, t.shape[1]).transpose(1, 2)
    batch, channels, length = v.shape
    step = max(1, _BLOCK // max(1, channels))
    if step >= length:   # whole images per block
        per = max(1, _BLOCK // max(1, channels * length))
        return v, [(slice(b, b + per), slice(None)) for b in range(0, batch, per)]
    blocks = [(slice(b, b + 1), slice(j, j + step)) for b in range(batch)
              for j in range(0, length, step)]
    return v, blocks


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64 (gradcheck); float32, float16 and bfloat16 compute in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _dense(t: torch.Tensor) -> torch.Tensor:
    """`t` itself when contiguous or channels-last (any rank), else a contiguous copy."""
    if t.is_contiguous() or t.permute(0, *range(2, t.dim()), 1).is_contiguous():
        return t
    return t.contiguous()


class _LRNFunction(torch.autograd.Function):
    r"""b = a * d^{-beta}, d = k + alpha * W(a^2), W = the channel-window sum.

    Backward, with g = dL/db: since d_j depends on a_i for every window j containing i,

        dL/da_i = g_i d_i^{-beta} - 2 alpha beta a_i * W^T( g * b / d )_i

    where W^T is the window sum with `before` and `after` swapped (the same for odd n).
    Only the input is saved; d and d^{-beta} are recomputed block by block in the backward pass
    (cheaper than writing them to memory and reading them back). float16/bfloat16 blocks are
    computed in float32 and rounded once at the end.
    """

    @staticmethod
    def forward(ctx, a, size, alpha, beta, k):
        a = _dense(a)
        before, after = _window(size)
        b = torch.empty_like(a)                     # same memory format as a
        va, blocks = _channel_blocks(a)
        vb, _ = _channel_blocks(b)
        compute = _compute_dtype(a.dtype)
        for n, cols in blocks:
            x = va[n, :, cols].to(compute)          # a view (no copy) unless a is half precision
            # d^i = k + alpha * sum_{j in window(i)} (a^j)^2;   b^i = a^i * (d^i)^{-beta}
            scale = _inverse_power(_denominator(x, before, after, alpha, k), beta)
            torch.mul(x, scale, out=vb[n, :, cols])
        ctx.save_for_backward(a)
        ctx.params = (before, after, alpha, beta, k)
        return b

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        (a,) = ctx.saved_tensors
        before, after, alpha, beta, k = ctx.params
        if g.stride() != a.stride():                # walk g in the same blocks as a
            g = torch.empty_like(a, dtype=g.dtype).copy_(g)
        grad = torch.empty_like(a)
        va, blocks = _channel_blocks(a)
        vg, _ = _channel_blocks(g)
        vr, _ = _channel_blocks(grad)
        compute = _compute_dtype(a.dtype)
        for n, cols in blocks:
            x, gb = va[n, :, cols].to(compute), vg[n, :, cols].to(compute)
            d = _denominator(x, before, after, alpha, k)
            scale = _inverse_power(d, beta)
            # dL/da_i = g_i d_i^{-beta} - 2 alpha beta a_i W^T(g * b / d)_i
            t = (gb * x).mul_(scale).div_(d)        # g * b / d
            w = _channel_window_sum(t, after, before).mul_(x).mul_(-2.0 * alpha * beta)
            torch.addcmul(w, gb, scale, out=vr[n, :, cols])
        return grad, None, None, None, None


def local_response_norm(a: torch.Tensor, size: int = 5, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 2.0) -> torch.Tensor:
    """The paper's LRN (alpha multiplies the sum) over dim 1 of an (N, C, ...) tensor. Fast path."""
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
