"""The CLI's default run, timed: what a student without a GPU gets from

    python -m alexnet_edu train --dataset fashion-mnist --out RUN

with no other flag (the `cpu` profile on a machine without CUDA), then the test accuracy of its
best.pt on test images it never saw, via `python -m alexnet_edu evaluate --json`.

    ALEXNET_EDU_DATA=../shared/data python benchmarks/cli_default_run.py

Wall time counts both commands as a user runs them (fresh processes: importing torch, loading
the data, training, checkpoints, evaluating). The last line is `test_acc: 0.NNNN seconds: N`.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("extra", nargs="*", help="more `train` flags, after --")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}; python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "alexnet_edu", "train", "--dataset", args.dataset,
                        "--out", str(run), *args.extra], check=True)
        trained = time.perf_counter() - start
        result = subprocess.run([sys.executable, "-m", "alexnet_edu", "evaluate", "--checkpoint",
                                 str(run / "best.pt"), "--split", "test", "--json"],
                                check=True, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    summary = json.loads(result.stdout)
    print(f"train: {trained:.0f} s; test split: {summary['n']} images, top-1 "
          f"{summary['top1']:.4f}, synthetic data: {summary['synthetic']}")
    print(f"test_acc: {summary['top1']:.4f} seconds: {seconds:.0f}")


if __name__ == "__main__":
    main()
