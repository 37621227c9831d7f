"""Training throughput: alexnet_edu's data path + trainer step against a naive PyTorch loop.

    python benchmarks/train_throughput.py                      # defaults: batch 128, 227 px
    python benchmarks/train_throughput.py --steps 5 --device cuda
    python benchmarks/train_throughput.py --batch-size 16 --steps 1 --precision-sweep

Both loops train the same AlexNet (paper layers, LRN, kaiming init, SGD with momentum 0.9 and
weight decay 5e-4) on the same Fashion-MNIST images at the same batch and input size, in one
process, one after the other; only *how* differs:

- naive: what most tutorials write. A Dataset of PIL images with per-image torchvision
  transforms (Resize to 256/227 of the input size, RandomCrop, RandomHorizontalFlip, ToTensor,
  Normalize) in a DataLoader with min(2, CPUs) workers; `torch.nn.LocalResponseNorm` (with
  alpha*5, so that it *is* the paper's layer, see layers.py); float32; default memory layout.
- alexnet_edu: uint8 tensors in memory, whole batches indexed at once (`data.make_loader`),
  resize/crop/flip/normalize on the whole batch (`transforms.BatchTransform`, on the device), our
  LRN with its hand-written backward (`layers.local_response_norm`), the fused SGD step
  (`train.make_optimizer`), and the precision and memory layout `train.fit` picks by default
  for this device (`device.amp_dtype`, channels_last on CUDA) -- the same step as `train.fit`'s
  inner loop.

Reported: images/s of each (after `--warmup` steps), where the time goes (data = waiting for
the loader + the batch transform; compute = forward + backward + SGD step), and last the line
``speedup: N.NN`` (alexnet_edu images/s / naive images/s). Timings on a shared machine are
noisy; the ratio, taken in one run, is what counts. Data: the real Fashion-MNIST subset under
$ALEXNET_EDU_DATA when present, else generated stand-in images in the official format.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from alexnet_edu.data import load_splits, make_loader
from alexnet_edu.device import amp_dtype, describe_device, pick_device
from alexnet_edu.layers import LocalResponseNorm
from alexnet_edu.settings import data_root
from alexnet_edu.standin import generate_fashion_mnist
from alexnet_edu.train import TrainConfig, build_model, make_optimizer
from alexnet_edu.transforms import BatchTransform


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_data(n_images: int):
    """(splits, where): real Fashion-MNIST when present, else generated stand-ins."""
    raw = data_root() / "FashionMNIST" / "raw"
    if any(raw.glob("train-images-idx3-ubyte*")):
        return load_splits("fashion-mnist", root=data_root(), limit=n_images), f"real ({raw})"
    folder = Path(tempfile.mkdtemp(prefix="alexnet-edu-bench-"))
    generate_fashion_mnist(folder, n_train=round(n_images * 1.2) + 10, n_test=10, seed=0)
    return (load_splits("fashion-mnist", root=folder, limit=n_images),
            "generated stand-in images (no real Fashion-MNIST under $ALEXNET_EDU_DATA)")


# --------------------------------------------------------------------------------------------
# The naive loop's pieces
# --------------------------------------------------------------------------------------------

class PILDataset(torch.utils.data.Dataset):
    """Images as PIL images with a per-image transform, like torchvision.datasets.FashionMNIST."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Callable):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        from PIL import Image

        image = Image.fromarray(self.images[i, 0].numpy(), mode="L")
        return self.transform(image), int(self.labels[i])


def naive_pipeline(splits, image_size: int, batch_size: int, workers: int):
    from torchvision import transforms

    resize = round(image_size * 256 / 227)   # the same 256/227 ratio as BatchTransform
    transform = transforms.Compose([
        transforms.Resize(resize), transforms.RandomCrop(image_size),
        transforms.RandomHorizontalFlip(), transforms.ToTensor(),
        transforms.Normalize(splits.mean, splits.std)])
    dataset = PILDataset(splits.train.images, splits.train.labels, transform)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True,
                                       num_workers=workers, persistent_workers=workers > 0,
                                       drop_last=True)


def with_torch_lrn(model: nn.Module) -> nn.Module:
    """Replace our LRN layers by torch.nn.LocalResponseNorm(size, alpha * size, beta, k)."""
    for name, layer in list(model.named_children()):
        if isinstance(layer, LocalResponseNorm):
            setattr(model, name, layer.to_torch())
    return model


# --------------------------------------------------------------------------------------------
# Timing one loop
# --------------------------------------------------------------------------------------------

