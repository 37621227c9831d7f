"""The plan's predicted epoch time against the epochs a real run then takes.

    python benchmarks/plan_estimate.py                     # 2,048 training images, 67 px, batch 128
    python benchmarks/plan_estimate.py --images 4096 --epochs 3 --device cuda

`train.fit` prints a plan before it trains: the time per epoch predicted from two timed training
steps on a copy of the model (`runlog.estimate_epoch_seconds`). This runs that prediction, then
`train.fit` itself on the same data, configuration and device in the same process, and prints
each epoch's wall time (training + validation, from one `on_epoch_end` call to the next) and
the line ``ratio: measured / predicted = N.NN`` for the epochs after the first (the first also
pays for start-up). Data: the real Fashion-MNIST subset under $ALEXNET_EDU_DATA when present,
else generated stand-in images in the official format.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from train_throughput import load_data

from alexnet_edu.device import amp_dtype, describe_device, pick_device
from alexnet_edu.runlog import estimate_epoch_seconds
from alexnet_edu.train import TrainConfig, build_model, fit
from alexnet_edu.transforms import BatchTransform


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2048,
                        help="training images (the validation split comes on top)")
    parser.add_argument("--image-size", type=int, default=67)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)

    device = pick_device(args.device)
    splits, source = load_data(args.images)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, progress=False)
    model = build_model(splits, image_size=args.image_size, seed=config.seed)
    transform = BatchTransform(args.image_size, splits.mean, splits.std, train=True).to(device)
    print(f"device: {describe_device(device)}; torch {torch.__version__}")
    print(f"data: Fashion-MNIST, {source}; {len(splits.train)} train + {len(splits.val)} "
          f"validation images, {args.image_size} px, batch {args.batch_size}")

    predicted = estimate_epoch_seconds(model, splits, config, device, transform,
                                       amp_dtype(config.amp, device))
    print(f"predicted: {predicted:.1f} s per epoch")
    ends = [time.perf_counter()]
    with tempfile.TemporaryDirectory(prefix="alexnet-edu-plan-") as run_dir:
        fit(model, splits, config, run_dir, device,
            on_epoch_end=lambda history: ends.append(time.perf_counter()))
    measured = [b - a for a, b in zip(ends, ends[1:])]
    for epoch, seconds in enumerate(measured, 1):
        print(f"epoch {epoch}: {seconds:.1f} s ({seconds / predicted:.2f}x the prediction)")
    later = measured[1:] or measured
    print(f"ratio: measured / predicted = {statistics.median(later) / predicted:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
