"""One command that proves the GPU path: what alexnet_edu does on this GPU, as a Markdown and a
JSON report, in under 8 minutes (--budget, default 450 s, plus start-up).

    python benchmarks/gpu_check.py                              # on a CUDA GPU
    python benchmarks/gpu_check.py --data ../shared/data --out runs/gpu_check
    python benchmarks/gpu_check.py --dry-run --out /tmp/check   # every section on the CPU, tiny

Writes OUT/gpu_check.md and OUT/gpu_check.json (OUT: --out, default runs/gpu_check), again after
every section, so that a run cut short still leaves what it measured. Each section is timed; one
that fails is reported with its error and the others still run. Once --budget seconds have
passed, nothing new starts: the measurement in flight ends (a few seconds on a GPU), the ones
left in its section and the sections left are reported as not run.

1. environment: the GPU, driver, CUDA, cuDNN, torch and torchvision; the precision
   `device.amp_dtype("auto")` picks here and why (the compute capability).
2. cuda_tests: ``pytest -m cuda`` (tests/test_cuda.py): passed, failed, skipped.
3. throughput: images/s of a training step at 227 px, batch 128: the trainer's own step
   (`train.train_one_epoch`, as `train.fit` runs it: the batch transform on the GPU, SGD, a
   GradScaler under float16) in float32 and in autocast (AMP), NCHW and channels_last, against
   the naive loop of benchmarks/train_throughput.py (per-image torchvision transforms, 2 DataLoader
   workers, `nn.LocalResponseNorm`, float32) in the same process; and the FLOP/s each step
   achieves (`shapes.trace`'s multiply-adds x 2 x 3, for the forward pass and the backward
   pass's two products) against this GPU's `torch.matmul` peak in the same precision.
4. lrn_share: LRN's share of the step's compute time (lrn=True against lrn=False), in each
   precision and layout.
5. memory: peak memory (`torch.cuda.max_memory_allocated`) of two trainer steps per batch size
   (train.fit's precision and layout), doubling until the GPU runs out (or --max-batch); the
   memory each added image costs; the largest batch that fits.
6. distributed: with two GPUs or more, torchrun + NCCL with batch B per process ends with the
   weights of one process with batch 2B (tests/test_distributed.py does it with gloo on the
   CPU); with fewer, skipped with the reason.
7. fashion_mnist: `train.fit` in the `full` profile (227 px, every image of Fashion-MNIST under
   --data, downloaded there first when absent: 30 MB) for --epochs (fewer when the budget would
   run out), then the best epoch's test top-1.

--dry-run runs the same sections on the CPU at tiny sizes (67 px, batches of 4, the smoke
profile's Fashion-MNIST: --data's when it is there, else generated stand-ins; section 6 with
gloo in two CPU processes), so that tests/test_gpu_check.py proves that the script runs before
a GPU is at hand; its numbers mean nothing. Exit status: 0 when no section failed, 1 when one
did, 2 without a CUDA GPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import gc
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
import torchvision
from train_throughput import load_data, naive_pipeline, run, with_torch_lrn

from alexnet_edu import standin
from alexnet_edu.checkpoint import load_model
from alexnet_edu.data import load_splits, make_loader
from alexnet_edu.device import amp_dtype, describe_device
from alexnet_edu.machine import cpu_name
from alexnet_edu.notebook.parallel import launch
from alexnet_edu.profiles import run_size
from alexnet_edu.runlog import estimate_epoch_seconds
from alexnet_edu.settings import PROJECT_ROOT, data_root
from alexnet_edu.shapes import trace
from alexnet_edu.train import (
    OutOfMemory,
    TrainConfig,
    _prepare,
    _transforms,
    build_model,
    evaluate,
    fit,
    train_one_epoch,
)


@dataclass(frozen=True)
class Sizes:
    """How much each section does: on a GPU, or in the dry run on the CPU."""

    image_size: int          # training-step input side
    batch: int               # throughput and LRN share
    warmup: int              # untimed steps first (allocations, cuDNN's choice of kernels)
    steps: int               # timed steps
    first_batch: int         # memory: the first batch size, doubled until out of memory
    max_batch: int
    matmul: int              # side of the square matrices of the matmul peak
    profile: str             # the Fashion-MNIST run's sizes (profiles.SIZES)
    epochs: int
    test_paths: tuple[str, ...]   # where pytest looks for `cuda` tests


# max_batch 4096: at 8192, conv1's output (8192 x 96 x 55 x 55) passes 2^31 elements, where
# some kernels refuse; a GPU that holds 4096 at 227 px says ">= 4096 fits"
GPU = Sizes(227, 128, 3, 10, 32, 4096, 8192, "full", 3, ("tests",))
# the dry run collects test_cuda.py alone: collecting every test module takes ~15 s on 2 cores
DRY = Sizes(67, 4, 1, 1, 2, 8, 256, "smoke", 1, ("tests/test_cuda.py",))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _free(device: torch.device) -> None:
    """Give the memory of the last section's models back (before timing or measuring more)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def past(deadline: float) -> bool:
    """The budget is used up: start nothing new."""
    return time.perf_counter() > deadline


