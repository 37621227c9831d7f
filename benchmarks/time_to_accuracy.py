"""Time to accuracy: how long does `alexnet_edu.train.fit` take to train AlexNet on the real
Fashion-MNIST subset, and what test accuracy does it reach?

    ALEXNET_EDU_DATA=../shared/data python benchmarks/time_to_accuracy.py     # <= 10 min, 2 cores
    python benchmarks/time_to_accuracy.py --limit 512 --budget 60              # a quick try
    python benchmarks/time_to_accuracy.py --limit 1536 --epochs 3 --batch-size 64 --patience 2 \
        --budget 3600 --precision-steps 0 --init pytorch   # notebook 04's table: stays at chance
    python benchmarks/time_to_accuracy.py --precision-only                     # bf16 vs fp32

Trains on the training subset minus a 10 % validation part (model selection), at a reduced
input size (67 px, the smallest the paper's layers take), with the recipe's defaults
(`TrainConfig`, `build_model`: kaiming init, the paper's SGD; the lr is divided by 10 at the
first epoch whose validation loss does not improve, --patience 0), until --epochs or the
--budget of seconds would be exceeded (the next epoch is not started when it would not fit). Then
evaluates the best checkpoint once on the test subset. Wall time counts everything: loading,
training, checkpoints, testing.

It first times a few training steps in float32, in bf16 autocast and in channels-last, in this
process, and prints the ratios: that is how `train.amp_dtype("auto", cpu)` was decided (bf16
only on CPUs with bf16 hardware). The last line is `test_acc: 0.NNNN seconds: N`.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time

import torch

from alexnet_edu import data, train
from alexnet_edu.device import describe_device
from alexnet_edu.model import AlexNet


def step_seconds(image_size: int, batch: int, steps: int, autocast: bool,
                 channels_last: bool) -> float:
    """Median seconds per SGD training step of the paper AlexNet (10 classes, grey input)."""
    torch.manual_seed(0)
    model = AlexNet(10, 1, image_size=image_size, init="kaiming")
    x, y = torch.randn(batch, 1, image_size, image_size), torch.randint(0, 10, (batch,))
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(
            memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if i:   # the first step warms up
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image-size", type=int, default=67)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--budget", type=float, default=540, help="seconds for training")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--warmup-epochs", type=float, default=0.0)
    parser.add_argument("--patience", type=int, default=0,
                        help="epochs without a better validation loss before lr / 10 (0: at the "
                             "first one; a 10-minute budget has no room to wait)")
    parser.add_argument("--init", default="kaiming", choices=["kaiming", "paper", "pytorch"])
    parser.add_argument("--limit", type=int, default=None, help="images per split (quick tries)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision-steps", type=int, default=3)
    parser.add_argument("--precision-only", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    print(f"device: {describe_device(device)}; {platform.processor() or platform.machine()}; "
          f"torch {torch.__version__}")

    if args.precision_steps:
        fp32 = step_seconds(args.image_size, 64, args.precision_steps, False, False)
        bf16 = step_seconds(args.image_size, 64, args.precision_steps, True, False)
        cl = step_seconds(args.image_size, 64, args.precision_steps, False, True)
        print(f"training step, batch 64 at {args.image_size} px: float32 {fp32:.3f} s; "
              f"bf16 autocast {bf16 / fp32:.2f}x that time; channels-last {cl / fp32:.2f}x; "
              f"amp_dtype('auto') here: {train.amp_dtype('auto', device)}")
        if args.precision_only:
            return

    start = time.perf_counter()
    splits = data.load_splits("fashion-mnist", limit=args.limit)
    if splits.synthetic:
        print("WARNING: generated stand-in data, not Fashion-MNIST (set ALEXNET_EDU_DATA)")
    print(splits)
    torch.manual_seed(0)
    model = train.build_model(splits, image_size=args.image_size, init=args.init)
    config = train.TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                               warmup_epochs=args.warmup_epochs, patience=args.patience,
                               progress=False)
    train_start = time.perf_counter()

    def stop_when_out_of_time(history):
        # Stop (fit saves and returns) when another epoch like the last would pass the budget.
        elapsed = time.perf_counter() - train_start
        if elapsed + elapsed / len(history) > args.budget:
            print(f"stopping after epoch {len(history)}: {elapsed:.0f} s of {args.budget:.0f}")
            raise KeyboardInterrupt

    with tempfile.TemporaryDirectory() as run:
        history = train.fit(model, splits, config, run, device,
                            on_epoch_end=stop_when_out_of_time)
        best, checkpoint = train.load_model(f"{run}/best.pt")
        test = train.evaluate(best, splits.test, checkpoint, device)
    seconds = time.perf_counter() - start
    best_epoch = max(history, key=lambda row: row["val_acc"])
    print(f"{len(history)} epochs; best val_acc {best_epoch['val_acc']:.4f} at epoch "
          f"{best_epoch['epoch']}; test top-1 {test['top1']:.4f} on {test['n']} images")
    print(f"test_acc: {test['top1']:.4f} seconds: {seconds:.0f}")


if __name__ == "__main__":
    main()
