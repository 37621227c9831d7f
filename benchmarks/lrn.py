"""How fast is alexnet_edu's Local Response Normalization, and what does LRN cost in training?

    python benchmarks/lrn.py                  # all three parts (minutes on a laptop CPU)
    python benchmarks/lrn.py --reps 5 --batch 64 --step-batch 32 --threads 2
    python benchmarks/lrn.py --device cuda --precisions fp32,bf16,fp16
    python benchmarks/lrn.py --sweep-blocks   # how lrn_fast._BLOCK was chosen

1. conv1-sized activations (batch x 96 x 55 x 55, float32, NCHW): forward + backward of
   `alexnet_edu.layers.local_response_norm` (kernel: alexnet_edu/lrn_fast.py) against
   `torch.nn.LocalResponseNorm(size, alpha*size, beta, k)` (the same numbers, see
   alexnet_edu/layers.py), in one process, best of --reps.
   Prints the largest differences of outputs and input gradients.
2. The same in bfloat16, channels-last, plain and under `torch.autocast` (how a bf16 trainer runs
   it). PyTorch's layer may refuse bfloat16 input outside autocast: that is reported, not hidden.
3. LRN's share of a paper-AlexNet training step (forward + backward + the trainer's SGD step,
   `train.make_optimizer`: fused where the precision allows) in every
   precision x layout (--precisions, default fp32 and bf16 autocast: float16 convolutions on a
   CPU have no fast kernels, a step takes minutes; --device cuda runs fp16 too), as a table:
   - "A/B": 1 - step(lrn=False) / step(lrn=True), same weights and data, the models taking
     turns in every round: the median over the rounds of each round's pair (the img/s columns
     are the best of the rounds);
   - "layer": LRN's own forward + backward on the activations that step feeds it (norm1's and
     norm2's inputs, same dtype and memory format), as a share of step(lrn=False) + that time.
     Less noisy than A/B (not a difference of two large times) on a busy machine.

On Linux, glibc maps every block above its threshold (at most 32 MB) fresh from the kernel and
unmaps it when freed, so each step (and each "layer" run) faults its large tensors in again,
page by page.
`--keep-freed-memory` keeps freed memory in the process: both columns without those page faults
(on a 2-core EPYC the A/B came closer to the "layer" column; benchmarks/README.md).

Every figure is a ratio or a share of timings taken in this process, so a busy machine slows
both sides alike. The last line is `speedup: N.NN` (ours vs nn, float32 forward + backward).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import platform
import statistics
import time

import torch
from torch import nn

from alexnet_edu import lrn_fast
from alexnet_edu.layers import LocalResponseNorm
from alexnet_edu.model import AlexNet
from alexnet_edu.train import TrainConfig, make_optimizer

SIZE, ALPHA, BETA, K = 5, 1e-4, 0.75, 2.0  # the paper's constants, Section 3.3
# --clock cpu: this process's CPU time, which a machine busy with other work inflates far less
# than wall time (with --threads 1: idle OpenMP threads would spin and count too)
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]


def best_time(fn, reps: int) -> float:
    """The fastest of `reps` runs after one warm-up (the least disturbed by other processes)."""
    fn()
    times = []
    for _ in range(reps):
        start = clock()
        fn()
        times.append(clock() - start)
    return min(times)


def forward_backward(layer, x: torch.Tensor, g: torch.Tensor, autocast: bool = False):
    """Output and input gradient of `layer` at `x` for the upstream gradient `g`."""
    a = x.detach().requires_grad_()
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    with ctx:
        y = layer(a)
    y.backward(g.to(y.dtype))
    return y.detach(), a.grad


def lrn_layers(x: torch.Tensor, g: torch.Tensor, reps: int, label: str, autocast: bool = False):
    ours = LocalResponseNorm(SIZE, ALPHA, BETA, K)
    theirs = ours.to_torch()
    y1, g1 = forward_backward(ours, x, g, autocast)
    t_ours = best_time(lambda: forward_backward(ours, x, g, autocast), reps)
    try:
        y2, g2 = forward_backward(theirs, x, g, autocast)
    except (RuntimeError, NotImplementedError) as err:
        print(f"{label}: ours {t_ours * 1e3:7.1f} ms | nn.LocalResponseNorm fails: "
              f"{type(err).__name__}: {str(err).splitlines()[0]}")
        return None
    t_nn = best_time(lambda: forward_backward(theirs, x, g, autocast), reps)
    dy = (y1.float() - y2.float()).abs().max().item()
    dg = (g1.float() - g2.float()).abs().max().item()
    # relative to the largest value (elementwise ratios blow up where gradients cancel to ~0)
    rel = max(dy / y2.float().abs().max().item(), dg / g2.float().abs().max().item())
    print(f"{label}: nn {t_nn * 1e3:7.1f} ms | ours {t_ours * 1e3:7.1f} ms | "
          f"x{t_nn / t_ours:.2f} | max |diff| output {dy:.1e} (values up to "
          f"{y2.float().abs().max().item():.0f}), grad {dg:.1e}; relative to max {rel:.1e}")
    return t_nn / t_ours, dy, dg, rel


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
LAYOUTS = {"NCHW": torch.contiguous_format, "channels_last": torch.channels_last}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def lrn_share(batch: int, image_size: int, reps: int, precision: str, layout: str,
              device: torch.device) -> dict[str, float]:
    """Seconds per SGD step (forward + cross-entropy + backward + momentum/weight-decay update)
    with and without LRN, and of LRN's layers alone on that step's activations; best of `reps`
    rounds after a warm-up, the three taking turns in every round (a change in the machine's
    load hits them alike); "ab": 1 - without / with, the median of the rounds' pairs."""
    dtype, fmt = PRECISIONS[precision], LAYOUTS[layout]
    torch.manual_seed(0)
    x = torch.randn(batch, 3, image_size, image_size, device=device).contiguous(
        memory_format=fmt)
    y = torch.randint(0, 1000, (batch,), device=device)
    with_lrn = AlexNet(image_size=image_size, lrn=True)
    without = AlexNet(image_size=image_size, lrn=False)
    without.load_state_dict(with_lrn.state_dict())
    loss_fn = nn.CrossEntropyLoss()

    def autocast():
        return torch.autocast(device.type, dtype=dtype or torch.float32,
                              enabled=dtype is not None)

    inputs = {}                                  # norm1's and norm2's inputs, as the step has them
    hooks = [with_lrn.layer(name).register_forward_pre_hook(
        lambda m, args, name=name: inputs.__setitem__(name, args[0].detach()))
        for name in ("norm1", "norm2")]
    steps = {}
    for name, model in (("with", with_lrn), ("without", without)):
        model.train().to(device=device, memory_format=fmt)
        opt = make_optimizer(model, TrainConfig(amp={"fp32": "off"}.get(precision, precision)),
                             device)   # the trainer's SGD (fused where it fuses)

        def step(model=model, opt=opt):
            opt.zero_grad(set_to_none=True)
            with autocast():
                loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()

        steps[name] = step
    steps["with"]()
    for hook in hooks:
        hook.remove()
    norm = LocalResponseNorm(SIZE, ALPHA, BETA, K)
    grads = {name: torch.randn_like(a) for name, a in inputs.items()}

    def layer():
        for name, a in inputs.items():
            a = a.detach().requires_grad_()
            with autocast():
                out = norm(a)
            out.backward(grads[name])

    steps["layer"] = layer
    times = {name: [] for name in steps}
    for round_ in range(reps + 1):              # round 0 is a warm-up
        order = list(steps.items())
        for name, fn in order if round_ % 2 else order[::-1]:   # neither goes first always
            _sync(device)
            start = clock()
            fn()
            _sync(device)
            if round_:
                times[name].append(clock() - start)
    best = {name: min(seconds) for name, seconds in times.items()}
    # A/B from each round's pair (with and without LRN, timed back to back), the median of the
    # rounds: a slow spell hits both halves of a pair, where the two best-of times may come
    # from different spells
    best["ab"] = 1 - statistics.median(
        w / t for w, t in zip(times["without"], times["with"], strict=True))
    return best


