"""Pick where tensors live (CUDA, then Apple's MPS, then the CPU) and in which precision."""

from __future__ import annotations

import torch

from .machine import cpu_has_bf16, cpu_name
from .validation import check_available

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
    """Wait for the work queued on `device` (CUDA and MPS run asynchronously), for timers."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def amp_dtype(setting: str, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype "auto" | "bf16" | "fp16" | "off" means on `device` (None: float32).
    "auto": bfloat16 on CUDA compute capability 8.0+ (`is_bf16_supported()` is no guide: it is
    true by slow emulation on a T4 or V100), float16 below; bfloat16 on a CPU with AMX only."""
    fixed = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if setting in fixed:
        return fixed[setting]
    if (device := torch.device(device)).type == "cuda":
        major, _ = torch.cuda.get_device_capability(device)
        return torch.bfloat16 if major >= 8 else torch.float16
    return torch.bfloat16 if device.type == "cpu" and cpu_has_bf16() else None


def autocast(device: torch.device, dtype: torch.dtype | None) -> torch.autocast:
    """Mixed precision in `dtype` (from `amp_dtype`); None: off, plain float32."""
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def pick_device(prefer: str | torch.device | None = None, verbose: bool = True) -> torch.device:
    """CUDA if available, else Apple MPS, else CPU (`prefer` forces one: "cpu", "cuda:1"; None or
    "auto" picks); prints the choice unless `verbose` is False."""
    prefer = None if str(prefer).strip().lower() in ("", "auto", "none") else prefer
    if prefer is not None:
        device = check_available(torch.device(prefer))
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
