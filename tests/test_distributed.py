"""Data-parallel training through torchrun, on this CPU with gloo: two processes with batch B take
the steps one process takes with batch 2B, also when 2B does not divide the data; rank 0 alone
writes and speaks; a run interrupted in every process or in one resumes bit-exactly from the last
finished epoch, each process with its own random stream; another number of processes is
refused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from alexnet_edu import distributed, standin
from alexnet_edu.checkpoint import load_checkpoint
from alexnet_edu.data import make_loader
from alexnet_edu.notebook.parallel import launch

WORKER = Path(__file__).with_name("ddp_worker.py")

COMMON = ["--dataset", "fashion-mnist", "--limit", "33", "--image-size", "67", "--epochs", "1",
          "--no-augment", "--dropout", "0", "--amp", "off", "--device", "cpu"]


def _train(data: Path, out: Path, batch: int, processes: int, *extra: str) -> None:
    launch(processes, [*COMMON, "--data-root", str(data), "--batch-size", str(batch),
                      "--out", str(out), *extra], env={"ALEXNET_EDU_PROFILE": "smoke"})


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ddp")
    standin.generate_fashion_mnist(root / "data", n_train=80, n_test=20, seed=0)
    # 33 images, which 2 x 8 does not divide: steps of 16, 16 and 1
    _train(root / "data", root / "one", batch=16, processes=1)
    _train(root / "data", root / "two", batch=8, processes=2)      # 8 + 8, 8 + 8, 1 + 0
    return root


def test_two_processes_with_batch_b_equal_one_with_batch_2b_also_unevenly(runs):
    """Also the last step, where rank 0's share is 1 image and rank 1's none: each process's
    loss is weighted by its share, and no image is repeated to even the shares out."""
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
    assert h2[0]["train_acc"] == h1[0]["train_acc"]     # correct / 33, each image once
    assert round(h1[0]["train_acc"] * 33, 9).is_integer()
    assert h2[0]["val_acc"] == h1[0]["val_acc"]


def test_rank_zero_alone_writes(runs):
    files = sorted(p.name for p in (runs / "two").iterdir() if p.name != ".lock")
    assert files == ["best.pt", "history.json", "last.pt"]     # no second writer's leftovers


def _torchrun(out: Path, *args: str, processes: int = 2, interrupted: bool = False) -> str:
    """tests/ddp_worker.py in `processes` gloo processes; their output. The test fails on a
    non-zero exit (unless `interrupted`: then on a zero one), and after 3 minutes (a process
    left waiting in a collective)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={processes}", str(WORKER), str(out), *args]
    done = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=180)
    assert (done.returncode != 0) == interrupted, done.stderr[-3000:]
    return done.stdout


def _ranks(run: Path) -> list[dict]:
    return [json.loads((run / f"rank{r}.json").read_text()) for r in (0, 1)]


def _without_timing(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in ("images_per_s", "seconds")}
            for row in history]


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory) -> tuple[Path, str, str]:
    """A straight 2-epoch run of 2 processes (crops, flips, dropout); the same run stopped by
    Ctrl-C in both processes in step 5 (epoch 2, its 2nd of 3 steps), then resumed; and one
    stopped by Ctrl-C in rank 1 alone, then resumed: (folder, the first interrupted run's
    output, its resumed run's); cut.pt is the first interrupted run's last.pt."""
    root = tmp_path_factory.mktemp("ddp-resume")
    _torchrun(root / "straight")
    stopped = _torchrun(root / "cut", "--stop-at", "5", interrupted=True)
    shutil.copy(root / "cut" / "last.pt", root / "cut.pt")
    resumed = _torchrun(root / "cut", "--resume")
    start = time.monotonic()
    _torchrun(root / "alone", "--stop-at", "5", "--stop-rank", "1", interrupted=True)
    assert time.monotonic() - start < 120, "rank 0 waited for the interrupted rank 1"
    shutil.copy(root / "alone" / "last.pt", root / "alone.pt")
    _torchrun(root / "alone", "--resume")
    return root, stopped, resumed


