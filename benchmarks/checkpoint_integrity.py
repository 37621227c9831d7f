"""What checking a checkpoint's integrity costs: `checkpoint.load_checkpoint` reads every member
of the zip archive once to compare it with the CRC-32 stored at save (zipfile's testzip), before
torch.load. Measured on the paper's AlexNet (227 px, 1000 classes, 61 million weights: a 233 MiB
best.pt-sized file), from the page cache, as a ratio to torch.load alone in the same process.

    python benchmarks/checkpoint_integrity.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from alexnet_edu.checkpoint import FORMAT, save_checkpoint
from alexnet_edu.device import describe_device
from alexnet_edu.model import AlexNet
from alexnet_edu.validation import check_archive


def _best(seconds: list[float]) -> float:
    return min(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model = AlexNet(num_classes=1000, image_size=227, init="kaiming")
    checkpoint = {"format": FORMAT, "model_config": dict(model.config),
                  "model": model.state_dict(), "classes": [f"c{i}" for i in range(1000)],
                  "mean": [0.5] * 3, "std": [0.25] * 3, "image_size": 227}
    with tempfile.TemporaryDirectory() as folder:
        path = save_checkpoint(checkpoint, Path(folder) / "best.pt")
        size = path.stat().st_size
        path.read_bytes()   # into the page cache: both timings read from memory
        load, check = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            torch.load(path, map_location="cpu", weights_only=True)
            load.append(time.perf_counter() - start)
            start = time.perf_counter()
            check_archive(path)
            check.append(time.perf_counter() - start)
    print(f"{describe_device(torch.device('cpu'))}, torch {torch.__version__}")
    print(f"checkpoint: {size / 2**20:.0f} MiB ({sum(p.numel() for p in model.parameters()):,} "
          "weights)")
    print(f"torch.load alone: best {_best(load):.3f} s of {args.repeats} "
          f"({', '.join(f'{s:.3f}' for s in load)})")
    print(f"CRC check (zipfile testzip): best {_best(check):.3f} s "
          f"({', '.join(f'{s:.3f}' for s in check)}), "
          f"{size / 2**20 / _best(check):.0f} MiB/s")
    print(f"the check adds {_best(check) / _best(load):.2f}x the time of torch.load")


if __name__ == "__main__":
    main()
