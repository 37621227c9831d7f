"""Notebook 11's demonstration: run the command line's `train` in several processes here."""

from __future__ import annotations

import os
import subprocess
import sys

__all__ = ["launch"]


def launch(processes: int, train_args: list[str], threads: int = 1,
           env: dict[str, str] | None = None, timeout: float | None = None) -> str:
    """Run ``alexnet-edu train *train_args`` in `processes` processes on this machine (torchrun
    for more than one) and return its output; RuntimeError with the end of stderr if it fails,
    subprocess.TimeoutExpired after `timeout` seconds. For notebook 11 and the tests: CPU
    processes talking through gloo."""
    command = [sys.executable, "-m", "alexnet_edu", "train", *train_args]
    if processes > 1:
        command[1:1] = ["-m", "torch.distributed.run", "--standalone",
                        f"--nproc_per_node={processes}"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), **(env or {})}   # they share the cores
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except BaseException:   # a timeout or a Ctrl-C
            # torchrun stops its workers on SIGTERM; a SIGKILL, as subprocess.run's timeout
            # sends, would leave them training, orphaned (each runs in a session of its own)
            process.terminate()
            try:
                process.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
            raise
    if process.returncode != 0:
        # the processes' own messages come first, torchrun's summary of who failed last
        said = stderr if len(stderr) <= 3000 else f"{stderr[:1500]}\n[...]\n{stderr[-1500:]}"
        raise RuntimeError(f"training with {processes} process(es) failed:\n{said}")
    return stdout