def test_an_interrupted_run_resumes_bit_exactly_each_process_with_its_own_randomness(
        interrupted):
    root, _, _ = interrupted
    straight = _ranks(root / "straight")
    a = load_checkpoint(root / "straight" / "last.pt")
    for run in ("cut", "alone"):   # Ctrl-C in both processes; in rank 1 alone
        cut = _ranks(root / run)
        # each process ends with the generator state of the straight run's same process ...
        assert [r["rng"] for r in cut] == [r["rng"] for r in straight]
        assert cut[0]["rng"] != cut[1]["rng"]     # ... and the two are different streams
        b = load_checkpoint(root / run / "last.pt")
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
        # the train loss and accuracy of the redone epoch count each process's images once
        assert _without_timing(cut[0]["history"]) == _without_timing(straight[0]["history"])


def test_an_interrupt_keeps_the_last_finished_epoch_and_rank_zero_alone_says_so(interrupted):
    root, stopped, resumed = interrupted
    assert stopped.count("Interrupted in epoch 2: ") == 1
    assert "holds epoch 1; fit(..., resume=True) redoes epoch 2" in stopped
    assert resumed.count("Resuming") == 1 and "Interrupted" not in resumed
    for saved in (load_checkpoint(root / "cut.pt"), load_checkpoint(root / "alone.pt")):
        assert (saved["epoch"], saved["processes"], len(saved["history"])) == (1, 2, 1)
        assert not {"batch", "rng", "other_ranks", "partial"} & set(saved)
    # a process that stops does not damage the file: both are epoch 1 of the same run
    one, alone = load_checkpoint(root / "cut.pt"), load_checkpoint(root / "alone.pt")
    assert all(torch.equal(one["model"][k], alone["model"][k]) for k in one["model"])


def test_every_image_once_in_the_shares_of_each_step():
    """33 images, batch 8, 2 processes: the shares of each step are together one process's
    batch of 16 (the last: 1 image), none repeated, none left out."""
    data = torch.utils.data.TensorDataset(torch.arange(33), torch.arange(33))
    one = [b[0].tolist() for b in make_loader(data, 16, shuffle=True, seed=3)]
    shares = [[b[0].tolist() for b in make_loader(data, 8, shuffle=True, seed=3, shard=(r, 2))]
              for r in (0, 1)]
    assert len(shares[0]) == len(shares[1]) == len(one) == 3   # the same number of steps
    for step, batch in enumerate(one):
        assert sorted(shares[0][step] + shares[1][step]) == sorted(batch)
    assert [len(s) for s in shares[1]] == [8, 8, 0]


def test_another_number_of_processes_is_refused(interrupted, tmp_path):
    """Batch 8 per process in 2 processes is 16 images a step: one process would silently take
    steps of 8 at the same learning rate. Refused, for a finished run as for an interrupted
    one."""
    from ddp_worker import Tiny, _splits

    from alexnet_edu.train import TrainConfig, fit

    root, _, _ = interrupted
    config = TrainConfig(epochs=3, batch_size=8, warmup_epochs=0.5, progress=False)
    for saved in (root / "straight" / "last.pt", root / "cut.pt"):   # finished, interrupted
        shutil.copy(saved, tmp_path / "last.pt")
        before = (tmp_path / "last.pt").read_bytes()
        with pytest.raises(ValueError, match=r"trained by 2 process\(es\) with batch 8 each, "
                                             r"1 would make its steps of 8 images instead of 16"
                           ) as err:
            fit(Tiny(), _splits(), config, tmp_path, "cpu", resume=True)
        assert "torchrun --nproc-per-node 2" in str(err.value) and "\n" not in str(err.value)
        assert (tmp_path / "last.pt").read_bytes() == before


def test_the_printed_command_to_continue_names_torchrun(runs, monkeypatch, capsys, tmp_path):
    """Under torchrun (as its WORLD_SIZE and LOCAL_WORLD_SIZE say), `train` interrupted says to
    continue with torchrun and as many processes (here rank 0 of 2, trained in-process)."""
    from hostile_fixtures import interrupt_validation

    import alexnet_edu.cli as cli

    interrupt_validation(monkeypatch, 2)   # Ctrl-C while epoch 2 is validated
    monkeypatch.setattr(distributed, "start", lambda device: None)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    argv = ["train", *COMMON, "--data-root", str(runs / "data"), "--batch-size", "16",
            "--out", str(tmp_path / "run"), "--epochs", "2"]
    assert cli.main(argv) == 130
    hint = capsys.readouterr().err.split("Continue it exactly with: ", 1)[1].splitlines()[0]
    assert hint.startswith("torchrun --nproc-per-node 2 -m alexnet_edu train ")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert cli._command_prefix("alexnet-edu") == (   # two machines: the rendezvous is needed
        "torchrun --nproc-per-node 2 --nnodes 2 --rdzv-backend c10d --rdzv-endpoint HOST:PORT "
        "-m alexnet_edu")