def dtype_name(dtype: torch.dtype | None) -> str:
    return str(dtype or torch.float32).removeprefix("torch.")


class Finding(Exception):
    """A section ran and found something wrong: its numbers are reported with the error."""

    def __init__(self, message: str, result: dict):
        super().__init__(message)
        self.result = result


class Skipped(Exception):
    """A section that cannot run here: the reason, and what it found out."""

    def __init__(self, reason: str, result: dict | None = None):
        super().__init__(reason)
        self.result = result


# ---------------------------------------------------------------------------------------------
# 1. environment
# ---------------------------------------------------------------------------------------------

def environment(device: torch.device) -> dict:
    """What this report was measured on, and the precision `train.fit` trains in here."""
    dtype = amp_dtype("auto", device)
    info = {"device": describe_device(device), "cpu": cpu_name(),
            "python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "torch_cuda": torch.version.cuda,
            "gpus": torch.cuda.device_count(), "amp_auto": dtype_name(dtype),
            "amp_reason": amp_reason(device, dtype)}
    if device.type != "cuda":
        return {**info, "driver": "none (no CUDA GPU in use)"}
    props = torch.cuda.get_device_properties(device)
    return {**info, "gpu": props.name, "compute_capability": f"{props.major}.{props.minor}",
            "memory_gib": props.total_memory / 2**30, "driver": nvidia_driver(),
            "cudnn": torch.backends.cudnn.version(),
            "tf32_convolutions": torch.backends.cudnn.allow_tf32,
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32}


