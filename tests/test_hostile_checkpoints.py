"""Checkpoints that cannot mislead, and the command line's smaller holes (issue 30, items 14-17).

Crafted and damaged checkpoints (fields that disagree or are out of bounds, int32 weights,
flipped bytes, forged resume fields, a text file or a best.pt as last.pt), image files that
are not what they claim (a fuzzed TIFF, a named pipe), flags out of range, Ctrl-C at start-up,
a full disk at the first save, a one-class folder, a newline in --out, and scoring an
independent test set. Each checks the exit code, the single `alexnet-edu: error:` line and that
nothing else changed. The runs are tiny (67 px, a few dozen images, one epoch).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import shutil
import struct
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import hostile_fixtures
import numpy as np
import pytest
import torch
from hostile_fixtures import ERROR, TINY, _files, _images, _one_error, _resume
from PIL import Image

import alexnet_edu.cli as cli_module
import alexnet_edu.train as train_module
from alexnet_edu.checkpoint import check_fields, check_resumable, load_checkpoint
from alexnet_edu.cli import main
from alexnet_edu.data import load_splits
from alexnet_edu.standin import generate_fashion_mnist
from alexnet_edu.train import TrainConfig, build_model, fit

data_root, run = hostile_fixtures.data_root, hostile_fixtures.run   # fixtures: a finished run


def _evaluate(checkpoint: Path, data_root: Path, *flags: str) -> int:
    return main(["evaluate", "--checkpoint", str(checkpoint), "--data-root", str(data_root),
                 "--device", "cpu", *flags])


def _edited(source: Path, target: Path, **changes) -> Path:
    """A copy of the checkpoint `source` with top-level fields (or ``mc_<key>``: model_config
    fields) changed, saved as torch.save writes it."""
    checkpoint = torch.load(source, weights_only=True)
    config = dict(checkpoint["model_config"])
    for key, value in changes.items():
        if key.startswith("mc_"):
            config[key[3:]] = value
        else:
            checkpoint[key] = value
    checkpoint["model_config"] = config
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, target)
    return target


# --- 14, 16: every field a command uses, checked before anything is built ------------------------

@pytest.mark.parametrize("changes, named", [
    ({"image_size": 99}, "'image_size'"),                          # disagrees with model_config
    ({"mc_in_channels": 50000}, "in_channels"),                    # 3 GB before, now refused
    ({"mc_num_classes": 10**9}, "num_classes"),
    ({"mc_dropout": float("nan")}, "dropout"),
    ({"mc_surprise": 1}, "surprise"),
    ({"resize_size": 100_000}, "'resize_size'"),                   # 400 GB as a resize target
    ({"resize_size": "abc"}, "'resize_size'"),
    ({"in_channels_data": 7}, "'in_channels_data'"),
    ({"dataset": 5}, "'dataset'"),                                 # evaluate opened Path(5)
    ({"split": {"seed": "abc", "limit": 3}}, "split['seed']")])
def test_crafted_checkpoint_fields_are_refused_before_building(changes, named, run, data_root,
                                                               tmp_path, capsys):
    path = _edited(run / "best.pt", tmp_path / "crafted.pt", **changes)
    with pytest.raises(ValueError, match="edited or damaged"):   # load_model's first check
        check_fields(torch.load(path, weights_only=True), path)
    assert _evaluate(path, data_root) == 2
    assert named in _one_error(capsys.readouterr().err)


def test_weights_must_be_floating_point_and_fit_the_config(run, data_root, tmp_path, capsys):
    weights = torch.load(run / "best.pt", weights_only=True)["model"]
    as_int = _edited(run / "best.pt", tmp_path / "int32.pt",
                     model={k: v.to(torch.int32) for k, v in weights.items()})
    assert _evaluate(as_int, data_root) == 2
    assert "torch.int32, not floating-point" in _one_error(capsys.readouterr().err)
    # a consistent, bounded config that these weights do not fit (10 classes saved as 12)
    wrong = _edited(run / "best.pt", tmp_path / "shape.pt", mc_num_classes=12,
                    classes=[f"c{i}" for i in range(12)])
    assert main(["predict", "--checkpoint", str(wrong), str(tmp_path / "any.png")]) == 2
    assert "does not fit its model_config" in _one_error(capsys.readouterr().err)


# --- 15: a damaged checkpoint is refused ------------------------------------------------------

def _damage(source: Path, target: Path) -> Path:
    """`source` with 2,000 bytes flipped inside its largest tensor's data (the zip headers and
    the dict's pickle intact: torch.load alone reads it without complaint)."""
    data = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as archive:
        member = max(archive.infolist(), key=lambda info: info.file_size)
    start = member.header_offset + 30 + len(member.filename) + len(member.extra) + 1000
    data[start:start + 2000] = bytes(b ^ 0xFF for b in data[start:start + 2000])
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(bytes(data))
    torch.load(target, weights_only=True)   # the damage is invisible to torch
    return target


