"""Pick where tensors live: CUDA, then Apple's MPS, then the CPU."""

from __future__ import annotations

import platform
import re
from pathlib import Path

import torch

__all__ = ["pick_device", "describe_device", "synchronize"]


def describe_device(device: torch.device | str) -> str:
    """One line naming the device, e.g. 'cuda:0 (NVIDIA H100 80GB HBM3)'."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    if device.type == "mps":
        return "mps (Apple GPU)"
    if device.type == "cpu":
        return (f"cpu ({cpu_name()}, {torch.get_num_threads()} threads, "
                f"{torch.backends.cpu.get_cpu_capability()})")
    return str(device)


def synchronize(device: torch.device | str) -> None:
    """Wait until the work queued on `device` is done, so that a timer around it measures the
    work and not only its queueing: CUDA and Apple's MPS run asynchronously; the CPU does not."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def cpu_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The processor's model, e.g. 'AMD EPYC 7B13' (Linux's /proc/cpuinfo; elsewhere what
    `platform.processor()` knows), so that a stored timing names the machine that made it."""
    try:
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
    except OSError:
        found = None
    name = found.group(1) if found else platform.processor()
    return " ".join(re.sub(r"\((R|TM|tm)\)|\bCPU\b", " ", name or "").split()) or "unknown CPU"


def pick_device(prefer: str | torch.device | None = None, verbose: bool = True) -> torch.device:
    """CUDA if available, else Apple MPS, else CPU; `prefer` forces one ("cpu", "cuda:1", ...;
    None or "auto" picks).

    Prints one line saying what was chosen (and, on CPU, how to get a GPU on Colab).
    """
    if isinstance(prefer, str) and prefer.strip().lower() in ("", "auto"):
        prefer = None
    if prefer is not None:
        device = torch.device(prefer)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {prefer!r} was asked for, but PyTorch sees no CUDA GPU "
                             "(on Colab: Runtime > Change runtime type > GPU)")
        if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
            raise ValueError(f"device {prefer!r} was asked for, but only "
                             f"{torch.cuda.device_count()} CUDA GPU(s) are visible "
                             "(indices start at 0)")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError(f"device {prefer!r} was asked for, but Apple MPS is not available")
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        device = torch.device("mps")
    else:
        device = torch.device("cpu")
    if verbose:
        hint = "" if device.type != "cpu" or prefer else (
            " - no GPU found, so training notebooks use the cpu profile"
            " (on Colab: Runtime > Change runtime type > GPU)")
        print(f"Using {describe_device(device)}{hint}")
    return device