def run(name: str, model: nn.Module, batches, transform: Callable | None, device: torch.device,
        dtype: torch.dtype | None, channels_last: bool, steps: int, warmup: int,
        ours: bool) -> dict:
    """Train `warmup + steps` batches; time the last `steps`, split into data and compute.
    `ours`: the trainer's SGD (`train.make_optimizer`, fused), else PyTorch's default SGD."""
    model.to(device).train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    config = TrainConfig()
    optimizer = make_optimizer(model, config, device) if ours else torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum,
        weight_decay=config.weight_decay)
    criterion = nn.CrossEntropyLoss()
    iterator = iter(batches)
    data_s = compute_s = 0.0
    images_done = 0
    for step in range(warmup + steps):
        _sync(device)
        t0 = time.perf_counter()
        images, targets = next(iterator)
        images, targets = images.to(device, non_blocking=True), targets.to(device)
        x = transform(images) if transform is not None else images
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        _sync(device)
        t1 = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = criterion(model(x).float(), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()
        _sync(device)
        t2 = time.perf_counter()
        if step >= warmup:
            data_s += t1 - t0
            compute_s += t2 - t1
            images_done += len(targets)
        print(f"  {name}: step {step + 1}/{warmup + steps}{' (warm-up)' if step < warmup else ''}"
              f"  data {t1 - t0:6.2f} s  compute {t2 - t1:6.2f} s", flush=True)
    total = data_s + compute_s
    return {"name": name, "images_per_s": images_done / total, "data_s": data_s,
            "compute_s": compute_s, "images": images_done}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per loop (default 2)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    parser.add_argument("--batch-size", type=int, default=128, help="default 128 (the paper's)")
    parser.add_argument("--image-size", type=int, default=227, help="default 227 (the paper's)")
    parser.add_argument("--device", default=None, help="default: a GPU if there is one")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: PyTorch's choice)")
    parser.add_argument("--no-lrn", action="store_true", help="both models without LRN")
    parser.add_argument("--precision-sweep", action="store_true",
                        help="also time our loop in float32 + channels_last and in bf16 + "
                             "channels_last (slow on CPUs without bf16 units)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device, verbose=False)
    steps_total = args.warmup + args.steps
    splits, source = load_data(args.batch_size * steps_total)
    if len(splits.train) < args.batch_size * steps_total:
        raise SystemExit(f"only {len(splits.train)} training images for "
                         f"{steps_total} batches of {args.batch_size}")

    config = TrainConfig()
    dtype = amp_dtype(config.amp, device)          # what train.fit uses by default
    channels_last = config.channels_last if config.channels_last is not None else (
        device.type == "cuda")
    workers = min(2, os.cpu_count() or 1)
    lrn = {"lrn": False} if args.no_lrn else {}
    print(f"device: {describe_device(device)}; torch {torch.__version__}")
    print(f"data: Fashion-MNIST, {source}; batch {args.batch_size}, {args.image_size} px, "
          f"{args.warmup} warm-up + {args.steps} timed steps per loop")
    print(f"alexnet_edu's default on this device: "
          f"{str(dtype).replace('torch.', '') if dtype else 'float32'}"
          f"{', channels_last' if channels_last else ', contiguous'}; naive: float32, "
          f"contiguous, {workers} DataLoader workers\n")

    def ours(name: str, dtype: torch.dtype | None, channels_last: bool) -> dict:
        torch.manual_seed(0)
        model = build_model(splits, image_size=args.image_size, **lrn)
        loader = make_loader(splits.train, args.batch_size, shuffle=True, device=device)
        transform = BatchTransform(args.image_size, splits.mean, splits.std, train=True,
                                   pca=splits.pca, out_channels=model.config["in_channels"])
        return run(name, model, loader, transform.to(device), device, dtype, channels_last,
                   args.steps, args.warmup, ours=True)

    torch.manual_seed(0)
    naive_model = with_torch_lrn(build_model(splits, image_size=args.image_size, **lrn))
    naive_loader = naive_pipeline(splits, args.image_size, args.batch_size, workers)
    results = [run("naive", naive_model, naive_loader, None, device, None, False, args.steps,
                   args.warmup, ours=False)]
    del naive_model, naive_loader
    results.append(ours("alexnet_edu", dtype, channels_last))
    if args.precision_sweep:
        results.append(ours("alexnet_edu fp32+channels_last", None, True))
        bf16 = torch.bfloat16 if device.type != "cuda" or torch.cuda.is_bf16_supported() \
            else torch.float16
        results.append(ours(f"alexnet_edu {str(bf16)[6:]}+channels_last", bf16, True))

    naive = results[0]["images_per_s"]
    print(f"\n{'loop':<34} {'images/s':>9} {'data s':>8} {'compute s':>10} {'data %':>7}"
          f" {'vs naive':>9}")
    for r in results:
        total = r["data_s"] + r["compute_s"]
        print(f"{r['name']:<34} {r['images_per_s']:9.2f} {r['data_s']:8.2f} "
              f"{r['compute_s']:10.2f} {100 * r['data_s'] / total:6.1f}% "
              f"{r['images_per_s'] / naive:8.2f}x")
    n, o = results[0], results[1]
    print(f"\nper image: naive data {1e3 * n['data_s'] / n['images']:.1f} ms + compute "
          f"{1e3 * n['compute_s'] / n['images']:.1f} ms; alexnet_edu data "
          f"{1e3 * o['data_s'] / o['images']:.1f} ms + compute "
          f"{1e3 * o['compute_s'] / o['images']:.1f} ms")
    print(f"speedup: {o['images_per_s'] / naive:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