def amp_reason(device: torch.device, dtype: torch.dtype | None) -> str:
    """Why `amp_dtype("auto")` gave `dtype` here (see its docstring for the rule)."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        why = {torch.bfloat16: "bfloat16 units (Ampere or newer): no loss scaling needed",
               torch.float16: "no bfloat16 units (before Ampere, bf16 is emulated, slowly): "
                              "float16 with a GradScaler"}.get(dtype, "float32")
        return f"compute capability {major}.{minor}: {why}"
    if dtype is None:
        return "a CPU without AMX bfloat16 units, where bfloat16 runs slower than float32"
    return f"a CPU with AMX bfloat16 units: {dtype_name(dtype)}"


def nvidia_driver() -> str:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return "unknown (no nvidia-smi on PATH)"
    done = subprocess.run([smi, "--query-gpu=driver_version", "--format=csv,noheader"],
                          capture_output=True, text=True, timeout=60)
    return done.stdout.strip().splitlines()[0] if done.stdout.strip() else (
        f"unknown (nvidia-smi: {done.stderr.strip()[:200]})")


# ---------------------------------------------------------------------------------------------
# 2. the tests that need CUDA
# ---------------------------------------------------------------------------------------------

def cuda_tests(paths: tuple[str, ...], out: Path, seconds: float) -> dict:
    """``pytest -m cuda`` in a fresh process; its counts from the JUnit XML it writes."""
    if seconds < 30:
        raise Skipped(f"{seconds:.0f} s of the budget left: too little for pytest -m cuda")
    junit = out / "cuda_tests.xml"
    junit.unlink(missing_ok=True)   # an earlier run's must not pass for this one's
    # addopts emptied: its nbval options need nbval, which a GPU machine may lack; and a test
    # module that cannot be imported there (a missing extra) must not stop the cuda tests
    command = [sys.executable, "-m", "pytest", "-m", "cuda", *paths, "-q", "-o", "addopts=",
               "-p", "no:cacheprovider", "--continue-on-collection-errors",
               f"--junitxml={junit}"]
    try:
        done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True,
                              timeout=seconds)
    except subprocess.TimeoutExpired:
        raise TimeoutError(f"pytest -m cuda did not finish in {seconds:.0f} s (the budget "
                           "left)") from None
    if not junit.exists():
        raise RuntimeError(f"pytest wrote no report (exit {done.returncode}): "
                           f"{(done.stdout + done.stderr)[-1500:]}")
    result = {"command": "pytest -m cuda " + " ".join(paths), **junit_counts(junit)}
    if result["failed"] or result["errors"] or not result["passed"] + result["skipped"]:
        raise Finding(f"{result['failed']} failed, {result['errors']} errors, "
                      f"{result['passed'] + result['skipped']} ran or skipped: "
                      f"{'; '.join(result['problems'] + result['not_collected'])}", result)
    return result


def junit_counts(path: Path) -> dict:
    """passed / failed / errors / skipped, the failures' first lines, the skip reasons, and the
    test modules that could not be imported (reported, not counted: on a GPU machine without
    the notebook tools, modules that need them cannot be, and hold no cuda test)."""
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    problems, reasons, not_collected = [], set(), []
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        outcome = next((c for c in case if c.tag in ("failure", "error", "skipped")), None)
        if outcome is None:
            counts["passed"] += 1
        elif outcome.get("message") == "collection failure":
            last = (outcome.text or "").strip().splitlines() or [""]
            not_collected.append(f"{case.get('name')}: {last[-1].removeprefix('E').strip()}")
        elif outcome.tag == "skipped":
            counts["skipped"] += 1
            reasons.add(outcome.get("message", ""))
        else:
            counts["failed" if outcome.tag == "failure" else "errors"] += 1
            first = (outcome.get("message") or "").strip().splitlines() or [""]
            problems.append(f"{name}: {first[0]}")
    return {**counts, "problems": problems, "skip_reasons": sorted(reasons),
            "not_collected": not_collected}


# ---------------------------------------------------------------------------------------------
# 3.-5. speed and memory of the trainer's step
# ---------------------------------------------------------------------------------------------

@functools.cache
def bench_splits(n_images: int):
    """Fashion-MNIST (or stand-ins: the speed does not depend on what the images show)."""
    return load_data(n_images)[0]


def variants(device: torch.device) -> list[tuple[str, str, bool]]:
    """(name, TrainConfig.amp, channels_last) of the trainer's steps to time. A CPU without
    bfloat16 units (where "auto" means float32) times bfloat16, to run the path at all."""
    amp = "auto" if amp_dtype("auto", device) is not None else "bf16"
    return [("fp32", "off", False), ("fp32 channels_last", "off", True),
            ("amp", amp, False), ("amp channels_last", amp, True)]


def time_trainer(splits, sizes: Sizes, device: torch.device, amp: str, channels_last: bool,
                 lrn: bool = True) -> dict:
    """Seconds waiting for data (loader + batch transform) and computing (forward, backward,
    update) in the trainer's step, `train_one_epoch`'s loop, over `sizes.steps` batches."""
    _free(device)
    model = build_model(splits, image_size=sizes.image_size, lrn=lrn)
    config = TrainConfig(batch_size=sizes.batch, amp=amp, channels_last=channels_last,
                         progress=False)
    optimizer, _, scaler, dtype = _prepare(model, config, device)
    augment, _ = _transforms(model, splits, config, device)
    batches = iter(make_loader(splits.train, sizes.batch, shuffle=True, device=device))
    data_s = compute_s = 0.0
    for i in range(sizes.warmup + sizes.steps):
        _sync(device)
        start = time.perf_counter()
        images, targets = next(batches)
        x, targets = augment(images.to(device)), targets.to(device)
        _sync(device)
        middle = time.perf_counter()
        # the trainer's step on the transformed batch (its loss.item() waits for the GPU)
        train_one_epoch(model, [(x, targets)], optimizer, scaler, _Transformed(augment), device,
                        0, config, dtype)
        _sync(device)
        if i >= sizes.warmup:
            data_s += middle - start
            compute_s += time.perf_counter() - middle
    images = sizes.steps * sizes.batch
    # conv2's weights: conv1's, with one input channel, are contiguous in both layouts
    return {"precision": dtype_name(dtype), "channels_last": model.conv2.weight.is_contiguous(
                memory_format=torch.channels_last),
            "images_per_s": images / (data_s + compute_s), "compute_s": compute_s,
            "compute_images_per_s": images / compute_s}


class _Transformed(torch.nn.Identity):
    """Batches `transform` already made, passed through (train_one_epoch reads the size)."""

    def __init__(self, transform):
        super().__init__()
        self.image_size, self.out_channels = transform.image_size, transform.out_channels


def time_naive(splits, sizes: Sizes, device: torch.device) -> dict:
    """benchmarks/train_throughput.py's naive loop (per-image PIL transforms, nn.LRN, float32)."""
    _free(device)
    torch.manual_seed(0)
    model = with_torch_lrn(build_model(splits, image_size=sizes.image_size))
    loader = naive_pipeline(splits, sizes.image_size, sizes.batch, min(2, os.cpu_count() or 1))
    r = run("naive", model, loader, None, device, None, False, sizes.steps, sizes.warmup,
            ours=False)
    return {"precision": "float32", "channels_last": False, "images_per_s": r["images_per_s"],
            "compute_s": r["compute_s"], "compute_images_per_s": r["images"] / r["compute_s"]}


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int, reps: int = 10) -> float:
    """FLOP/s of `torch.matmul` on two n x n matrices of `dtype`: this device's practical peak
    in that precision (TF32 as PyTorch's settings allow it)."""
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    torch.matmul(a, b)
    _sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        torch.matmul(a, b)
    _sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - start)