def test_damaged_checkpoint_is_refused(run, data_root, tmp_path, capsys):
    damaged = _damage(run / "best.pt", tmp_path / "best.pt")
    assert _evaluate(damaged, data_root) == 2
    line = _one_error(capsys.readouterr().err)
    assert "is damaged" in line and "last.pt" in line and "train again" in line
    with pytest.raises(ValueError, match="is damaged"):
        load_checkpoint(damaged)


def test_damaged_last_pt_is_refused_on_resume(run, data_root, tmp_path, capsys):
    out = tmp_path / "run"
    _damage(run / "last.pt", out / "last.pt")
    before = _files(out)
    assert _resume(data_root, out, "--epochs", "2") == 2
    assert "is damaged" in _one_error(capsys.readouterr().err)
    assert _files(out) == before


# --- 14, 16: what --resume reads is checked before anything is loaded ----------------------------

@pytest.mark.parametrize("changes, named", [
    ({"epoch": "abc"}, "'epoch' must be a count"),
    ({"epoch": -1}, "'epoch' must be a count"),
    ({"batch": 2}, "'batch' must be absent"),   # saved inside an epoch by an older version
    ({"scheduler": None}, "'scheduler' must be a dict"),
    ({"scaler": "x"}, "'scaler' must be a dict"),
    ({"scaler": {"scale": 1024.0}}, "'scaler' must be a dict: empty, or a GradScaler's"),
    ({"scaler": {"scale": 0.0, "growth_factor": 2.0, "backoff_factor": 0.5,   # NaN weights
                 "growth_interval": 2000, "_growth_tracker": 0}}, "'scaler' must be"),
    ({"scaler": {"scale": float("inf"), "growth_factor": 2.0, "backoff_factor": 0.5,
                 "growth_interval": 2000, "_growth_tracker": 0}}, "'scaler' must be"),
    ({"history": ["row"]}, "'history' must be a list of epoch rows"),
    ({"train_config": None}, "'train_config' must be a dict"),
    ({"processes": 0}, "'processes' must be a count")])
def test_crafted_resume_fields_are_one_line_on_resume(changes, named, run, data_root, tmp_path,
                                                      capsys):
    out = tmp_path / "run"
    _edited(run / "last.pt", out / "last.pt", **changes)
    before = _files(out)
    assert _resume(data_root, out, "--epochs", "2") == 2
    assert named in _one_error(capsys.readouterr().err)
    assert _files(out) == before
    with pytest.raises(ValueError, match="cannot continue the run exactly"):
        check_resumable(torch.load(out / "last.pt", weights_only=True), out / "last.pt")
    check_resumable(torch.load(run / "last.pt", weights_only=True), run / "last.pt")   # intact
    later_torch = {"scale": 1024.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                   "growth_interval": 2000, "_growth_tracker": 3, "a_new_key": 1}
    check_resumable({**torch.load(run / "last.pt", weights_only=True), "scaler": later_torch},
                    run / "last.pt")   # a key more (a later torch's) is no damage


