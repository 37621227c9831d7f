"""Apple Silicon (MPS), mocked: this machine has none. Timings wait for MPS's queued work as for
CUDA's, and resizing works on the torch versions requirements.txt allows there (antialiased
shrinking has an MPS kernel only from torch 2.7: before, it runs on the CPU)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from alexnet_edu import device as device_module
from alexnet_edu import transforms


def test_synchronize_waits_for_mps_and_cuda_not_for_the_cpu(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.mps, "synchronize", lambda: calls.append("mps"))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda d=None: calls.append(f"cuda {d}"))
    device_module.synchronize("mps")
    device_module.synchronize(torch.device("cuda", 1))
    device_module.synchronize("cpu")
    assert calls == ["mps", "cuda cuda:1"]


def test_antialias_on_mps_needs_torch_2_7():
    assert not transforms.antialias_runs_on("mps", "2.3.1")
    assert not transforms.antialias_runs_on("mps", "2.6.0")
    assert transforms.antialias_runs_on("mps", "2.7.0")
    assert transforms.antialias_runs_on("mps", "2.10.1")     # compared as versions, not strings
    assert transforms.antialias_runs_on("cuda", "2.3.0")
    assert transforms.antialias_runs_on("cpu", "2.3.0")


def test_resize_shrinks_on_the_cpu_where_the_device_lacks_antialias(monkeypatch):
    """Where the device has no antialiased kernel, the shrinking runs on the CPU with antialias
    (the same pixels), and the result comes back to the images' device; growing is untouched."""
    seen = []
    interpolate = F.interpolate

    def spy(x, *args, **kwargs):
        seen.append((x.device.type, kwargs["antialias"]))
        return interpolate(x, *args, **kwargs)

    images = torch.rand(2, 3, 100, 80)
    expected = transforms.resize_batch(images, 64)
    monkeypatch.setattr(transforms.F, "interpolate", spy)
    monkeypatch.setattr(transforms, "antialias_runs_on", lambda device_type: False)
    to_calls = []
    monkeypatch.setattr(torch.Tensor, "to", lambda self, *a, **k: to_calls.append(a) or self)
    out = transforms.resize_batch(images, 64)
    assert seen == [("cpu", True)] and to_calls == [(images.device,)]
    assert torch.equal(out, expected)
    seen.clear()
    transforms.resize_batch(torch.rand(1, 3, 28, 28), 64)    # growing: no antialias, no detour
    assert seen == [("cpu", False)]


def test_the_plans_step_timing_waits_for_the_device_every_step(monkeypatch):
    """The plan's predicted epoch time: each timed step ends with device.synchronize (on MPS
    too, not only CUDA), or an asynchronous device would be timed queueing work, not doing it."""
    from alexnet_edu import data, runlog, train

    calls = []
    monkeypatch.setattr(runlog, "synchronize", lambda d: calls.append(torch.device(d).type))
    images = torch.randint(0, 255, (8, 1, 28, 28), dtype=torch.uint8)
    ds = data.TensorImageDataset(images, torch.arange(8) % 2, ["a", "b"])
    splits = data.Splits(ds, ds, ds, ["a", "b"], 1, (0.5,), (0.5,), None, "tiny")
    model = train.build_model(splits, image_size=67)
    plain = transforms.BatchTransform(67, (0.5,), (0.5,), train=False)
    seconds = runlog.estimate_epoch_seconds(model, splits, train.TrainConfig(batch_size=4),
                                            torch.device("cpu"), plain, steps=2)
    assert seconds > 0
    assert calls == ["cpu"] * 3   # the warm-up step and the two timed ones