def peaks(device: torch.device, n: int) -> dict[str, float]:
    """Matmul peaks (FLOP/s) in float32, in TF32 where a GPU has it (compute capability 8.0 or
    newer, where cuDNN runs float32 convolutions in TF32 by default), and in each AMP dtype."""
    found = {"float32": matmul_peak(device, torch.float32, n)}
    if device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8:
        before = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = True
        try:
            found["tf32"] = matmul_peak(device, torch.float32, n)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = before
    for _, amp, _ in variants(device):
        dtype = amp_dtype(amp, device)
        if dtype is not None and dtype_name(dtype) not in found:
            found[dtype_name(dtype)] = matmul_peak(device, dtype, n)
    return found


def reference_peak(precision: str, found: dict[str, float]) -> str:
    """Which peak a step in `precision` is held against: float32 steps against TF32 where
    cuDNN's float32 convolutions (nearly all of AlexNet's FLOPs) run in TF32."""
    if precision == "float32" and "tf32" in found and torch.backends.cudnn.allow_tf32:
        return "tf32"
    return precision


def training_flops(splits, image_size: int) -> int:
    """FLOPs of one training image: the forward pass's multiply-adds (`shapes.trace`) x 2 (a
    multiply and an add) x 3 (the forward product, and the backward pass's two: the gradients
    of the inputs and of the weights)."""
    model = build_model(splits, image_size=image_size)
    return 6 * trace(model, (model.config["in_channels"], image_size, image_size)).total_mult_adds