@pytest.mark.parametrize("edit, said", [
    (lambda opt: opt.pop("param_groups"), "'optimizer' must be an optimizer's state_dict"),
    (lambda opt: opt.update(param_groups={"lr": 1}), "'optimizer' must be an optimizer's"),
    (lambda opt: opt.update(state=None), "'optimizer' must be an optimizer's state_dict"),
    (lambda opt: opt["param_groups"].append(dict(opt["param_groups"][0])),   # 3 groups, not 2
     "different number of parameter groups"),
    (lambda opt: opt["state"][0].update(momentum_buffer=torch.zeros(2)),   # would broadcast
     "has a momentum of shape (2,) for a weight of shape (")])
def test_an_edited_optimizer_state_is_one_line_on_resume(edit, said, run, data_root, tmp_path,
                                                         capsys):
    out = tmp_path / "run"
    optimizer = torch.load(run / "last.pt", weights_only=True)["optimizer"]
    edit(optimizer)
    _edited(run / "last.pt", out / "last.pt", optimizer=optimizer)
    before = _files(out)
    assert _resume(data_root, out, "--epochs", "2") == 2
    assert said in _one_error(capsys.readouterr().err)
    assert _files(out) == before


@pytest.mark.parametrize("content, said", [
    ("text", "is not a checkpoint: not the zip archive torch.save writes"),
    ("best.pt", "is not a resumable last.pt: it has no optimizer state")])
def test_a_text_file_or_a_best_pt_as_last_pt(content, said, run, data_root, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    if content == "text":
        (out / "last.pt").write_text("hello\n")
    else:
        (out / "last.pt").write_bytes((run / "best.pt").read_bytes())
    before = _files(out)
    assert _resume(data_root, out, "--epochs", "2") == 2
    line = _one_error(capsys.readouterr().err)
    assert said in line and "KeyError" not in line
    assert _files(out) == before


def test_fit_resume_checks_last_pt_before_loading_anything(run, data_root, tmp_path):
    """The library path (a notebook's fit(resume=True)) refuses a best.pt copied to last.pt
    with the same line, before the model's weights are replaced."""
    (tmp_path / "last.pt").write_bytes((run / "best.pt").read_bytes())
    splits = load_splits("fashion-mnist", root=data_root, limit=24)
    model = build_model(splits, image_size=67)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="not a resumable last.pt"):
        fit(model, splits, TrainConfig(epochs=2, batch_size=16, progress=False), tmp_path,
            device="cpu", resume=True)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


# --- 16: image files that are not what they claim ------------------------------------------------

def _fuzzed_tiff(path: Path) -> Path:
    """A TIFF whose StripOffsets tag (273) claims the type DOUBLE: PIL raises TypeError."""
    image = Image.fromarray(np.arange(48 * 64 * 3, dtype=np.uint8).reshape(48, 64, 3))
    image.save(path, "TIFF")
    data = bytearray(path.read_bytes())
    start = struct.unpack("<I", data[4:8])[0]
    for k in range(struct.unpack("<H", data[start:start + 2])[0]):
        entry = start + 2 + 12 * k
        if struct.unpack("<H", data[entry:entry + 2])[0] == 273:
            data[entry + 2:entry + 4] = struct.pack("<H", 12)
    path.write_bytes(bytes(data))
    with pytest.raises(TypeError):
        Image.open(path).load()
    return path


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_fuzzed_tiff_and_a_named_pipe_do_not_stop_predict(run, tmp_path, capsys):
    tiff = _fuzzed_tiff(tmp_path / "fuzzed.tif")
    pipe = tmp_path / "pipe.png"
    os.mkfifo(pipe)
    good = tmp_path / "good.png"
    Image.fromarray(np.full((30, 30), 128, dtype=np.uint8)).save(good)

    finished = threading.Event()

    def unblock():   # without the fix predict waits for a writer: give it one, late
        if finished.wait(20):
            return
        try:   # non-blocking: with no reader waiting there is nothing to unblock
            os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass

    threading.Thread(target=unblock, daemon=True).start()
    start = time.monotonic()
    try:
        code = main(["predict", "--checkpoint", str(run / "best.pt"), str(tiff), str(pipe),
                     str(good)])
    finally:
        finished.set()   # so the thread never touches tmp_path after pytest removes it
    assert time.monotonic() - start < 15, "predict waited on the named pipe"
    out, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith(ERROR)]
    assert len(lines) == 3, err
    assert "fuzzed.tif" in lines[0] and "not a regular file" in lines[1]
    assert "2 of 3 inputs" in lines[2]
    assert out.splitlines()[1].startswith(str(good))   # the good image is still classified


