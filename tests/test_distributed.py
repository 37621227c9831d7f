"""Data-parallel training through torchrun, on this CPU with gloo: two processes with batch B take
the steps one process takes with batch 2B; rank 0 alone writes; a run resumes with another
number of processes at an epoch's end, and refuses to inside an epoch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from alexnet_edu import distributed, standin

COMMON = ["--dataset", "fashion-mnist", "--limit", "32", "--image-size", "67", "--epochs", "1",
          "--no-augment", "--dropout", "0", "--amp", "off", "--device", "cpu"]


def _train(data: Path, out: Path, batch: int, processes: int, *extra: str) -> None:
    distributed.launch(processes, [*COMMON, "--data-root", str(data), "--batch-size", str(batch),
                                   "--out", str(out), *extra], env={"ALEXNET_EDU_PROFILE": "smoke"})


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ddp")
    standin.generate_fashion_mnist(root / "data", n_train=80, n_test=20, seed=0)
    _train(root / "data", root / "one", batch=16, processes=1)     # 32 images: 2 steps of 16
    _train(root / "data", root / "two", batch=8, processes=2)      # 2 x 8 per step
    return root


def test_two_processes_with_batch_b_equal_one_with_batch_2b(runs):
    one = torch.load(runs / "one" / "last.pt", weights_only=True)
    two = torch.load(runs / "two" / "last.pt", weights_only=True)
    assert two["processes"] == 2 and one["processes"] == 1
    for name, weight in one["model"].items():
        # float32 sums in another order (an all-reduce instead of one batch): ~1e-7 apart
        torch.testing.assert_close(two["model"][name], weight, rtol=1e-4, atol=1e-6)
    h1 = json.loads((runs / "one" / "history.json").read_text())
    h2 = json.loads((runs / "two" / "history.json").read_text())
    # the training loss is reduced over both processes' images: the one process's number
    assert h2[0]["train_loss"] == pytest.approx(h1[0]["train_loss"], rel=1e-4)
    assert h2[0]["val_acc"] == h1[0]["val_acc"]


def test_rank_zero_alone_writes_and_another_count_resumes_at_an_epoch_end(runs):
    files = sorted(p.name for p in (runs / "two").iterdir() if p.name != ".lock")
    assert files == ["best.pt", "history.json", "last.pt"]     # no second writer's leftovers
    _train(runs / "data", runs / "two", 8, 1, "--resume", "--epochs", "2")
    again = torch.load(runs / "two" / "last.pt", weights_only=True)
    assert again["epoch"] == 2 and again["processes"] == 1


def test_resuming_inside_an_epoch_needs_the_same_number_of_processes(runs, tmp_path):
    from alexnet_edu.checkpoint import RunFiles, load_checkpoint, save_checkpoint
    from alexnet_edu.data import load_splits
    from alexnet_edu.model import AlexNet
    from alexnet_edu.train import TrainConfig, _Step

    checkpoint = load_checkpoint(runs / "one" / "last.pt")
    save_checkpoint(dict(checkpoint, batch=1, processes=2), tmp_path / "last.pt")
    model = AlexNet(**checkpoint["model_config"])
    config = TrainConfig(**checkpoint["train_config"])   # the run's recipe: only W differs
    step = _Step(model, config, torch.device("cpu"))
    splits = load_splits("fashion-mnist", root=runs / "data", limit=32, download=False)
    files = RunFiles(tmp_path, model, step.optimizer, step.scheduler, step.scaler, splits,
                     config)
    with pytest.raises(ValueError, match="inside epoch 2 of a run with 2 process"):
        files.resume()


def test_start_keeps_the_cpu_when_asked_even_beside_a_gpu(monkeypatch):
    """`--device cpu` under torchrun on a GPU machine: gloo and the CPU, not the GPUs (one of
    which rank 1 would not even have on a one-GPU machine)."""
    import torch.distributed as dist

    backends = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: pytest.fail(f"took GPU {i}"))
    monkeypatch.setattr(dist, "is_initialized", lambda: bool(backends))
    monkeypatch.setattr(dist, "init_process_group", backends.append)
    assert distributed.start("cpu") == torch.device("cpu") and backends == ["gloo"]
    backends.clear()
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: None)
    assert distributed.start(None) == torch.device("cuda", 1) and backends == ["nccl"]
