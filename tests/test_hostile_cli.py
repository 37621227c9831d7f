"""The command line against hostile input and a hostile machine (issue 11).

16-bit images, huge images, class and file names with control characters, NaN numbers in JSON,
tampered downloads, unwritable or full disks, killed saves, two trainings in one folder,
--resume with flags that would change the run, Ctrl-C. Each test builds its own inputs in
tmp_path (official formats); the runs are tiny (67 px, 24 images, one epoch). Each checks the
exit code, the single `alexnet-edu: error:` line and that nothing else changed.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import hostile_fixtures
import numpy as np
import pytest
import torch
from filelock import FileLock
from hostile_fixtures import TINY, _error_lines, _files, _one_error, _resume, interrupt_validation
from PIL import Image

import alexnet_edu.cli as cli_module
import alexnet_edu.train as train_module
from alexnet_edu.checkpoint import load_checkpoint
from alexnet_edu.cli import main
from alexnet_edu.images import read_image_tensor

data_root, run = hostile_fixtures.data_root, hostile_fixtures.run   # fixtures: a finished run


def _link_copy(run: Path, dst: Path) -> Path:
    """A copy of a run folder made of hard links (cheap). save_checkpoint replaces files, never
    writes into them, so the original run is not affected by what happens to the copy."""
    shutil.copytree(run, dst, copy_function=os.link, ignore=shutil.ignore_patterns(".lock"))
    return dst


# --- 1. predict reads images with images.read_image ----------------------------------------------

def test_16_bit_png_is_rescaled_not_saturated(run, tmp_path, capsys):
    ramp = np.linspace(0, 65535, 200).round().astype(np.uint16)
    path = tmp_path / "ramp16.png"
    Image.fromarray(np.tile(ramp, (40, 1))).save(path)   # 16-bit grey PNG (mode I;16)
    assert Image.open(path).mode.startswith("I")

    grey = read_image_tensor(path, 1)
    assert grey.dtype == torch.uint8 and grey.shape == (1, 40, 200)
    assert grey.min() <= 2 and grey.max() >= 253      # the full range, not all 255
    assert 110 < grey.float().mean() < 145
    assert (grey[0, 0].diff() >= 0).all()              # still a ramp
    colour = read_image_tensor(path, 3)
    assert colour.shape == (3, 40, 200) and torch.equal(colour[0], grey[0])

    code = main(["predict", "--checkpoint", str(run / "best.pt"), "--json", str(path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["predictions"][0]["path"] == str(path)


def test_large_images_are_shrunk_as_read_and_bombs_refused(run, tmp_path, capsys):
    big = tmp_path / "big.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (1300, 1700), dtype=np.uint8)).save(big)
    assert max(read_image_tensor(big, 1).shape[1:]) <= 1024           # images.MAX_IMAGE_SIDE
    small = read_image_tensor(big, 3, shorter_side=152)
    assert small.shape[0] == 3 and min(small.shape[1:]) == 152
    assert small.shape[2] == round(1700 * 152 / 1300)           # aspect kept

    # a PNG whose header claims 10000 x 10000 pixels: refused before anything is decoded
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", 10000, 10000, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b""))
    code = main(["predict", "--checkpoint", str(run / "best.pt"), str(big), str(bomb)])
    out, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err
    bad, summary = _error_lines(err)                 # the file, then the count
    assert "bomb.png" in bad and "pixels" in bad and "1 of 2 inputs" in summary
    assert out.splitlines()[1].startswith(str(big))   # the good one still classified


# --- 2. names are escaped in text output ------------------------------------------------------

EVIL_CLASS = "b_evil\n  1. fake 100.00%\x1b[2J"


@pytest.fixture(scope="module")
def evil_run(tmp_path_factory) -> tuple[Path, Path]:
    """(image folder whose second class name holds a newline and an escape sequence, a run
    trained on it)."""
    root = tmp_path_factory.mktemp("evil")
    folder = root / "pictures"
    rng = np.random.default_rng(1)
    for c, name in enumerate(["a_plain", EVIL_CLASS]):
        (folder / name).mkdir(parents=True)
        for i in range(15):
            pixels = rng.integers(0, 100, (24, 24, 3)) + 120 * c
            Image.fromarray(pixels.astype(np.uint8)).save(folder / name / f"{i}.png")
    out = root / "run"
    assert main(["train", "--dataset", str(folder), "--out", str(out), "--image-size", "67",
                 "--batch-size", "16", "--epochs", "1", "--device", "cpu"]) == 0
    return folder, out


def test_class_and_file_names_cannot_inject_lines(evil_run, tmp_path, capsys):
    folder, out = evil_run
    capsys.readouterr()
    image = tmp_path / "photo\n  1. a_plain 100.00%.png"
    shutil.copy(folder / EVIL_CLASS / "0.png", image)
    code = main(["predict", "--checkpoint", str(out / "best.pt"), "--top-k", "2", str(image)])
    text, err = capsys.readouterr()
    assert code == 0, err
    lines = text.splitlines()
    assert len(lines) == 2                           # the header, then one row for the file
    assert lines[1].startswith(str(image).replace("\n", "\\n"))
    assert "\x1b" not in text and "a_plain" in lines[1] and "b_evil\\n" in lines[1]

    code = main(["predict", "--checkpoint", str(out / "best.pt"), "--json", str(image)])
    text, _ = capsys.readouterr()
    result = json.loads(text)                        # JSON keeps the names as they are
    assert code == 0 and result["predictions"][0]["path"] == str(image)
    assert {row["class"] for row in result["predictions"][0]["top"]} == {"a_plain", EVIL_CLASS}

    code = main(["evaluate", "--checkpoint", str(out / "best.pt"), "--dataset", str(folder),
                 "--device", "cpu"])
    text, err = capsys.readouterr()
    assert code == 0, err
    assert "\x1b" not in text and "b_evil\\n" in text
    assert not any(line.lstrip().startswith("1. fake") for line in text.splitlines())

    code = main(["evaluate", "--checkpoint", str(out / "best.pt"), "--dataset", str(folder),
                 "--device", "cpu", "--json"])
    text, _ = capsys.readouterr()
    assert [row["class"] for row in json.loads(text)["per_class"]] == ["a_plain", EVIL_CLASS]


# --- 3. --json is strict JSON -----------------------------------------------------------------

def _no_constants(name: str):
    raise AssertionError(f"{name} in the JSON output")


def test_json_never_holds_nan_or_infinity(run, data_root, monkeypatch, capsys):
    real = train_module.evaluate

    def nan_loss(*args, **kwargs):
        result = real(*args, **kwargs)
        return {**result, "loss": float("nan"), "top5": float("inf")}

    monkeypatch.setattr(cli_module, "evaluate", nan_loss)
    code = main(["evaluate", "--checkpoint", str(run / "best.pt"), "--data-root",
                 str(data_root), "--json", "--device", "cpu"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out, parse_constant=_no_constants)
    assert result["loss"] is None and result["top5"] is None
    assert 0 <= result["top1"] <= 1


# --- 4. torchvision's weights: hash checked, no code unpickled -------------------------------

def test_imagenet_weights_are_loaded_hash_checked_and_weights_only(monkeypatch):
    import torchvision

    from alexnet_edu.notebook.pretrained import imagenet_alexnet

    calls = []

    def fake_download(url, *args, **kwargs):
        calls.append((url, args, kwargs))
        raise OSError("offline (test)")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake_download)
    with pytest.raises(RuntimeError, match="not available"):
        imagenet_alexnet()
    assert len(calls) == 1
    url, args, kwargs = calls[0]
    assert url == torchvision.models.AlexNet_Weights.DEFAULT.url and not args
    assert kwargs["weights_only"] is True and kwargs["check_hash"] is True


# --- 5. the run folder --------------------------------------------------------------------------

def test_unwritable_out_is_refused_before_training(data_root, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    real = Path.write_bytes

    def refuse_probe(self, data):
        if self.name.startswith(".write-test"):
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", refuse_probe)
    code = main(["train", "--dataset", "fashion-mnist", "--data-root", str(data_root),
                 "--out", str(out), *TINY])
    out_text, err = capsys.readouterr()
    assert code == 2
    line = _one_error(err)
    assert "--out" in line and "cannot write" in line and "Permission denied" in line
    assert "Profile" not in out_text and "Training" not in out_text   # refused first
    assert list(tmp_path.iterdir()) == []             # the folder it made is gone again


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root ignores file permissions")
def test_read_only_out_folder_is_refused(data_root, tmp_path, capsys):
    out = tmp_path / "read-only"
    out.mkdir()
    out.chmod(0o500)
    try:
        code = main(["train", "--dataset", "fashion-mnist", "--data-root", str(data_root),
                     "--out", str(out), *TINY])
    finally:
        out.chmod(0o700)
    assert code == 2 and "cannot write" in _one_error(capsys.readouterr().err)
    assert list(out.iterdir()) == []


# torch.save reports a full disk as an OSError when it writes to a Python file, as a RuntimeError
# from its zip writer when it writes to a path (as save_checkpoint does)
@pytest.mark.parametrize("failure, shown", [
    (OSError(28, "No space left on device"), "No space left on device"),
    (RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"),
     "unexpected pos 704 vs 598")])
def test_full_disk_keeps_the_previous_checkpoint(failure, shown, run, data_root, tmp_path,
                                                 monkeypatch, capsys):
    out = _link_copy(run, tmp_path / "run")
    before = _files(out)

    def full_disk(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half a checkpoint")
        raise failure

    monkeypatch.setattr(torch, "save", full_disk)
    # the run's own --image-size, --limit and --seed may be repeated; --epochs may grow
    code = _resume(data_root, out, "--epochs", "2", "--image-size", "67", "--limit", "24",
                   "--seed", "0")
    err = capsys.readouterr().err
    assert code == 2
    line = _one_error(err)
    assert shown in line and "MB free" in line and "intact" in line and "resume" in line
    assert _files(out) == before                       # last.pt, best.pt as they were, no tmp
    assert not any(p.name.startswith(".") and ".tmp" in p.name for p in out.iterdir())


def test_stale_temporary_files_of_a_killed_save_are_removed(run, data_root, tmp_path, capsys):
    out = _link_copy(run, tmp_path / "run")
    before = _files(out)
    dead = subprocess.Popen(["true"])
    dead.wait()                                        # a pid no process has any more
    for name in (f".last.pt.tmp{dead.pid}", f".best.pt.tmp{dead.pid}"):
        (out / name).write_bytes(b"half a checkpoint")
    alive = out / f".last.pt.tmp{os.getppid()}"          # a live process may be writing this
    alive.write_bytes(b"being written")

    assert _resume(data_root, out) == 0                # the run is complete: nothing to train
    capsys.readouterr()
    assert not (out / f".last.pt.tmp{dead.pid}").exists()
    assert not (out / f".best.pt.tmp{dead.pid}").exists()
    assert alive.exists()
    alive.unlink()
    assert _files(out) == before


def test_second_training_in_the_same_folder_is_refused(run, data_root, tmp_path, capsys):
    out = _link_copy(run, tmp_path / "run")
    before = _files(out)
    with FileLock(out / ".lock", timeout=0):           # another `train` holds the folder
        code = _resume(data_root, out, "--epochs", "2")
        out_text, err = capsys.readouterr()
        assert code == 2
        line = _one_error(err)
        assert "in use" in line and str(out) in line
        assert "Resuming" not in out_text
        new = tmp_path / "new"
        new.mkdir()
        with FileLock(new / ".lock", timeout=0):
            assert main(["train", "--dataset", "fashion-mnist", "--data-root", str(data_root),
                         "--out", str(new), *TINY]) == 2
            assert "in use" in _one_error(capsys.readouterr().err)
            assert [p.name for p in new.iterdir()] == [".lock"]
    assert _files(out) == before
    # released: the folder can be used again (the lock is not left behind by the refusal)
    assert _resume(data_root, out) == 0
    capsys.readouterr()


# --- 6. --resume keeps the run's identity -----------------------------------------------------

@pytest.mark.parametrize("flags, said", [
    # checkpoint.check_continues names the model field or the recipe field
    (["--image-size", "99"], "image_size=67 in the checkpoint but 99 here"),
    (["--variant", "torchvision"], "variant='paper' in the checkpoint but 'torchvision' here"),
    (["--no-lrn"], "lrn=True in the checkpoint but False here"),
    (["--groups", "2"], "groups=1 in the checkpoint but 2 here"),
    (["--dropout", "0.3"], "dropout=0.5 in the checkpoint but 0.3 here"),
    (["--init", "paper"], "init='kaiming' in the checkpoint but 'paper' here"),
    (["--rgb"], "in_channels=1 in the checkpoint but 3 here"),
    (["--limit", "30"], "--limit 30 differs from the run's 24"),
    (["--seed", "1"], "seed=1 (the run's: 0)"),
    # the recipe: the saved optimizer state would silently replace these
    (["--lr", "0.5"], "lr=0.5 (the run's: 0.01)"),
    (["--momentum", "0.5"], "momentum=0.5 (the run's: 0.9)"),
    (["--weight-decay", "0.1"], "weight_decay=0.1 (the run's: 0.0005)"),
    (["--batch-size", "8"], "batch_size=8 (the run's: 16)"),
    (["--schedule", "cosine"], "schedule='cosine' (the run's: 'plateau')"),
    (["--no-augment"], "augment=False (the run's: True)")])
def test_resume_refuses_flags_that_change_the_run(flags, said, run, data_root, capsys):
    before = (run / "last.pt").stat().st_mtime_ns
    code = _resume(data_root, run, "--epochs", "2", *flags)
    out, err = capsys.readouterr()
    assert code == 2
    line = _one_error(err)
    assert said in line and ("another --out" in line or "another folder" in line)
    assert "Resuming" not in out
    assert (run / "last.pt").stat().st_mtime_ns == before


# --- 7. Ctrl-C ----------------------------------------------------------------------------------

def test_interrupted_training_exits_130_and_names_resume(data_root, tmp_path, monkeypatch,
                                                         capsys):
    interrupt_validation(monkeypatch, 2)   # Ctrl-C at the end of the second epoch
    out = tmp_path / "run"
    argv = ["train", "--dataset", "fashion-mnist", "--data-root", str(data_root), *TINY,
            "--epochs", "2"]
    code = main([*argv, "--out", str(out)])
    said = capsys.readouterr()
    err = said.err
    assert code == 130
    assert "--resume" in err and str(out) in err and "Traceback" not in err
    assert "resume=True" not in said.out + err   # fit's Python wording is not the CLI's
    assert load_checkpoint(out / "last.pt")["epoch"] == 1   # the finished epoch is saved
    # the printed command, run as printed (all the run's flags, --data-root too), finishes it
    monkeypatch.undo()
    hint = err.split("Continue it exactly with: ", 1)[1].splitlines()[0]
    assert "--profile " in hint   # pinned: the profile of the environment may differ later
    assert main(shlex.split(hint)[1:]) == 0                  # drop the program name
    resumed = load_checkpoint(out / "last.pt")
    assert resumed["epoch"] == 2
    # ... with the weights of a run that was never interrupted (resume redoes epoch 2 exactly)
    assert main([*argv, "--out", str(tmp_path / "straight")]) == 0
    straight = load_checkpoint(tmp_path / "straight" / "last.pt")
    assert all(torch.equal(resumed["model"][k], v) for k, v in straight["model"].items())
