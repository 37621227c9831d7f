"""Image folders read from disk (data.ImageFiles): images per second with 0, 1 and 2 DataLoader
workers against the model's training rate, and peak memory with 1x and 10x the images.

    ALEXNET_EDU_DATA=../shared/data python benchmarks/streaming.py

The folder is generated from the real STL-10 sample (stl10-sample/test), each image enlarged to
500 x 375 px (an ImageNet-like photo) and saved as a JPEG, quality 90. Each measurement reads
the folder once through `make_loader` (batch 64), as a training epoch would; memory is the peak
resident size of a fresh process reading it (its workers included), so 1x and 10x compare the
memory the streaming path needs, which should not grow with the folder.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from alexnet_edu import data, images
from alexnet_edu.model import AlexNet
from alexnet_edu.settings import data_root


def make_folder(folder: Path, copies: int) -> int:
    """The STL-10 sample as 500 x 375 JPEGs, `copies` times (mirrored on odd copies)."""
    sample = sorted((data_root() / "stl10-sample" / "test").rglob("*.png"))
    if not sample:
        sys.exit(f"no STL-10 sample under {data_root()}: set ALEXNET_EDU_DATA")
    n = 0
    for copy in range(copies):
        for path in sample:
            image = Image.open(path).convert("RGB").resize((500, 375), Image.BICUBIC)
            if copy % 2:
                image = image.transpose(Image.FLIP_LEFT_RIGHT)
            target = folder / path.parent.name / f"{copy}_{path.stem}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            image.save(target, quality=90)
            n += 1
    return n


def read_once(folder: Path, workers: int) -> float:
    """Images per second of one pass over `folder`, streamed."""
    classes, paths, labels = images.scan_folder(folder)
    files = data.ImageFiles(paths, torch.tensor(labels), classes)
    loader = data.make_loader(files, 64, shuffle=True, num_workers=workers)
    start = time.perf_counter()
    for _ in loader:
        pass
    return len(files) / (time.perf_counter() - start)


def model_rate(batch: int = 32) -> float:
    """Training images per second of the paper's AlexNet at 227 px (float32, CPU), 3 steps."""
    torch.manual_seed(0)
    model = AlexNet(num_classes=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    x, y = torch.randn(batch, 3, 227, 227), torch.randint(0, 10, (batch,))
    times = []
    for _ in range(4):
        start = time.perf_counter()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return batch / min(times[1:])


def peak_memory(folder: Path) -> dict:
    """Peak resident MB of a fresh process reading `folder` once with 2 workers."""
    code = ("import resource, sys, torch\nfrom pathlib import Path\n"
            "from alexnet_edu import data, images\n"
            "c, p, l = images.scan_folder(Path(sys.argv[1]))\n"
            "f = data.ImageFiles(p, torch.tensor(l), c)\n"
            "for _ in data.make_loader(f, 64, shuffle=True, num_workers=2): pass\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
            "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code, str(folder)], check=True,
                         capture_output=True, text=True).stdout.split()
    return {"main_mb": int(out[0]) // 1024, "worker_mb": int(out[1]) // 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--copies", type=int, default=2, help="copies of the sample for 1x")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as tmp:
        small, large = Path(tmp) / "1x", Path(tmp) / "10x"
        n_small = make_folder(small, args.copies)
        n_large = make_folder(large, 10 * args.copies)
        rates = {w: read_once(small, w) for w in (0, 1, 2)}
        train = model_rate()
        memory = {n_small: peak_memory(small), n_large: peak_memory(large)}
    for workers, rate in rates.items():
        print(f"{n_small} JPEGs of 500x375, {workers} worker(s): {rate:,.0f} images/s "
              f"({rate / train:.1f}x the model's training rate)")
    print(f"the paper's AlexNet trains {train:,.0f} images/s at 227 px (float32, batch 32)")
    for n, mb in memory.items():
        print(f"peak memory reading {n:,} images: {mb['main_mb']} MB main process, "
              f"{mb['worker_mb']} MB largest worker")
    print(json.dumps({"images_per_s": rates, "train_images_per_s": train, "memory": memory}))


if __name__ == "__main__":
    main()