def throughput(sizes: Sizes, device: torch.device, deadline: float) -> dict:
    splits = bench_splits(sizes.batch * (sizes.warmup + sizes.steps))
    flops = training_flops(splits, sizes.image_size)
    found = peaks(device, sizes.matmul)
    fit_default = (dtype_name(amp_dtype("auto", device)), device.type == "cuda")
    rows, not_timed = [{"step": "naive", **time_naive(splits, sizes, device)}], []
    for name, amp, channels_last in variants(device):
        if past(deadline):
            not_timed.append(name)
            continue
        rows.append({"step": name, **time_trainer(splits, sizes, device, amp, channels_last)})
    for i, row in enumerate(rows):
        peak = reference_peak(row["precision"], found)
        achieved = flops * row.pop("compute_images_per_s")
        row.update(vs_naive=row["images_per_s"] / rows[0]["images_per_s"],
                   tflops=achieved / 1e12, peak=peak, share_of_peak=achieved / found[peak],
                   fit_default=i > 0 and (row["precision"], row["channels_last"]) == fit_default)
        del row["compute_s"]
    return {"image_size": sizes.image_size, "batch": sizes.batch, "timed_steps": sizes.steps,
            "gflops_per_training_image": flops / 1e9,
            "matmul_peak_tflops": {k: v / 1e12 for k, v in found.items()}, "rows": rows,
            **_not_run(not_timed),
            "note": "images/s counts data and compute; TFLOP/s and the share of the matmul peak "
                    "count the compute (forward, backward, update) alone"}


def _not_run(names: list) -> dict:
    """The report's line for what the budget left out, if anything."""
    return {"not_run_budget_used_up": names} if names else {}


def lrn_share(sizes: Sizes, device: torch.device, deadline: float) -> dict:
    splits = bench_splits(sizes.batch * (sizes.warmup + sizes.steps))
    rows, not_timed = [], []
    for name, amp, channels_last in variants(device):
        if past(deadline):
            not_timed.append(name)
            continue
        with_lrn = time_trainer(splits, sizes, device, amp, channels_last, lrn=True)
        without = time_trainer(splits, sizes, device, amp, channels_last, lrn=False)
        rows.append({"step": name, "precision": with_lrn["precision"],
                     "with_lrn_ms": 1e3 * with_lrn["compute_s"] / sizes.steps,
                     "without_lrn_ms": 1e3 * without["compute_s"] / sizes.steps,
                     "lrn_share": 1 - without["compute_s"] / with_lrn["compute_s"]})
    return {"image_size": sizes.image_size, "batch": sizes.batch, "rows": rows,
            **_not_run(not_timed),
            "note": "share = 1 - compute time without LRN / with it (forward, backward, update)"}


def peak_memory(splits, image_size: int, batch: int, device: torch.device) -> int | None:
    """Peak bytes allocated by two trainer steps (the second holds the momentum buffers too) on
    random images of `batch`, with train.fit's defaults for this device; None on a CPU."""
    _free(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    model = build_model(splits, image_size=image_size)
    config = TrainConfig(batch_size=batch, progress=False)
    optimizer, _, scaler, dtype = _prepare(model, config, device)
    augment, _ = _transforms(model, splits, config, device)
    images = torch.randint(0, 256, (batch, *splits.train.images.shape[1:]), dtype=torch.uint8,
                           device=device)
    targets = torch.randint(0, len(splits.classes), (batch,), device=device)
    train_one_epoch(model, [(images, targets)] * 2, optimizer, scaler, augment, device, 0, config,
                    dtype)
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) - before


def memory(sizes: Sizes, device: torch.device, deadline: float) -> dict:
    splits = bench_splits(sizes.batch * (sizes.warmup + sizes.steps))
    rows, batch, largest = [], min(sizes.first_batch, sizes.max_batch), None
    stop = f"--max-batch {sizes.max_batch} reached"
    while batch <= sizes.max_batch:
        if past(deadline):
            stop = f"the budget was used up before batch {batch}"
            break
        try:
            peak = peak_memory(splits, sizes.image_size, batch, device)
        except (torch.OutOfMemoryError, OutOfMemory):
            rows.append({"batch": batch, "fits": False, "peak_mib": None,
                         "mib_per_added_image": None})
            break
        except RuntimeError as err:   # not an out-of-memory: a finding, with the rows so far
            raise Finding(f"batch {batch}: {err}", {"rows": rows}) from err
        finally:
            _free(device)
        mib = None if peak is None else peak / 2**20
        # per added image: the weights, gradients and momentum do not grow with the batch
        before = rows[-1] if rows else None
        added = (None if mib is None or before is None else
                 (mib - before["peak_mib"]) / (batch - before["batch"]))
        rows.append({"batch": batch, "fits": True, "peak_mib": mib,
                     "mib_per_added_image": added})
        largest, batch = batch, batch * 2
    if rows and not rows[-1]["fits"]:
        stop = f"out of memory at batch {rows[-1]['batch']}"
    elif largest is not None:
        stop += f": at least {largest} fits"
    config = TrainConfig()
    return {"image_size": sizes.image_size,
            "precision": dtype_name(amp_dtype(config.amp, device)),
            "channels_last": device.type == "cuda", "rows": rows, "largest_batch": largest,
            "stopped": stop, "measured": "torch.cuda.max_memory_allocated" if
            device.type == "cuda" else "nothing: a CPU has no allocator statistics"}