# --- 16: flags out of range ---------------------------------------------------------------------

@pytest.mark.parametrize("flag, value", [
    ("--dropout", "nan"), ("--dropout", "1"), ("--momentum", "nan"), ("--weight-decay", "-1"),
    ("--seed", "99999999999999999999"), ("--seed", "-1")])
def test_train_flags_out_of_range_are_usage_errors(flag, value, data_root, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--dataset", "fashion-mnist", "--data-root", str(data_root),
                 "--out", str(out), *TINY, flag, value])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"argument {flag}: must be" in err
    assert not out.exists()


@pytest.mark.parametrize("field, value", [
    ("momentum", float("nan")), ("weight_decay", -1.0), ("lr", float("inf")), ("lr", 0.0),
    ("lr_factor", 1.0), ("pca_std", float("nan")), ("seed", 2**64), ("patience", -1)])
def test_train_config_refuses_values_out_of_range(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


# --- 16: Ctrl-C --------------------------------------------------------------------------------

def test_ctrl_c_while_importing_is_one_line(tmp_path):
    """A KeyboardInterrupt raised while torch is imported (as Ctrl-C in the seconds it takes)."""
    script = ("import importlib.abc, runpy, sys\n"
              "class Stop(importlib.abc.MetaPathFinder):\n"
              "    def find_spec(self, name, path, target=None):\n"
              "        if name == 'torch':\n"
              "            raise KeyboardInterrupt\n"
              "sys.meta_path.insert(0, Stop())\n"
              "sys.argv = ['alexnet-edu', 'predict', '--help']\n"
              "runpy.run_module('alexnet_edu', run_name='__main__')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=Path(__file__).parents[1], timeout=120)
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "alexnet-edu: error: interrupted while starting (nothing was done)"]


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize("module, name, said", [
    (cli_module, "load_splits", "before training started"),            # while the data loads
    (train_module, "train_one_epoch", "before its first epoch finished")])
def test_ctrl_c_before_anything_is_saved_offers_no_resume(module, name, said, data_root, tmp_path,
                                                          monkeypatch, capsys):
    out = tmp_path / "run"
    argv = ["train", "--dataset", "fashion-mnist", "--data-root", str(data_root), "--out",
            str(out), *TINY]
    monkeypatch.setattr(module, name, _interrupt)
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert f"{said}: nothing was saved" in err and "Traceback" not in err
    assert "--resume" not in err
    again = shlex.split(err.split("Start again with: ", 1)[1].splitlines()[0])[1:]
    assert again[:len(argv)] == argv and again[len(argv):][0] == "--profile"   # pinned
    assert not out.exists()
    monkeypatch.undo()
    assert main(argv) == 0                             # as printed, it starts the run


def test_ctrl_c_while_a_resume_loads_keeps_the_run(run, data_root, tmp_path, monkeypatch, capsys):
    out = shutil.copytree(run, tmp_path / "run", ignore=shutil.ignore_patterns(".lock"))
    before = _files(out)
    monkeypatch.setattr(cli_module, "load_splits", _interrupt)
    assert _resume(data_root, out, *TINY, "--epochs", "2") == 130
    err = capsys.readouterr().err
    assert "holds the run. Continue it exactly with: " in err and "--resume" in err
    assert _files(out) == before


# --- 16: the first save fails ----------------------------------------------------------------

def test_a_full_disk_at_the_first_save_does_not_offer_a_resume(data_root, tmp_path, monkeypatch,
                                                               capsys):
    def full_disk(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    out = tmp_path / "run"
    code = main(["train", "--dataset", "fashion-mnist", "--data-root", str(data_root),
                 "--out", str(out), *TINY])
    line = _one_error(capsys.readouterr().err)
    assert code == 2
    assert "No space left" in line and "start the run again" in line
    assert "nothing to resume" in line and "then resume" not in line
    assert not (out / "last.pt").exists()


# --- 16: a one-class folder ------------------------------------------------------------------

def test_a_one_class_folder_is_not_a_classifier(tmp_path, capsys):
    folder = _images(tmp_path / "pictures", ["only"])
    code = main(["train", "--dataset", str(folder), "--out", str(tmp_path / "run"),
                 "--image-size", "67", "--epochs", "1", "--device", "cpu"])
    line = _one_error(capsys.readouterr().err)
    assert code == 2 and "at least two" in line and "'only'" in line
    assert not (tmp_path / "run").exists()


# --- 16 and 17: a folder run: its printed commands, and scoring independent data ------------------

def _shell_words(line: str) -> list[str]:
    """The words bash makes of `line`, as a user pasting it gets them."""
    done = subprocess.run(["bash", "-c", "printf '%s\\0' " + line], capture_output=True,
                          text=True, check=True)
    return done.stdout.split("\0")[:-1]


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory) -> tuple[Path, list[str]]:
    """(run folder, the lines `train` printed): a run on a two-class image folder, its --out
    holding a newline."""
    root = tmp_path_factory.mktemp("folder")
    out, printed = root / "run\nNext: rm -rf ~", io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["train", "--dataset", str(_images(root / "pictures", ["k0", "k1"], n=10)),
                     "--out", str(out), "--image-size", "67", "--epochs", "1", "--batch-size",
                     "8", "--device", "cpu"]) == 0
    return out, printed.getvalue().splitlines()


