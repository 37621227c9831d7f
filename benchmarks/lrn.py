"""How fast is alexnet_edu's Local Response Normalization, and what does LRN cost in training?

    python benchmarks/lrn.py                  # ~1-2 min on 2 CPU cores
    python benchmarks/lrn.py --reps 5 --batch 64 --step-batch 32 --threads 2
    python benchmarks/lrn.py --sweep-blocks   # how layers._BLOCK was chosen

1. conv1-sized activations (batch x 96 x 55 x 55, float32, NCHW): forward + backward of
   `alexnet_edu.layers.local_response_norm` against `torch.nn.LocalResponseNorm(size, alpha*size,
   beta, k)` (the same numbers, see alexnet_edu/layers.py), in one process, best of --reps.
   Prints the largest differences of outputs and input gradients.
2. The same in bfloat16, channels-last, plain and under `torch.autocast` (how a bf16 trainer runs
   it). PyTorch's layer may refuse bfloat16 input outside autocast: that is reported, not hidden.
3. LRN's share of a paper-AlexNet training step (forward + backward + SGD step): the model with
   lrn=True against lrn=False, in float32 and in bf16 autocast + channels-last; also with
   PyTorch's layer swapped in (`to_torch()`), for comparison.

Every figure is a ratio or a share of timings taken in this process, so a busy machine slows
both sides alike. The last line is `speedup: N.NN` (ours vs nn, float32 forward + backward).
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import time

import torch
from torch import nn

from alexnet_edu import layers
from alexnet_edu.layers import LocalResponseNorm
from alexnet_edu.model import AlexNet

SIZE, ALPHA, BETA, K = 5, 1e-4, 0.75, 2.0  # the paper's constants, Section 3.3


def best_time(fn, reps: int) -> float:
    """The fastest of `reps` runs after one warm-up (the least disturbed by other processes)."""
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
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


def training_steps(models: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor, reps: int,
                   bf16: bool) -> dict[str, float]:
    """Best seconds per SGD step (forward + cross-entropy + backward + momentum/weight-decay
    update) of each model. The models take turns in every round, so a change in the machine's
    load during the run hits them all alike."""
    loss_fn = nn.CrossEntropyLoss()
    steps = {}
    for name, model in models.items():
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

        def step(model=model, opt=opt):
            opt.zero_grad(set_to_none=True)
            ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
            with ctx:
                loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()

        steps[name] = step
    best = {name: float("inf") for name in steps}
    for round_ in range(reps + 1):              # round 0 is a warm-up
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            if round_:
                best[name] = min(best[name], time.perf_counter() - start)
    return best


def lrn_share(batch: int, image_size: int, reps: int, bf16: bool) -> None:
    """Time a training step with LRN (ours, and PyTorch's) and without it, same weights/data."""
    torch.manual_seed(0)
    fmt = torch.channels_last if bf16 else torch.contiguous_format
    x = torch.randn(batch, 3, image_size, image_size).contiguous(memory_format=fmt)
    y = torch.randint(0, 1000, (batch,))
    base = AlexNet(image_size=image_size, lrn=True)
    models = {"with ours": base}
    torch_lrn = AlexNet(image_size=image_size, lrn=True)
    torch_lrn.load_state_dict(base.state_dict())
    for name in ("norm1", "norm2"):
        setattr(torch_lrn, name, torch_lrn.layer(name).to_torch())
    models["with nn"] = torch_lrn
    no_lrn = AlexNet(image_size=image_size, lrn=False)
    no_lrn.load_state_dict(base.state_dict())
    models["without"] = no_lrn
    label = "bf16 autocast + channels_last" if bf16 else "float32 NCHW"
    for model in models.values():
        model.train().to(memory_format=fmt)
    times = training_steps(models, x, y, reps, bf16)
    parts = [f"{name} LRN {t * 1e3:.0f} ms ({batch / t:.1f} img/s)" for name, t in times.items()]
    print(f"step {label}, batch {batch} at {image_size}px: " + " | ".join(parts))
    for name in ("with ours", "with nn"):
        if name in times and "without" in times:
            share = 1 - times["without"] / times[name]
            print(f"  LRN share of the step, {name.split()[1]:>4}: {100 * share:5.1f} %")


def sweep_blocks(reps: int) -> None:
    """Forward + backward time of our LRN for several block sizes (layers._BLOCK) on the maps
    of a 227 px and a 67 px training batch: how the default block size was chosen."""
    shapes = [(64, 96, 55, 55), (64, 256, 27, 27), (128, 96, 15, 15), (128, 256, 7, 7)]
    blocks = [150_000, 300_000, 600_000, 1_200_000, 4_800_000]
    default, layer = layers._BLOCK, LocalResponseNorm(SIZE, ALPHA, BETA, K)
    print("block sizes (elements): " + ", ".join(f"{b:,}" for b in blocks) + f"; default "
          f"{default:,}; forward+backward ms, best of {reps}")
    try:
        for shape in shapes:
            x, g = torch.randn(shape).relu_().mul_(10), torch.randn(shape)
            times = []
            for block in blocks:
                layers._BLOCK = block
                times.append(best_time(lambda x=x, g=g: forward_backward(layer, x, g), reps) * 1e3)
            print(f"  {'x'.join(map(str, shape)):>14}: " + ", ".join(f"{t:.1f}" for t in times))
    finally:
        layers._BLOCK = default


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2, help="timed runs; the best counts")
    parser.add_argument("--batch", type=int, default=64, help="batch of conv1 activations")
    parser.add_argument("--step-batch", type=int, default=8, help="batch of the training step")
    parser.add_argument("--image-size", type=int, default=227, help="training-step image side")
    parser.add_argument("--threads", type=int, default=min(2, torch.get_num_threads()))
    parser.add_argument("--skip-step", action="store_true", help="only time the LRN layers")
    parser.add_argument("--sweep-blocks", action="store_true",
                        help="only time our LRN at several block sizes")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}")

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

    if not args.skip_step:
        lrn_share(args.step_batch, args.image_size, args.reps, bf16=False)
        lrn_share(args.step_batch, args.image_size, args.reps, bf16=True)

    speedup, dy, dg, rel = result
    print(f"max difference (float32, vs nn): output {dy:.1e}, gradient {dg:.1e} "
          f"(relative to the largest value: {rel:.1e})")
    print(f"speedup: {speedup:.2f}")


if __name__ == "__main__":
    main()