# ---------------------------------------------------------------------------------------------
# 6. data parallelism
# ---------------------------------------------------------------------------------------------

def same_weights(one: Path, two: Path, rtol: float = 1e-3, atol: float = 1e-5) -> dict:
    """How far apart two checkpoints' weights are, and whether they agree to float32 rounding
    (the all-reduce sums in another order than one batch does)."""
    a = torch.load(one, map_location="cpu", weights_only=True)["model"]
    b = torch.load(two, map_location="cpu", weights_only=True)["model"]
    worst = max((b[k].float() - v.float()).abs().max().item() for k, v in a.items())
    close = all(torch.allclose(b[k].float(), v.float(), rtol=rtol, atol=atol)
                for k, v in a.items())
    return {"max_abs_difference": worst, "equal_within": f"rtol {rtol:g}, atol {atol:g}",
            "equal": close}


def data_parallel(device: torch.device, deadline: float) -> dict:
    """On two GPUs or more, NCCL; in the dry run (`device` the CPU) the same code with gloo."""
    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    if device.type == "cuda" and gpus < 2:
        raise Skipped(f"{gpus} CUDA GPU(s) in use: NCCL data parallelism needs 2 "
                      "(tests/test_distributed.py checks the same with gloo on the CPU)",
                      {"gpus": gpus})
    backend = "NCCL" if device.type == "cuda" else "gloo, on the CPU"
    common = ["--dataset", "fashion-mnist", "--limit", "32", "--image-size", "67", "--epochs",
              "1", "--no-augment", "--dropout", "0", "--amp", "off", "--device", device.type]
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        standin.generate_fashion_mnist(root / "data", n_train=80, n_test=20, seed=0)
        for processes, batch in ((1, 16), (2, 8)):   # 32 images: 2 steps of 16 in both
            # a hung process group must not hold the check past its budget (60 s at least)
            launch(processes, [*common, "--data-root", str(root / "data"), "--batch-size",
                               str(batch), "--out", str(root / str(processes))],
                   env={"ALEXNET_EDU_PROFILE": "smoke"},
                   timeout=max(deadline - time.perf_counter(), 60))
        result = {"gpus": gpus, "compared": f"torchrun 2 processes x batch 8 ({backend}) "
                  "against 1 process x batch 16", **same_weights(root / "1" / "last.pt",
                                                                 root / "2" / "last.pt")}
    if not result["equal"]:
        raise Finding("two processes ended with other weights than one", result)
    return result


# ---------------------------------------------------------------------------------------------
# 7. a short full-profile run
# ---------------------------------------------------------------------------------------------

def fashion_mnist_splits(root: Path, limit: int | None, dry: bool):
    """(splits, where from): Fashion-MNIST under `root`, downloaded there when absent (as
    `train` does); in the dry run stand-ins when absent."""
    raw = root / "FashionMNIST" / "raw"
    if dry:
        return load_data(limit)
    if not any(raw.glob("train-images-idx3-ubyte*")):
        print(f"Fashion-MNIST is not in {raw}: downloading it there (30 MB)", flush=True)
        # a machine that drops packets to the internet must not hang the check past its budget
        socket.setdefaulttimeout(30)
    return load_splits("fashion-mnist", root=root, limit=limit, download=True), str(raw)