def share_table(batch: int, image_size: int, reps: int, precisions: list[str],
                device: torch.device) -> None:
    """LRN's share of a training step per precision x layout, one row each."""
    print(f"LRN's share of a paper-AlexNet training step, batch {batch} at {image_size}px on "
          f"{device}, best of {reps} (A/B: median of {reps} pairs):")
    print(f"  {'precision':<9} {'layout':<13} {'with LRN':>10} {'without':>10} {'A/B':>7} "
          f"{'LRN layers':>11} {'layer':>7}")
    for precision in precisions:
        for layout in LAYOUTS:
            t = lrn_share(batch, image_size, reps, precision, layout, device)
            ab = t["ab"]
            direct = t["layer"] / (t["without"] + t["layer"])
            print(f"  {precision:<9} {layout:<13} {batch / t['with']:6.1f} img/s "
                  f"{batch / t['without']:6.1f} img/s {100 * ab:5.1f} % {t['layer'] * 1e3:8.1f} ms "
                  f"{100 * direct:5.1f} %", flush=True)


def sweep_blocks(reps: int) -> None:
    """Forward + backward time of our LRN for several block sizes (lrn_fast._BLOCK) on the maps
    of a 227 px and a 67 px training batch: how the default block size was chosen."""
    shapes = [(64, 96, 55, 55), (64, 256, 27, 27), (128, 96, 15, 15), (128, 256, 7, 7)]
    blocks = [150_000, 300_000, 600_000, 1_200_000, 4_800_000]
    default, layer = lrn_fast._BLOCK, LocalResponseNorm(SIZE, ALPHA, BETA, K)
    print("block sizes (elements): " + ", ".join(f"{b:,}" for b in blocks) + f"; default "
          f"{default:,}; forward+backward ms, best of {reps}")
    try:
        for shape in shapes:
            x, g = torch.randn(shape).relu_().mul_(10), torch.randn(shape)
            times = []
            for block in blocks:
                lrn_fast._BLOCK = block
                times.append(best_time(lambda x=x, g=g: forward_backward(layer, x, g), reps) * 1e3)
            print(f"  {'x'.join(map(str, shape)):>14}: " + ", ".join(f"{t:.1f}" for t in times))
    finally:
        lrn_fast._BLOCK = default


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory in this process (False where it is not glibc). By default a
    block above a threshold (at most 32 MB) gets its own pages from the kernel and gives them back
    when freed, so each step faults its activations (37 MB each for conv1's at batch 32) in
    again, zeroed page by page. Here every block comes from a heap that is never trimmed."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL("libc.so.6")
    m_trim_threshold, m_top_pad, m_mmap_max = -1, -2, -4   # malloc.h
    return all((libc.mallopt(m_mmap_max, 0), libc.mallopt(m_trim_threshold, 2**31 - 1),
                libc.mallopt(m_top_pad, 64 << 20)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2,
                        help="timed runs; the best counts (A/B: the median of the rounds' pairs)")
    parser.add_argument("--batch", type=int, default=64, help="batch of conv1 activations")
    parser.add_argument("--step-batch", type=int, default=32, help="batch of the training step")
    parser.add_argument("--image-size", type=int, default=227, help="training-step image side")
    parser.add_argument("--threads", type=int, default=min(2, torch.get_num_threads()))
    parser.add_argument("--skip-step", action="store_true", help="only time the LRN layers")
    parser.add_argument("--precisions", default="fp32,bf16",
                        help=f"training-step precisions, comma-separated, of {list(PRECISIONS)}")
    parser.add_argument("--device", default="cpu", help="training-step device (cpu, cuda)")
    parser.add_argument("--clock", choices=list(CLOCKS), default="wall",
                        help="wall time, or CPU time (on a busy CPU; use with --threads 1)")
    parser.add_argument("--sweep-blocks", action="store_true",
                        help="only time our LRN at several block sizes")
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="Linux, glibc: freed memory stays for reuse (keep_freed_memory)")
    args = parser.parse_args()
    if args.reps < 1:
        parser.error(f"--reps must be at least 1, got {args.reps}")
    if args.keep_freed_memory and not keep_freed_memory():
        parser.error("--keep-freed-memory needs Linux with glibc")
    global clock
    clock = CLOCKS[args.clock]
    if args.clock == "cpu" and args.device != "cpu":
        parser.error("--clock cpu times CPU work only: use it with --device cpu")
    precisions = args.precisions.split(",")
    if not set(precisions) <= set(PRECISIONS):
        parser.error(f"--precisions takes {list(PRECISIONS)}, got {args.precisions!r}")
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, {args.clock} clock"
          + ", freed memory kept" * args.keep_freed_memory)

    if args.sweep_blocks:
        return sweep_blocks(args.reps)
    torch.manual_seed(0)
    shape = (args.batch, 96, 55, 55)  # conv1's ReLU output for a 227x227 batch
    x = torch.randn(shape).relu_().mul_(10)  # non-negative, like ReLU output; d well above k
    g = torch.randn(shape)
    print(f"LRN forward+backward on {tuple(shape)}, best of {args.reps}:")
    result = lrn_layers(x, g, args.reps, "  float32 NCHW          ")
    xb = x.bfloat16().contiguous(memory_format=torch.channels_last)
    lrn_layers(xb, g.bfloat16(), args.reps, "  bf16 channels_last    ")
    lrn_layers(xb, g.bfloat16(), args.reps, "  bf16 cl + autocast    ", autocast=True)
    xh = x.half().contiguous(memory_format=torch.channels_last)
    lrn_layers(xh, g.half(), args.reps, "  fp16 channels_last    ")

    if not args.skip_step:
        share_table(args.step_batch, args.image_size, args.reps, precisions,
                    torch.device(args.device))

    speedup, dy, dg, rel = result
    print(f"max difference (float32, vs nn): output {dy:.1e}, gradient {dg:.1e} "
          f"(relative to the largest value: {rel:.1e})")
    print(f"speedup: {speedup:.2f}")


if __name__ == "__main__":
    main()