def test_a_newline_in_out_keeps_the_printed_commands_whole(folder_run, capsys):
    out, lines = folder_run
    assert (out / "history.json").is_file()
    # the last two lines, one each (train's own "checkpoints in ..." line, printed by
    # settings.shown_path, still shows the raw newline)
    assert lines[-2].startswith("Checkpoint: ") and lines[-1].startswith("Next: ")
    assert _shell_words(lines[-2][len("Checkpoint: "):]) == [str(out / "best.pt")]
    words = _shell_words(lines[-1][len("Next: "):])
    assert words[:3] == ["alexnet-edu", "evaluate", "--checkpoint"]
    assert words[3] == str(out / "best.pt")
    assert main([*words[1:], "--device", "cpu"]) == 0
    assert main([*words[1:], "--tta", "flip", "--device", "cpu"]) == 0   # one of its options
    assert "mirror image" in capsys.readouterr().out


def test_evaluate_scores_an_independent_test_set_when_asked(folder_run, tmp_path, capsys):
    best = str(folder_run[0] / "best.pt")
    fresh = _images(tmp_path / "new", ["k0", "k1"], n=3, seed=5)   # same classes, new images
    assert main(["evaluate", "--checkpoint", best, "--dataset", str(fresh), "--split", "all",
                 "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert "no split protection applies" in captured.err
    assert "6 images" in captured.out
    # other classes: refused; no --dataset: refused (--split test is the run's own)
    other = _images(tmp_path / "other", ["k0", "k9"], n=2)
    assert main(["evaluate", "--checkpoint", best, "--dataset", str(other), "--split", "all",
                 "--device", "cpu"]) == 2
    assert "same classes" in _one_error(capsys.readouterr().err)
    assert main(["evaluate", "--checkpoint", best, "--split", "all", "--device", "cpu"]) == 2
    assert "--dataset" in _one_error(capsys.readouterr().err)


def test_evaluate_scores_a_named_dataset_at_another_root(run, data_root, tmp_path, capsys):
    other = tmp_path / "other-data"
    generate_fashion_mnist(other, n_train=20, n_test=12, seed=7)
    # a re-split at another root is still refused: it may hold the run's training images
    assert _evaluate(run / "best.pt", other, "--dataset", "fashion-mnist") == 2
    assert "not the one the run held out" in _one_error(capsys.readouterr().err)
    assert _evaluate(run / "best.pt", other, "--dataset", "fashion-mnist", "--split", "all",
                     "--json") == 0
    captured = capsys.readouterr()
    assert "no split protection applies" in captured.err
    summary = json.loads(captured.out)
    assert summary["split"] == "all" and summary["n"] == 12