def fashion_mnist(sizes: Sizes, device: torch.device, root: Path, dry: bool,
                  deadline: float) -> dict:
    size = run_size("fashion-mnist", sizes.profile, epochs=sizes.epochs)
    splits, source = fashion_mnist_splits(root, size.limit, dry)
    model = build_model(splits, image_size=size.image_size)
    config = size.train_config(progress=False)
    augment, _ = _transforms(model, splits, config, device)
    per_epoch = estimate_epoch_seconds(model, splits, config, device, augment,
                                       amp_dtype(config.amp, device))
    if time.perf_counter() + per_epoch > deadline:
        raise Skipped(f"one epoch would take about {per_epoch:.0f} s (the plan's estimate), "
                      f"more than the {max(deadline - time.perf_counter(), 0):.0f} s of the "
                      "budget left")
    started, stopped = time.perf_counter(), []

    def stop_before_deadline(history: list[dict]) -> bool:
        # True: fit stops after this epoch (its checkpoints saved) and returns
        per_epoch = (time.perf_counter() - started) / len(history)
        if len(history) < config.epochs and time.perf_counter() + per_epoch > deadline:
            stopped.append(f"after epoch {len(history)}: another would pass the budget")
            return True
        return False

    with tempfile.TemporaryDirectory() as run_dir:
        history = fit(model, splits, config, run_dir, device, on_epoch_end=stop_before_deadline)
        best, checkpoint = load_model(Path(run_dir) / "best.pt", device)
        test = evaluate(best, splits.test, checkpoint, device)
    return {"profile": sizes.profile, "data": source, "synthetic": splits.synthetic,
            "train_images": len(splits.train), "val_images": len(splits.val),
            "test_images": test["n"], "image_size": size.image_size,
            "batch_size": config.batch_size, "lr": config.lr,
            "precision": dtype_name(amp_dtype(config.amp, device)),
            "epochs": f"{len(history)} of {config.epochs}", "estimated_epoch_s": per_epoch,
            "stopped": stopped[0] if stopped else None,
            "best_val_acc": max(row["val_acc"] for row in history),
            "test_top1": test["top1"], "train_seconds": sum(row["seconds"] for row in history),
            "history": [{k: row[k] for k in ("epoch", "train_loss", "val_acc", "images_per_s",
                                             "seconds")} for row in history]}


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------

class Report:
    """Runs the sections, each timed and guarded, and writes both reports after each."""

    def __init__(self, out: Path, budget: float, header: dict):
        self.out, self.budget, self.started = out, budget, time.perf_counter()
        self.data = {**header, "budget_s": budget, "elapsed_s": 0.0, "sections": {}}
        out.mkdir(parents=True, exist_ok=True)

    @property
    def deadline(self) -> float:
        return self.started + self.budget

    @property
    def failed(self) -> list[str]:
        return [k for k, s in self.data["sections"].items() if s["status"] == "failed"]

    def section(self, name: str, measure: Callable[[], dict]) -> None:
        start = time.perf_counter()
        print(f"\n== {name}", flush=True)
        if start > self.deadline:
            entry = {"status": "skipped", "reason": f"the --budget of {self.budget:.0f} s was "
                     f"used up ({start - self.started:.0f} s had passed)"}
        else:
            try:
                entry = {"status": "ok", "result": measure()}
            except Skipped as why:
                entry = {"status": "skipped", "reason": str(why), "result": why.result}
            except Exception as err:   # reported; the next sections still run
                entry = {"status": "failed", "error": f"{type(err).__name__}: {err}",
                         "traceback": traceback.format_exc(limit=-4),
                         "result": getattr(err, "result", None)}
        entry["seconds"] = time.perf_counter() - start
        self.data["sections"][name] = {k: v for k, v in entry.items() if v is not None}
        self.data["elapsed_s"] = time.perf_counter() - self.started
        print(f"== {name}: {entry['status']} ({entry['seconds']:.1f} s)"
              + (f": {entry['error']}" if "error" in entry else ""), flush=True)
        self.write()

    def write(self) -> None:
        (self.out / "gpu_check.json").write_text(json.dumps(self.data, indent=1, default=str))
        (self.out / "gpu_check.md").write_text(markdown(self.data))


