"""What this machine is, for the logs and benchmarks that name it and for `device.amp_dtype`:
the CPU's model and whether it has bfloat16 matrix units (Linux's /proc/cpuinfo, read here only)."""

from __future__ import annotations

import platform
import re
from pathlib import Path

__all__ = ["cpu_name", "cpu_has_bf16"]


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