def test_start_keeps_the_cpu_when_asked_even_beside_a_gpu(monkeypatch):
    """`--device cpu` under torchrun on a GPU machine: gloo and the CPU, not the GPUs (one of
    which rank 1 would not even have on a one-GPU machine); else its node-local GPU, NCCL."""
    import torch.distributed as dist

    backends = []
    monkeypatch.setattr(dist, "is_torchelastic_launched", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(dist, "get_rank", lambda: 3)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: pytest.fail(f"took GPU {i}"))
    monkeypatch.setattr(dist, "is_initialized", lambda: bool(backends))
    monkeypatch.setattr(dist, "init_process_group", backends.append)
    assert distributed.start("cpu") == torch.device("cpu") and backends == ["gloo"]
    backends.clear()
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: None)
    assert distributed.start(None) == torch.device("cuda", 1) and backends == ["nccl"]
    monkeypatch.setattr(dist, "is_torchelastic_launched", lambda: False)   # no torchrun
    assert distributed.start(None) is None


def test_more_processes_than_gpus_is_one_line_before_any_process_waits(monkeypatch, capsys,
                                                                        tmp_path):
    """`torchrun --nproc_per_node=2` on a one-GPU machine (Colab): rank 1 would fail to take GPU
    1 and rank 0 wait for it in NCCL; the CLI says so before joining, and how to go on."""
    import torch.distributed as dist

    from alexnet_edu.cli import EXIT_BAD_INPUT, main

    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setattr(dist, "is_torchelastic_launched", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(distributed, "start", lambda device: pytest.fail("joined the group"))
    argv = ["train", "--dataset", "fashion-mnist", "--out", str(tmp_path / "run")]
    assert main(argv) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.strip().endswith(
        "torchrun started 2 processes on this machine, which has 1 CUDA GPU: one process per GPU "
        "(--nproc_per_node=1), or train on the CPU (--device cpu: gloo)")
    monkeypatch.setenv("LOCAL_RANK", "1")   # the machine's other process: the same exit, quiet
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == EXIT_BAD_INPUT and capsys.readouterr().err == ""
    # without torchrun a LOCAL_WORLD_SIZE left in the shell (another launcher's) is not ours
    monkeypatch.setattr(dist, "is_torchelastic_launched", lambda: False)
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setattr(distributed, "start", lambda device: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        main(argv)
    monkeypatch.setattr(dist, "is_torchelastic_launched", lambda: True)
    started = []
    monkeypatch.setattr(distributed, "start", lambda device: started.append(device) or 1 / 0)
    with pytest.raises(ZeroDivisionError):   # --device cpu: gloo, as many processes as asked
        main([*argv, "--device", "cpu"])
    assert started == ["cpu"]


def _running(marker: str) -> list[str]:
    """Command lines of this machine's processes that mention `marker`."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = cmdline.read_bytes().split(b"\0")
        except OSError:   # a process that ended while we looked
            continue
        if any(marker.encode() in word for word in words):
            found.append(" ".join(w.decode(errors="replace") for w in words))
    return found


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs Linux's /proc")
def test_a_timeout_ends_torchruns_workers_too(tmp_path):
    """gpu_check bounds the torchrun launch by its budget: when it runs out, no worker may go on
    training past it (holding the GPU). launch() sends torchrun SIGTERM, on which torchrun stops
    its workers, each in a session of its own, before it exits."""
    standin.generate_fashion_mnist(tmp_path / "data", n_train=80, n_test=20, seed=0)
    out = tmp_path / "long-run"
    args = [*COMMON, "--data-root", str(tmp_path / "data"), "--batch-size", "8", "--out",
            str(out)]
    args[args.index("--epochs") + 1] = "10000"
    with pytest.raises(subprocess.TimeoutExpired):
        launch(2, args, env={"ALEXNET_EDU_PROFILE": "smoke"}, timeout=40)
    assert out.exists()   # the workers had started (rank 0 made the run folder)
    deadline = time.monotonic() + 10
    while _running(str(out)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _running(str(out))
