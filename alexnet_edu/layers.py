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


# Why the fast path looks like this. LRN is a dozen cheap element-wise passes (square, window
# sum, power, multiply; more in the backward pass), so its speed is memory traffic and the number
# of passes, not arithmetic. Three choices keep both low:
# - Blocks: over a whole conv1 batch (64x96x55x55 floats = 74 MB) every pass goes out to main
#   memory; over a block of a few hundred thousand elements the temporaries stay in the CPU's
#   cache (`_BLOCK`, chosen with `python benchmarks/lrn.py --sweep-blocks`).
# - One loop for both memory formats: NCHW is viewed as (N, C, H*W) and channels-last as
#   (N*H*W, C, 1), both contiguous, window along dim 1. The squares go into a buffer with `pad`
#   zero channels after the last one, so the window sum is a few shifted adds over the *flat*
#   buffer (a shift that runs off one row's channels lands in zeros): every pass is one long
#   contiguous loop, and channels-last needs no transposed copy.
# - float16/bfloat16 blocks are converted to float32 in cache (the window sum and the power need
#   float32's precision) and rounded once when written back: no whole-tensor dtype round trip.
_BLOCK = 600_000


def _blocks(t: torch.Tensor) -> tuple[torch.Tensor, list[tuple[slice, slice]]]:
    """A contiguous (R, C, L) view of `t` with the channels on dim 1, and the blocks to visit as
    (row range, column range) pairs: `v[rows, :, cols]` is one block.

    Contiguous (N, C, H, W) -> (N, C, H*W); channels-last (memory N, H, W, C) -> (N*H*W, C, 1).
    A block holds whole rows where a row fits (several images, or a run of pixels), else part
    of one image's columns.
    """
    channels = t.shape[1]
    if t.is_contiguous():
        v = t.reshape(t.shape[0], channels, math.prod(t.shape[2:]))
    else:
        v = t.permute(0, *range(2, t.dim()), 1).reshape(-1, channels, 1)
    rows, _, length = v.shape
    per_row = max(1, channels * length)
    if per_row <= _BLOCK:
        step = _BLOCK // per_row
        return v, [(slice(r, r + step), slice(None)) for r in range(0, rows, step)]
    step = max(1, _BLOCK // max(1, channels))
    return v, [(slice(r, r + 1), slice(j, j + step)) for r in range(rows)
               for j in range(0, length, step)]


class _Buffers:
    """Buffers of shape (rows, C + pad, cols) in the compute dtype, reused block after block.
    Their pad channels start at zero; the kernel writes the channels [:C] and only keeps zeros
    in the pads of the buffers it shifts (`d` gets ones there, see `_denominator`)."""

    def __init__(self, count: int, channels: int, pad: int, dtype: torch.dtype):
        self.count, self.width, self.dtype = count, channels + pad, dtype
        self.buffers: list[torch.Tensor] = []

    def take(self, rows: int, cols: int) -> list[torch.Tensor]:
        if not self.buffers or self.buffers[0].shape[2] != cols or self.buffers[0].shape[0] < rows:
            self.buffers = [torch.zeros(rows, self.width, cols, dtype=self.dtype)
                            for _ in range(self.count)]
        return [buf[:rows] for buf in self.buffers]   # contiguous: rows is the outer dim


def _window_add(out: torch.Tensor, t: torch.Tensor, before: int, after: int, scale: float,
                channels: int) -> torch.Tensor:
    """out[i] += scale * (t[i-before] + ... + t[i+after]) without t[i], on padded (R, C+pad, L)
    buffers: flat shifted adds, one contiguous pass each."""
    cols = t.shape[2]
    o, f = out.view(-1), t.view(-1)
    for shift in range(1, min(before, channels - 1) + 1):   # channel i - shift contributes to i
        n = shift * cols
        o[n:].add_(f[:-n], alpha=scale)
    for shift in range(1, min(after, channels - 1) + 1):    # channel i + shift contributes to i
        n = shift * cols
        o[:-n].add_(f[n:], alpha=scale)
    return out


def _inverse_power(d: torch.Tensor, beta: float) -> torch.Tensor:
    """d^(-beta). For the paper's beta = 3/4, d^(-1/2) * d^(-1/4) = r * sqrt(r) with
    r = rsqrt(d): two cheap passes and a multiply instead of a general pow (exp and log); the same
    float32 result to a few ulp."""
    if beta == 0.75:
        r = d.rsqrt()
        return r.sqrt().mul_(r)
    return d.pow(-beta)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64 (gradcheck); float32, float16 and bfloat16 compute in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _dense(t: torch.Tensor) -> torch.Tensor:
    """`t` itself when contiguous or channels-last (any rank), else a contiguous copy."""
    if t.is_contiguous() or t.permute(0, *range(2, t.dim()), 1).is_contiguous():
        return t
    return t.contiguous()


def _denominator(x: torch.Tensor, sq: torch.Tensor, d: torch.Tensor, before: int, after: int,
                 alpha: float, k: float) -> torch.Tensor:
    """d = k + alpha * (window sum of x^2) into the padded buffer `d`, via `sq` (x^2, padded).
    Returns `d` with its pad channels set to 1 (finite powers there, even for k = 0)."""
    c = x.shape[1]
    torch.mul(x, x, out=sq[:, :c])
    torch.add(torch.tensor(k, dtype=d.dtype), sq, alpha=alpha, out=d)   # one pass: k + alpha x^2
    _window_add(d, sq, before, after, alpha, c)
    d[:, c:].fill_(1.0)
    return d


class _LRNFunction(torch.autograd.Function):
    r"""b = a * d^{-beta}, d = k + alpha * W(a^2), W = the channel-window sum.

    Backward, with g = dL/db: since d_j depends on a_i for every window j containing i,

        dL/da_i = g_i d_i^{-beta} - 2 alpha beta a_i * W^T( g * b / d )_i

    where W^T is the window sum with `before` and `after` swapped (the same for odd n).
    Only the input is saved; d and d^{-beta} are recomputed block by block in the backward pass
    (cheaper than writing them to memory and reading them back). The output and the gradient
    keep the input's dtype and memory format.
    """

    @staticmethod
    def forward(ctx, a, size, alpha, beta, k):
        a = _dense(a)
        before, after = _window(size)
        b = torch.empty_like(a)                     # same memory format as a
        va, blocks = _blocks(a)
        vb, _ = _blocks(b)
        c = a.shape[1]
        buffers = _Buffers(2, c, max(before, after), _compute_dtype(a.dtype))
        for rows, cols in blocks:
            x = va[rows, :, cols].to(buffers.dtype)  # a view (no copy) unless a is half precision
            sq, d = buffers.take(x.shape[0], x.shape[2])
            # d^i = k + alpha * sum_{j in window(i)} (a^j)^2;   b^i = a^i * (d^i)^{-beta}
            scale = _inverse_power(_denominator(x, sq, d, before, after, alpha, k), beta)
            torch.mul(x, scale[:, :c], out=vb[rows, :, cols])
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
        va, blocks = _blocks(a)
        vg, _ = _blocks(g)
        vr, _ = _blocks(grad)
        c = a.shape[1]
        buffers = _Buffers(3, c, max(before, after), _compute_dtype(a.dtype))
        for rows, cols in blocks:
            x = va[rows, :, cols].to(buffers.dtype)
            gb = vg[rows, :, cols].to(buffers.dtype)
            sq, d, w = buffers.take(x.shape[0], x.shape[2])
            scale = _inverse_power(_denominator(x, sq, d, before, after, alpha, k), beta)
            # dL/da_i = g_i d_i^{-beta} - 2 alpha beta a_i W^T(g * b / d)_i
            t = sq                                  # x^2 is no longer needed; pads still zero
            torch.mul(gb, x, out=t[:, :c])
            t.mul_(scale).div_(d)                   # g * b / d, zero in the pads
            w.copy_(t)
            _window_add(w, t, after, before, 1.0, c)
            u = gb * scale[:, :c]
            torch.addcmul(u, x, w[:, :c], value=-2.0 * alpha * beta, out=vr[rows, :, cols])
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
