"""benchmarks/lrn.py runs at tiny sizes and prints what it promises: LRN's share of a training
step for every precision x layout, and its last line `speedup: N.NN` (parsed by tools). Speed
itself is not asserted: timings belong to the benchmark, not to tests."""

from __future__ import annotations

import platform
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_lrn_benchmark_reports_the_share_for_every_precision_and_layout():
    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "lrn.py"), "--reps", "2", "--batch", "2",
         "--step-batch", "2", "--image-size", "67", "--threads", "1", "--clock", "cpu",
         "--precisions", "fp32,bf16,fp16"] + ["--keep-freed-memory"] * glibc,
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0].endswith(", freed memory kept") == glibc, lines[0]
    rows = {tuple(line.split()[:2]): line for line in lines if re.match(r"\s+fp(32|16)|\s+bf16",
                                                                        line) and "img/s" in line}
    assert set(rows) == {(p, layout) for p in ("fp32", "bf16", "fp16")
                         for layout in ("NCHW", "channels_last")}, result.stdout
    for line in rows.values():
        shares = [float(s) for s in re.findall(r"(-?\d+\.\d) %", line)]
        assert len(shares) == 2 and all(-100 < s < 100 for s in shares), line
    assert re.fullmatch(r"speedup: \d+\.\d\d", lines[-1]), lines[-1]


def test_lrn_benchmark_refuses_an_unknown_precision():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "lrn.py"),
                             "--precisions", "fp8", "--skip-step"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--precisions takes" in result.stderr
