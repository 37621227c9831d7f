"""Run profiles (smoke / cpu / full), the plan printed before training, and CUDA out-of-memory
handling: chosen by the machine, overridable, and honest about time."""

from __future__ import annotations

import types

import pytest
import torch
from test_train import _splits, _tiny

from alexnet_edu import profiles, runlog, train
from alexnet_edu.checkpoint import load_checkpoint
from alexnet_edu.cli import main
from alexnet_edu.runlog import estimate_epoch_seconds
from alexnet_edu.standin import generate_fashion_mnist
from alexnet_edu.train import TrainConfig, fit
from alexnet_edu.transforms import BatchTransform


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv("ALEXNET_EDU_PROFILE", raising=False)
    monkeypatch.delenv("ALEXNET_EDU_SMOKE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    return monkeypatch


def test_cpu_without_cuda(no_env):
    p = profiles.current_profile()
    assert p.name == "cpu" and "no CUDA GPU" in p.reason
    assert "ALEXNET_EDU_PROFILE" in str(p)


def test_full_on_cuda(no_env):
    no_env.setattr(torch.cuda, "is_available", lambda: True)
    no_env.setattr(torch.cuda, "get_device_name", lambda i=0: "Tesla T4")
    p = profiles.current_profile()
    assert p.name == "full" and "Tesla T4" in p.reason


def test_a_mistyped_profile_is_one_line_of_bad_input(no_env, capsys):
    no_env.setenv("ALEXNET_EDU_PROFILE", "bogus")
    with pytest.raises(ValueError, match="not a profile"):
        profiles.current_profile()
    for command in (["train", "--dataset", "fashion-mnist", "--epochs", "1"],
                    ["evaluate", "--checkpoint", "nowhere.pt"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "ALEXNET_EDU_PROFILE='bogus' is not a profile" in err


def test_apple_mps_gets_the_cpu_profile(no_env):
    no_env.setattr(torch.backends.mps, "is_available", lambda: True)
    p = profiles.current_profile()
    assert p.name == "cpu" and "MPS" in p.reason


def test_environment_overrides_and_smoke_still_works(no_env):
    no_env.setenv("ALEXNET_EDU_SMOKE", "1")
    assert profiles.current_profile().name == "smoke"
    no_env.setenv("ALEXNET_EDU_PROFILE", "full")
    assert profiles.current_profile().name == "full"     # the explicit profile wins
    no_env.setenv("ALEXNET_EDU_PROFILE", "laptop")
    with pytest.raises(ValueError, match="smoke, cpu, full"):
        profiles.current_profile()


def test_run_sizes_differ_by_profile_and_flags_win(no_env):
    cpu = profiles.run_size("fashion-mnist", "cpu")
    full = profiles.run_size("fashion-mnist", "full")
    assert (cpu.image_size, full.image_size) == (67, 227)
    assert full.limit is None and cpu.limit is not None and full.lr == 0.01
    assert profiles.run_size("fashion-mnist", "cpu", image_size=99, limit=None).image_size == 99
    assert profiles.run_size("my-folder", "full") == profiles.SIZES["stl10"]["full"]
    assert profiles.runs_dir().name == "cpu" and profiles.runs_dir("smoke").name == "smoke"
    assert profiles.runs_dir("full") == profiles.PROJECT_ROOT / "runs"   # a small run never shadows


def test_cli_without_flags_uses_the_profiles_recipe(tmp_path, monkeypatch, capsys):
    root = tmp_path / "data"
    generate_fashion_mnist(root, n_train=40, n_test=10, seed=0)
    monkeypatch.setattr(profiles, "SIZES", {**profiles.SIZES, "fashion-mnist": {
        **profiles.SIZES["fashion-mnist"],
        "cpu": profiles.RunSize(limit=24, image_size=67, epochs=1, batch_size=8, lr=0.03)}})
    monkeypatch.setenv("ALEXNET_EDU_PROFILE", "cpu")
    assert main(["train", "--dataset", "fashion-mnist", "--data-root", str(root), "--out",
                 str(tmp_path / "run"), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "Profile cpu" in out and "Plan:" in out
    checkpoint = load_checkpoint(tmp_path / "run" / "last.pt")
    assert checkpoint["image_size"] == 67 and checkpoint["train_config"]["lr"] == 0.03
    assert checkpoint["train_config"]["batch_size"] == 8 and checkpoint["split"]["limit"] == 24


def test_the_plan_times_steps_on_a_copy_and_scales_to_an_epoch(monkeypatch):
    """The arithmetic, on a fake clock: the warm-up step is dropped, the slower of the two timed
    steps is taken per image, validation counts a third of training, the model is untouched.
    (How close it comes to a real epoch is measured in benchmarks/plan_estimate.py: a timed
    assertion here would fail whenever the machine is busy.)"""
    splits = _splits(n_train=256, n_val=64, side=28)
    model = train.build_model(splits, image_size=67)
    config = TrainConfig(epochs=1, batch_size=32, progress=False)
    transform = BatchTransform(67, splits.mean, splits.std, train=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # steps of 0.2 s (the warm-up: counted, it would make the answer 0.5), 0.5 s and 0.6 s
    ticks = iter([0.0, 0.2, 10.0, 10.5, 20.0, 20.6])
    monkeypatch.setattr(runlog, "time", types.SimpleNamespace(perf_counter=lambda: next(ticks)))
    predicted = estimate_epoch_seconds(model, splits, config, torch.device("cpu"), transform)
    assert predicted == pytest.approx(0.6 / 32 * (256 + 64 / 3))
    assert next(ticks, None) is None                  # exactly three steps were timed
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_cuda_out_of_memory_is_one_clear_message(tmp_path, monkeypatch):
    model = _tiny()

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(model, "forward", out_of_memory)
    with pytest.raises(RuntimeError, match=r"ran out of memory .* batches of 16 .* batch size 8"):
        fit(model, _splits(), TrainConfig(epochs=1, batch_size=16, progress=False), tmp_path,
            "cpu")


def test_cli_reports_out_of_memory_in_one_line(tmp_path, monkeypatch, capsys):
    root = tmp_path / "data"
    generate_fashion_mnist(root, n_train=40, n_test=10, seed=0)

    def out_of_memory(self, x):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(train.AlexNet, "forward", out_of_memory)
    code = main(["train", "--dataset", "fashion-mnist", "--data-root", str(root), "--out",
                 str(tmp_path / "run"), "--limit", "24", "--epochs", "1", "--image-size", "67",
                 "--batch-size", "16", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "use batch size 8" in err and "Traceback" not in err


def test_cpu_profile_never_starts_the_stl10_download(tmp_path, no_env):
    from alexnet_edu import data, official

    no_env.setenv("ALEXNET_EDU_PROFILE", "cpu")
    calls = []
    real = official.folder

    def spy(name, root, download, needed):
        calls.append((name, download))
        return real(name, root, False, needed)

    no_env.setattr(official, "folder", spy)
    with pytest.raises(FileNotFoundError, match="2.6 GB"):
        profiles.load_splits("stl10", root=tmp_path)
    assert calls == [("stl10", False)]
    no_env.setenv("ALEXNET_EDU_PROFILE", "full")
    with pytest.raises(FileNotFoundError):
        profiles.load_splits("stl10", root=tmp_path)
    assert calls[-1] == ("stl10", True)   # full: it would download
    with pytest.raises(FileNotFoundError):   # the CLI's --profile steers it too
        profiles.load_splits("stl10", root=tmp_path, profile="cpu")
    assert calls[-1] == ("stl10", False)
    data.load_splits("fashion-mnist", root=generate_fashion_mnist(tmp_path, 20, 10).parent.parent)
    assert calls[-1] == ("fashion-mnist", False)   # the core downloads only when asked


def test_stl10_source_uses_the_real_sample_when_the_dataset_is_absent(tmp_path, no_env):
    no_env.setenv("ALEXNET_EDU_DATA", str(tmp_path))
    no_env.setenv("ALEXNET_EDU_PROFILE", "cpu")
    assert profiles.stl10_source() == "stl10"         # nothing here: the clear error path
    (tmp_path / "stl10-sample" / "test").mkdir(parents=True)
    assert profiles.stl10_source() == tmp_path / "stl10-sample" / "test"
    assert profiles.stl10_source("full") == "stl10"   # full: the real dataset, downloaded
    no_env.setenv("ALEXNET_EDU_PROFILE", "full")
    assert profiles.stl10_source() == "stl10"


def test_images_to_inspect_reads_the_sample_and_bounds_the_count(tmp_path, no_env, monkeypatch):
    import numpy as np
    from PIL import Image

    from alexnet_edu.notebook import pretrained

    for c in range(3):
        folder = tmp_path / "stl10-sample" / "test" / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.full((8, 8, 3), 40 * c + i, np.uint8)).save(folder / f"{i}.png")
    no_env.setenv("ALEXNET_EDU_DATA", str(tmp_path))
    no_env.setenv("ALEXNET_EDU_PROFILE", "cpu")
    data, how = pretrained.images_to_inspect()
    assert len(data) == 12 and "real STL-10 test images" in how
    monkeypatch.setattr(pretrained, "MAX_INSPECT", 6)
    data, _ = pretrained.images_to_inspect(limit=100)          # the bound wins over limit
    assert len(data) == 6 and sorted(set(data.labels.tolist())) == [0, 1, 2]   # all classes
