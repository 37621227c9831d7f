"""The set-up cell on Colab (mocked: google.colab is faked): safe to run again, says what it
installed, and keeps runs/ on Google Drive when asked (`set_up(drive=True)`)."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from alexnet_edu.notebook import setup as notebook


@pytest.fixture
def colab(tmp_path, monkeypatch):
    """A fake Colab: google.colab with drive.mount (makes MyDrive) and output's widget switch."""
    calls = []
    mount_point = tmp_path / "drive"

    def mount(path):
        calls.append(("mount", path))
        (mount_point / "MyDrive").mkdir(parents=True)

    colab = types.ModuleType("google.colab")
    colab.drive = types.SimpleNamespace(mount=mount)
    colab.output = types.SimpleNamespace(
        enable_custom_widget_manager=lambda: calls.append(("widgets",)))
    google = types.ModuleType("google")
    google.colab = colab
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setattr(notebook, "DRIVE", mount_point)
    monkeypatch.setattr(notebook, "PROJECT_ROOT", tmp_path / "content")
    (tmp_path / "content").mkdir()
    monkeypatch.setattr(notebook.subprocess, "run",
                        lambda *a, **k: pytest.fail(f"nothing is missing, yet pip ran: {a}"))
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)   # set_up's change, undone
    return calls


def test_drive_opt_in_links_runs_to_google_drive_and_is_safe_to_repeat(colab, tmp_path, capsys):
    device, profile, _ = notebook.set_up(drive=True)
    runs = tmp_path / "content" / "runs"
    target = tmp_path / "drive" / "MyDrive" / "alexnet-edu" / "runs"
    assert runs.is_symlink() and runs.resolve() == target.resolve()
    (runs / "cpu" / "fashion-mnist").mkdir(parents=True)          # what notebook 04 writes ...
    assert (target / "cpu" / "fashion-mnist").is_dir()          # ... lands on Drive
    assert colab == [("widgets",), ("mount", str(tmp_path / "drive"))]
    assert f"runs/ is kept on your Google Drive: {target}" in capsys.readouterr().out
    notebook.set_up(drive=True)                   # after "Restart runtime": Drive is mounted
    assert colab.count(("mount", str(tmp_path / "drive"))) == 1 and runs.is_symlink()


def test_drive_opt_in_refuses_to_hide_runs_already_here(colab, tmp_path):
    (tmp_path / "content" / "runs" / "cpu").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="runs already exists here"):
        notebook.keep_runs_on_drive()
    assert (tmp_path / "content" / "runs" / "cpu").is_dir()     # nothing moved or lost


def test_drive_opt_in_is_for_colab_only(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    with pytest.raises(ValueError, match="Colab only"):
        notebook.keep_runs_on_drive()


def test_setup_says_what_it_installed(colab, monkeypatch, capsys):
    ran = []
    monkeypatch.setattr(notebook.subprocess, "run", lambda args, check: ran.append(args))
    real = notebook.importlib.util.find_spec
    monkeypatch.setattr(notebook.importlib.util, "find_spec",
                        lambda name: None if name == "torchsummary" else real(name))
    notebook.set_up()
    assert ran and ran[0][-1] == "torchsummary"
    # the exercise checks compare float32 answers: no TF32 convolutions on an A100 or H100
    assert torch.backends.cudnn.allow_tf32 is False
    assert "Installed torchsummary (Colab lacked them)" in capsys.readouterr().out
