"""Peak memory of `predict` on a folder of large photos: what a user gets who points it at a
camera's folder.

    python benchmarks/predict_memory.py                 # 64 photos of 12 megapixels (4000 x 3000)
    python benchmarks/predict_memory.py --n 16 --side 2000

Writes N JPEG photos of SIDE x (3/4 SIDE) pixels (smooth random colour fields, so that JPEG
decoding does real work), trains nothing: it saves a fresh 67 px AlexNet checkpoint in the
trainer's format, then runs `python -m alexnet_edu predict` on the folder in a child process and
reads that process's peak resident memory (ru_maxrss). The last line is `peak_mb: N seconds: N`.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from alexnet_edu import checkpoint as checkpoints
from alexnet_edu.model import AlexNet


def write_photos(folder: Path, n: int, side: int) -> None:
    g = np.random.default_rng(0)
    height = side * 3 // 4
    for i in range(n):
        small = g.integers(0, 255, (height // 100 + 2, side // 100 + 2, 3), dtype=np.uint8)
        Image.fromarray(small).resize((side, height), Image.BICUBIC).save(
            folder / f"photo{i:03d}.jpg", quality=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--side", type=int, default=4000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "photos"
        photos.mkdir()
        write_photos(photos, args.n, args.side)
        torch.manual_seed(0)
        model = AlexNet(10, 3, image_size=67, init="kaiming")
        checkpoint = {"format": checkpoints.FORMAT, "model_config": dict(model.config),
                      "model": model.state_dict(), "classes": [f"c{i}" for i in range(10)],
                      "mean": [0.5] * 3, "std": [0.25] * 3, "image_size": 67,
                      "in_channels_data": 3, "dataset": "photos"}
        checkpoints.save_checkpoint(checkpoint, Path(tmp) / "model.pt")
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "alexnet_edu", "predict", "--checkpoint",
                        str(Path(tmp) / "model.pt"), str(photos), "--top-k", "1", "--json",
                        "--device", "cpu"], check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024   # KiB on Linux
    print(f"{args.n} photos of {args.side} x {args.side * 3 // 4} px "
          f"({args.side * args.side * 3 / 4 / 1e6:.0f} megapixels each)")
    print(f"peak_mb: {peak_mb:.0f} seconds: {seconds:.0f}")


if __name__ == "__main__":
    main()
