"""A fast LRN for training (PyTorch's, a padded 3-D average pooling, is slow on CPUs): the same
numbers as `layers.local_response_norm_reference`. LRN is a dozen cheap element-wise passes, so
its speed is memory traffic: on a CPU, blocks of `_BLOCK` elements keep the temporaries in cache
(`benchmarks/lrn.py --sweep-blocks`); on a GPU, where each block costs a dozen kernel launches,
blocks of `_GPU_BLOCK` (conv1's maps at batch 128 in 5; ~0.3 GB of scratch; speed unmeasured).
NCHW is viewed as (N, C, H*W) and channels-last as (N*H*W, C, 1); the squares go into a flat
buffer with pad channels between the rows, so a window sum over channels is a few shifted adds
over that buffer (`_Padded`). Half precision is computed in float32 in cache and rounded once at
the end.
"""

from __future__ import annotations

import math

import torch
from torch.autograd.function import once_differentiable

__all__ = ["lrn"]

_BLOCK = 600_000          # elements, on a CPU
_GPU_BLOCK = 1 << 23      # elements (32 MB in float32), on other devices


def _blocks(t: torch.Tensor) -> tuple[torch.Tensor, list[tuple[slice, slice]]]:
    """A contiguous (R, C, L) view of `t`, channels on dim 1, and its blocks as (rows, cols)
    slices: whole rows where a row fits in a block, else part of one row's columns."""
    channels = t.shape[1]
    v = (t.reshape(t.shape[0], channels, math.prod(t.shape[2:])) if t.is_contiguous()
         else t.permute(0, *range(2, t.dim()), 1).reshape(-1, channels, 1))
    rows, _, length = v.shape
    block = _BLOCK if t.device.type == "cpu" else _GPU_BLOCK
    per_row = max(1, channels * length)
    if per_row <= block:
        step = block // per_row
        return v, [(slice(r, r + step), slice(None)) for r in range(0, rows, step)]
    step = max(1, block // max(1, channels))
    return v, [(slice(r, r + 1), slice(j, j + step)) for r in range(rows)
               for j in range(0, length, step)]


class _Padded:
    """Room for `rows` blocks of (C, L) values, laid out flat with `pad` channels of `fill`
    before, between and after them. A window over channels never leaves its row's pads, so the
    window sums of all rows are shifted adds over the flat buffer, one pass each."""

    def __init__(self, rows: int, like: torch.Tensor, before: int, after: int, fill: float,
                 sums: list[torch.Tensor] | None = None):
        _, self.c, self.length = like.shape
        self.before, self.after, self.pad = before, after, max(before, after)
        size = (rows * (self.c + self.pad) + 2 * self.pad) * self.length
        self.flat = torch.full((size,), fill, dtype=like.dtype, device=like.device)
        # scratch for the sums of 2, 4, 8, ... channels (shareable: used only inside `window`)
        doublings = (before + after + 1).bit_length() - 1
        self.sums = sums if sums is not None else [torch.empty_like(self.flat)
                                                   for _ in range(doublings)]
        self.plans: dict = {}

    def rows(self, n: int, flat: torch.Tensor | None = None, shift: int = 0) -> torch.Tensor:
        """The (n, C, L) view of the first n rows of `flat` (default: ours), `shift` channels on."""
        flat = self.flat if flat is None else flat
        start, row = (self.pad + shift) * self.length, (self.c + self.pad) * self.length
        view = flat[start:start + n * row].view(n, self.c + self.pad, self.length)
        return view[:, :self.c]

    def window(self, n: int, out: torch.Tensor, transposed: bool = False) -> torch.Tensor:
        """out^i = the sum over channels i-before..i+after (i-after..i+before if `transposed`)
        of the first n rows: sums of 1, 2, 4, ... channels by doubling, then one add per set
        bit of the width (n=5: 2 doublings + 1 add instead of 4 adds)."""
        if (n, transposed) not in self.plans:   # the views, made once: blocks share n
            self.plans[n, transposed] = self._plan(n, transposed)
        doublings, parts = self.plans[n, transposed]
        for w, shifted, into in doublings:
            torch.add(w, shifted, out=into)
        if len(parts) == 1:
            return out.copy_(parts[0])
        torch.add(parts[0], parts[1], out=out)   # contiguous `out`: unary ops on views are slow
        for part in parts[2:]:
            out.add_(part)
        return out

    def _plan(self, n: int, transposed: bool):
        """window()'s operands as views: the doublings (sums[b+1][j] = sums[b][j] +
        sums[b][j + 2^b channels]) and, per set bit of the width, the part to add up."""
        step, width = self.length, self.before + self.after + 1
        sums, doublings = [self.flat[:(n * (self.c + self.pad) + 2 * self.pad) * step]], []
        for b, buffer in enumerate(self.sums):
            w, shift = sums[-1], (1 << b) * step
            sums.append(buffer[:w.numel() - shift])
            doublings.append((w[:-shift], w[shift:], sums[-1]))
        offset, parts = -(self.after if transposed else self.before), []
        for b in reversed(range(len(sums))):
            if width >> b & 1:
                parts.append(self.rows(n, sums[b], offset))
                offset += 1 << b
        return doublings, parts


def _power(d: torch.Tensor, beta: float, out: torch.Tensor, spare: torch.Tensor) -> torch.Tensor:
    """d^beta; for beta = 3/4, s * sqrt(s) with s = sqrt(d): sqrt is a single instruction, a
    general pow an exp and a log (6x slower here)."""
    if beta == 0.75:
        s = torch.sqrt(d, out=out)
        return s.mul_(torch.sqrt(s, out=spare))
    return torch.pow(d, beta, out=out)


def _walk(a: torch.Tensor, others: list[torch.Tensor], before: int, after: int, alpha: float,
          k: float, count: int):
    """Visit `a` block by block with the same blocks of `others`: yield x (the block of `a` in
    the compute dtype), the others' blocks, the padded buffer of x's squares, d = k + alpha *
    W(x^2), and `count` more (n, C, L) scratch blocks (all reused block after block)."""
    (va, blocks), width = _blocks(a), before + after + 1
    views = [_blocks(t)[0] for t in others]
    # float64 stays float64 (gradcheck); float32 and half precision compute in float32
    dtype = torch.float64 if a.dtype == torch.float64 else torch.float32
    # (torch.tensor(value, device="cuda") would copy from the host and wait for the GPU)
    k_share = torch.full((), k / width, dtype=dtype, device=a.device)
    squares, scratch = None, []
    for rows, cols in blocks:
        x = va[rows, :, cols].to(dtype)   # a view (no copy) unless a is half precision
        n = x.shape[0]
        if not scratch or scratch[0].shape[0] < n or scratch[0].shape[2] != x.shape[2]:
            # the pads hold k / width, so each window adds up k with its squares: no extra pass
            squares = _Padded(n, x, before, after, k / width)
            scratch = [torch.empty_like(x) for _ in range(count + 1)]
        d, *more = (s[:n] for s in scratch)
        # d^i = k + alpha * sum_{j in window(i)} (a^j)^2, as sum_j (k/width + alpha (a^j)^2)
        torch.addcmul(k_share, x, x, value=alpha, out=squares.rows(n))
        yield x, [v[rows, :, cols] for v in views], squares, squares.window(n, d), more


class _LRN(torch.autograd.Function):
    r"""b = a * d^{-beta}, d = k + alpha * W(a^2), W = the channel-window sum. Backward, with
    g = dL/db (d_j depends on a_i for every window j containing i):
        dL/da_i = g_i d_i^{-beta} - 2 alpha beta a_i * W^T( g * a * d^{-beta-1} )_i
    with W^T the window sum with `before` and `after` swapped. Only the input is saved: d is
    recomputed block by block in the backward pass (cheaper than storing it)."""

    @staticmethod
    def forward(ctx, a, before, after, alpha, beta, k):
        if not (a.is_contiguous() or a.permute(0, *range(2, a.dim()), 1).is_contiguous()):
            a = a.contiguous()                      # keep NCHW or channels-last as it is
        b = torch.empty_like(a)                     # same memory format as a
        for x, (out,), _, d, (p, s) in _walk(a, [b], before, after, alpha, k, 2):
            torch.div(x, _power(d, beta, p, s), out=out)   # b^i = a^i / (d^i)^beta
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
        grad, terms = torch.empty_like(a), None
        for x, (gb, out), squares, d, (p, s, u) in _walk(a, [g, grad], before, after, alpha,
                                                         k, 3):
            n = x.shape[0]
            if terms is None or terms.sums is not squares.sums:   # new blocks' shape
                terms = _Padded(n, x, before, after, 0.0, squares.sums)   # zero pads
            torch.div(gb, _power(d, beta, p, s), out=u)       # u = g d^{-beta}
            torch.mul(u, x, out=terms.rows(n)).div_(d)        # g a d^{-beta-1}
            w = terms.window(n, d, transposed=True)           # W^T(...), into d's room
            # dL/da_i = g_i d_i^{-beta} - 2 alpha beta a_i W^T(g a d^{-beta-1})_i
            torch.addcmul(u, x, w, value=-2.0 * alpha * beta, out=out)
        return grad, None, None, None, None, None


def lrn(a: torch.Tensor, before: int, after: int, alpha: float, beta: float,
        k: float) -> torch.Tensor:
    """b = a / (k + alpha * sum of a^2 over channels i-before..i+after)^beta, over dim 1."""
    return _LRN.apply(a, before, after, alpha, beta, k)
