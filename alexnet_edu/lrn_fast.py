"""A fast LRN for training: the same numbers as `layers.local_response_norm_reference`, with a
hand-written backward pass, because PyTorch's LRN (padded 3-D average pooling) is slow on CPUs.

LRN is a dozen cheap element-wise passes, so its speed is memory traffic, not arithmetic:
- blocks of `_BLOCK` elements keep each pass's temporaries in the CPU's cache
  (`python benchmarks/lrn.py --sweep-blocks` compares sizes);
- NCHW is viewed as (N, C, H*W) and channels-last as (N*H*W, C, 1), both contiguous; the squares
  go into a buffer with `pad` zero channels after the last, so the window sum is a few shifted
  adds over the flat buffer (a shift past a row's channels lands in zeros);
- float16/bfloat16 blocks are computed in float32 in cache and rounded once when written back.
"""

from __future__ import annotations

import math

import torch
from torch.autograd.function import once_differentiable

__all__ = ["lrn"]

_BLOCK = 600_000


def _blocks(t: torch.Tensor) -> tuple[torch.Tensor, list[tuple[slice, slice]]]:
    """A contiguous (R, C, L) view of `t`, channels on dim 1, and its blocks as (rows, cols)
    slices: whole rows where a row fits in a block, else part of one row's columns."""
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
    """(rows, C + pad, cols) buffers in the compute dtype, reused block after block; their pad
    channels start at zero (`d` gets ones there, see `_denominator`)."""

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
    """d^(-beta); for beta = 3/4, r * sqrt(r) with r = rsqrt(d): cheaper than a general pow."""
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


class _LRN(torch.autograd.Function):
    r"""b = a * d^{-beta}, d = k + alpha * W(a^2), W = the channel-window sum.

    Backward, with g = dL/db: since d_j depends on a_i for every window j containing i,

        dL/da_i = g_i d_i^{-beta} - 2 alpha beta a_i * W^T( g * b / d )_i

    where W^T is the window sum with `before` and `after` swapped. Only the input is saved: d
    is recomputed block by block in the backward pass (cheaper than storing it).
    """

    @staticmethod
    def forward(ctx, a, before, after, alpha, beta, k):
        a = _dense(a)
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
        return grad, None, None, None, None, None


def lrn(a: torch.Tensor, before: int, after: int, alpha: float, beta: float,
        k: float) -> torch.Tensor:
    """b = a / (k + alpha * sum of a^2 over channels i-before..i+after)^beta, over dim 1."""
    return _LRN.apply(a, before, after, alpha, beta, k)
