"""Pick where tensors live (CUDA, then Apple's MPS, then the CPU) and in which precision."""

from __future__ import annotations

import platform
import re
from pathlib import Path

import torch

__all__ = ["pick_device", "describe_device", "synchronize", "amp_dtype", "autocast"]


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


def _cpuinfo(path: Path = Path("/proc/cpuinfo")) -> str:
    """Linux's description of the CPU ('' where there is none: macOS, Windows)."""
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def cpu_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The processor's model, e.g. 'AMD EPYC 7B13' (Linux's /proc/cpuinfo; elsewhere what
    `platform.processor()` knows), so that a stored timing names the machine that made it."""
    found = re.search(r"^model name\s*:\s*(.+)$", _cpuinfo(cpuinfo), re.MULTILINE)
    name = found.group(1) if found else platform.processor()
    return " ".join(re.sub(r"\((R|TM|tm)\)|\bCPU\b", " ", name or "").split()) or "unknown CPU"


def cpu_has_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Does this CPU have bfloat16 matrix units (Intel AMX), where bf16 autocast pays off? AVX-512
    BF16 alone is not enough: without AMX a bf16 step is far slower than float32."""
    return any("amx_bf16" in line.partition(":")[2].split()
               for line in _cpuinfo(cpuinfo).splitlines() if line.startswith("flags"))


def amp_dtype(setting: str, device: torch.device | str) -> torch.dtype | None:
    """Which autocast dtype "auto" | "bf16" | "fp16" | "off" means on `device` (None: float32).

    "auto": bfloat16 on CUDA GPUs with bf16 hardware (compute capability 8.0, Ampere, or newer),
    float16 with loss scaling below it (`torch.cuda.is_bf16_supported()` is no guide: it is true
    by emulation on a T4, P100 or V100, where bf16 runs slowly); on a CPU only when it has bf16
    matrix units (`cpu_has_bf16`): elsewhere a bf16 step is slower than float32."""
    device = torch.device(device)
    fixed = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if setting in fixed:
        return fixed[setting]
    if device.type == "cuda":
        major, _ = torch.cuda.get_device_capability(device)
        return torch.bfloat16 if major >= 8 else torch.float16
    if device.type == "cpu":
        return torch.bfloat16 if cpu_has_bf16() else None
    return None


def autocast(device: torch.device, dtype: torch.dtype | None) -> torch.autocast:
    """Mixed precision in `dtype` (from `amp_dtype`); None: off, plain float32."""
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


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
