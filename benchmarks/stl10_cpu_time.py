"""How long notebook 05's training takes in the `cpu` profile, on a machine without STL-10.

STL-10's training images are a 2.6 GB download that this repository's test machine cannot make,
so its accuracy in the `cpu` profile is unmeasured. Its *time* depends only on the shapes: this
writes stand-in STL-10 of the official size (5,000 training and 8,000 test images, 96 x 96 x 3,
the official binary format) and times the CLI's default STL-10 run on it,

    python -m alexnet_edu train --dataset stl10 --out RUN      (then evaluate --split test)

via `cli_default_run.py`. The accuracy it prints is on random patterns and says nothing about
STL-10; the seconds are what a student's run of the same size takes on this machine.

    python benchmarks/stl10_cpu_time.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from alexnet_edu.standin import generate_stl10

OFFICIAL_SIZE = {"n_train": 5_000, "n_test": 8_000}


def main() -> None:
    with tempfile.TemporaryDirectory() as root:
        generate_stl10(root, **OFFICIAL_SIZE)
        print(f"stand-in STL-10 of the official size in {root}: {OFFICIAL_SIZE}")
        # the cpu profile whatever this machine has (on a GPU the default would be `full`)
        env = {**os.environ, "ALEXNET_EDU_DATA": root, "ALEXNET_EDU_PROFILE": "cpu"}
        env.pop("ALEXNET_EDU_SMOKE", None)
        subprocess.run([sys.executable, str(Path(__file__).with_name("cli_default_run.py")),
                        "--dataset", "stl10"], check=True, env=env)


if __name__ == "__main__":
    main()