def _cell(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_cell(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "; ".join(map(_cell, value)) or "none"
    return "–" if value is None else str(value)


def _table(rows: list[dict]) -> list[str]:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    return (["| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys)]
            + ["| " + " | ".join(_cell(row.get(k)) for k in keys) + " |" for row in rows])


def markdown(report: dict) -> str:
    lines = [f"# GPU check: {report['device']}", "",
             f"`{report['command']}`, {report['started']}: {report['elapsed_s']:.0f} s of a "
             f"{report['budget_s']:.0f} s budget."]
    if report["dry_run"]:
        lines.append("Dry run on the CPU at tiny sizes: it shows that every section runs; its "
                     "numbers mean nothing.")
    for i, (name, entry) in enumerate(report["sections"].items(), 1):
        lines += ["", f"## {i}. {name}: {entry['status']} ({entry['seconds']:.1f} s)", ""]
        if "error" in entry:
            lines += ["```", entry["error"], "```"]
        if "reason" in entry:
            lines.append(entry["reason"])
        tables = []
        for key, value in (entry.get("result") or {}).items():
            if isinstance(value, list) and value and isinstance(value[0], dict):
                tables += ["", f"{key}:", "", *_table(value)]
            else:
                lines.append(f"- {key}: {_cell(value)}")
        lines += tables
    return "\n".join(lines) + "\n"


def positive(kind: type) -> Callable[[str], int | float]:
    """An argparse type: a number of `kind` above 0, else a usage error."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value > 0 or value == float("inf"):
            raise argparse.ArgumentTypeError(f"must be a {kind.__name__} above 0, got {text!r}")
        return value
    return parse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true",
                        help="every section on the CPU at tiny sizes (CI); numbers mean nothing")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "runs" / "gpu_check",
                        help="folder for gpu_check.md and gpu_check.json (default runs/gpu_check)")
    parser.add_argument("--data", type=Path, default=None,
                        help="data root holding FashionMNIST/raw (default: $ALEXNET_EDU_DATA, "
                             "else the repository's data/)")
    parser.add_argument("--budget", type=positive(float), default=450,
                        help="seconds; after them nothing new starts (default 450: with "
                             "start-up and the step in flight, under 8 minutes)")
    parser.add_argument("--epochs", type=positive(int), default=None,
                        help="Fashion-MNIST epochs (default 3; dry run 1)")
    parser.add_argument("--max-batch", type=positive(int), default=None,
                        help="largest batch the memory section tries (default 4096; dry run 8)")
    args = parser.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_check: PyTorch sees no CUDA GPU here; --dry-run runs the sections on the CPU",
              file=sys.stderr)
        return 2
    if args.data is not None:   # one data root for every section (and train_throughput's loader)
        os.environ["ALEXNET_EDU_DATA"] = str(args.data.expanduser().resolve())
    root = data_root()
    sizes = dataclasses.replace(DRY if args.dry_run else GPU, **{
        k: v for k, v in (("epochs", args.epochs), ("max_batch", args.max_batch))
        if v is not None})
    device = torch.device("cpu" if args.dry_run else "cuda")
    report = Report(args.out, args.budget, {
        "command": " ".join(["python benchmarks/gpu_check.py", *(argv or sys.argv[1:])]),
        "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "dry_run": args.dry_run, "device": describe_device(device), "data": str(root),
        "sizes": dataclasses.asdict(sizes)})
    report.section("environment", lambda: environment(device))
    report.section("cuda_tests", lambda: cuda_tests(
        sizes.test_paths, args.out, report.deadline - time.perf_counter()))
    report.section("throughput", lambda: throughput(sizes, device, report.deadline))
    report.section("lrn_share", lambda: lrn_share(sizes, device, report.deadline))
    report.section("memory", lambda: memory(sizes, device, report.deadline))
    report.section("distributed", lambda: data_parallel(device, report.deadline))
    report.section("fashion_mnist", lambda: fashion_mnist(sizes, device, root, args.dry_run,
                                                          report.deadline))
    print(f"\nwrote {args.out / 'gpu_check.md'} and {args.out / 'gpu_check.json'}"
          + (f"; failed: {', '.join(report.failed)}" if report.failed else ""))
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
