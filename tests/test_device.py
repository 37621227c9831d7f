"""pick_device: CUDA, then Apple MPS, then CPU, with one line saying which (mocked hardware)."""

from __future__ import annotations

import pytest
import torch

from alexnet_edu import device as device_module
from alexnet_edu import machine
from alexnet_edu.device import describe_device, pick_device


@pytest.fixture
def hardware(monkeypatch):
    """Pretend to have the given accelerators: hardware(cuda=1, mps=False)."""

    def fake(cuda: int = 0, mps: bool = False) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: f"Fake GPU {i}")
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)

    return fake


@pytest.mark.parametrize("cuda, picked, said", [(1, "cuda", "cuda:0 (Fake GPU 0)"),   # first
                                                (0, "mps", "mps (Apple GPU)")])     # else MPS
def test_cuda_first_then_mps(cuda, picked, said, hardware, capsys):
    hardware(cuda=cuda, mps=True)
    assert pick_device() == torch.device(picked)
    assert capsys.readouterr().out == f"Using {said}\n"


def test_cpu_last_with_a_hint(hardware, capsys):
    hardware(cuda=0, mps=False)
    assert pick_device() == torch.device("cpu")
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("Using cpu (")
    assert "no GPU found" in out and "Colab" in out


def test_torch_without_mps_backend(hardware, monkeypatch, capsys):
    hardware(cuda=0)
    monkeypatch.delattr(torch.backends, "mps")
    assert pick_device(verbose=False) == torch.device("cpu")
    assert capsys.readouterr().out == ""


def test_prefer_forces_a_device(hardware, capsys):
    hardware(cuda=2, mps=True)
    assert pick_device("cpu") == torch.device("cpu")
    assert "no GPU found" not in capsys.readouterr().out  # the user asked for the CPU
    assert pick_device("cuda:1", verbose=False) == torch.device("cuda:1")
    assert pick_device("auto", verbose=False) == torch.device("cuda")
    with pytest.raises(ValueError, match="only 2 CUDA GPU"):
        pick_device("cuda:2")


def test_prefer_unavailable_accelerators_raise(hardware):
    hardware(cuda=0, mps=False)
    with pytest.raises(ValueError, match="no CUDA GPU.*Runtime > Change runtime type"):
        pick_device("cuda")
    with pytest.raises(ValueError, match="MPS is not available"):
        pick_device("mps")


def test_describe_device(hardware):
    hardware(cuda=1)
    assert describe_device("cuda:0") == "cuda:0 (Fake GPU 0)"
    assert describe_device("cuda") == "cuda:0 (Fake GPU 0)"
    cpu = describe_device(torch.device("cpu"))
    assert cpu.startswith("cpu (") and f"{torch.get_num_threads()} threads" in cpu
    assert device_module.cpu_name() in cpu
    assert device_module.__all__ == ["pick_device", "describe_device", "synchronize", "amp_dtype",
                                     "autocast"]


def test_cpu_name_reads_the_model_without_trademark_noise(tmp_path, monkeypatch):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\n"
                    "model name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\nflags\t\t: fpu\n")
    assert machine.cpu_name(info) == "Intel Xeon @ 2.20GHz"
    info.write_text("model name\t: AMD EPYC 7B13 64-Core Processor\n")
    assert machine.cpu_name(info) == "AMD EPYC 7B13 64-Core Processor"
    # no /proc/cpuinfo (macOS, Windows): what platform knows, else a plain phrase
    monkeypatch.setattr(machine.platform, "processor", lambda: "arm")
    assert machine.cpu_name(tmp_path / "missing") == "arm"
    monkeypatch.setattr(machine.platform, "processor", lambda: "")
    assert machine.cpu_name(tmp_path / "missing") == "unknown CPU"
