"""A fast LRN for training (PyTorch's, a padded 3-D average pooling, is slow on CPUs): the same
numbers as `layers.local_response_norm_reference`. LRN is a dozen cheap element-wise passes, so
its speed is memory traffic: blocks of `_BLOCK` elements keep the temporaries in cache
(`benchmarks/lrn.py --sweep-blocks`); NCHW is viewed as (N, C, H*W) and channels-last as
(N*H*W, C, 1), and the squares get zero pad channels, so a window sum is a few shifted adds over
the flat buffer; half precision is computed in float32 in cache and rounded once at the end.
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
    v = (t.reshape(t.shape[0], channels, math.prod(t.shape[2:])) if t.is_contiguous()
         else t.permute(0, *range(2, t.dim()), 1).reshape(-1, channels, 1))
    rows, _, length = v.shape
    per_row = max(1, channels * length)
    if per_row <= _BLOCK:
        step = _BLOCK // per_row
        return v, [(slice(r, r + step), slice(None)) for r in range(0, rows, step)]
    step = max(1, _BLOCK // max(1, channels))
    return v, [(slice(r, r + 1), slice(j, j + step)) for r in range(rows)
               for j in range(0, length, step)]


def _window_add(out: torch.Tensor, t: torch.Tensor, before: int, after: int, scale: float,
                channels: int) -> torch.Tensor:
    """out[i] += scale * (t[i-before] + ... + t[i+after]) without t[i], on padded (R, C+pad, L)
    buffers: flat shifted adds, one contiguous pass each."""
    cols = t.shape[2]
    o, f = out.view(-1), t.view(-1)
    for shift in range(1, min(before, channels - 1) + 1):   # channel i - shift contributes to i
        o[shift * cols:].add_(f[:-shift * cols], alpha=scale)
    for shift in range(1, min(after, channels - 1) + 1):    # channel i + shift contributes to i
        o[:-shift * cols].add_(f[shift * cols:], alpha=scale)
    return out


def _inverse_power(d: torch.Tensor, beta: float) -> torch.Tensor:
    """d^(-beta); for beta = 3/4, r * sqrt(r) with r = rsqrt(d): cheaper than a general pow."""
    if beta == 0.75:
        r = d.rsqrt()
        return r.sqrt().mul_(r)
    return d.pow(-beta)


def _walk(a: torch.Tensor, others: list[torch.Tensor], count: int, before: int, after: int,
          alpha: float, beta: float, k: float):
    """Visit `a` block by block with the same blocks of `others`: yield x (the block of `a` in
    the compute dtype), the others' blocks, `count` padded buffers (x^2 and d first; zero in
    the pads, reused block after block) and d^{-beta}."""
    (va, blocks), c = _blocks(a), a.shape[1]
    views = [_blocks(t)[0] for t in others]
    # float64 stays float64 (gradcheck); float32 and half precision compute in float32
    dtype = torch.float64 if a.dtype == torch.float64 else torch.float32
    k, buffers = torch.tensor(k, dtype=dtype, device=a.device), []   # on the input's device
    for rows, cols in blocks:
        x = va[rows, :, cols].to(dtype)   # a view (no copy) unless a is half precision
        n, length = x.shape[0], x.shape[2]
        if not buffers or buffers[0].shape[2] != length or buffers[0].shape[0] < n:
            buffers = [torch.zeros(n, a.shape[1] + max(before, after), length, dtype=dtype,
                                   device=a.device) for _ in range(count)]
        bufs = [buf[:n] for buf in buffers]   # contiguous: rows is the outer dim
        sq, d = bufs[:2]
        # d^i = k + alpha * sum_{j in window(i)} (a^j)^2, from x^2 in `sq`
        torch.mul(x, x, out=sq[:, :c])
        torch.add(k, sq, alpha=alpha, out=d)   # one pass: k + alpha x^2
        _window_add(d, sq, before, after, alpha, c)
        d[:, c:].fill_(1.0)                    # pad channels: finite powers, even for k = 0
        yield x, [v[rows, :, cols] for v in views], bufs, _inverse_power(d, beta)


class _LRN(torch.autograd.Function):
    r"""b = a * d^{-beta}, d = k + alpha * W(a^2), W = the channel-window sum. Backward, with
    g = dL/db (d_j depends on a_i for every window j containing i):
        dL/da_i = g_i d_i^{-beta} - 2 alpha beta a_i * W^T( g * b / d )_i
    with W^T the window sum with `before` and `after` swapped. Only the input is saved: d is
    recomputed block by block in the backward pass (cheaper than storing it)."""

    @staticmethod
    def forward(ctx, a, before, after, alpha, beta, k):
        if not (a.is_contiguous() or a.permute(0, *range(2, a.dim()), 1).is_contiguous()):
            a = a.contiguous()                      # keep NCHW or channels-last as it is
        b = torch.empty_like(a)                     # same memory format as a
        for x, (out,), _, scale in _walk(a, [b], 2, before, after, alpha, beta, k):
            torch.mul(x, scale[:, :a.shape[1]], out=out)   # b^i = a^i * (d^i)^{-beta}
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
        grad, c = torch.empty_like(a), a.shape[1]
        for x, (gb, out), (t, d, w), scale in _walk(a, [g, grad], 3, *ctx.params):
            gb = gb.to(x.dtype)
            # dL/da_i = g_i d_i^{-beta} - 2 alpha beta a_i W^T(g * b / d)_i
            torch.mul(gb, x, out=t[:, :c])          # t: x^2's buffer, no longer needed
            t.mul_(scale).div_(d)                   # g * b / d, zero in the pads
            w.copy_(t)
            _window_add(w, t, after, before, 1.0, c)
            torch.addcmul(gb * scale[:, :c], x, w[:, :c], value=-2.0 * alpha * beta, out=out)
        return grad, None, None, None, None, None


def lrn(a: torch.Tensor, before: int, after: int, alpha: float, beta: float,
        k: float) -> torch.Tensor:
    """b = a / (k + alpha * sum of a^2 over channels i-before..i+after)^beta, over dim 1."""
    return _LRN.apply(a, before, after, alpha, beta, k)
