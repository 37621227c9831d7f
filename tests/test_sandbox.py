"""The grader's sandbox command line (alexnet_edu/course/sandbox.py) and environment, without
running it:
what is bound where, what is hidden, and the data root the graded kernels read."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import alexnet_edu
from alexnet_edu.course import grading, sandbox

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None,
                                 reason="bubblewrap is not installed (.ci/run installs it)")


def _pairs(argv: list[str], flag: str) -> list[tuple[str, str]]:
    return [(argv[i + 1], argv[i + 2]) for i, a in enumerate(argv) if a == flag]


@needs_bwrap
def test_runs_is_the_scratch_folders_not_one_beside_the_installed_package(tmp_path):
    """Inside the sandbox the package has no pyproject.toml beside it, so runs_dir() is the
    working folder's, /scratch/runs. A bind beside the package needed a mount point inside a
    read-only site-packages of a non-editable install."""
    argv = sandbox.command(["true"], tmp_path / "scratch", tmp_path / "runs", {})
    binds = _pairs(argv, "--bind")
    assert (str(tmp_path / "runs"), f"{sandbox.SCRATCH}/runs") in binds
    assert all(not dest.startswith(str(sandbox.PACKAGE.parent / "runs")) for _, dest in binds)


@needs_bwrap
def test_the_whole_package_is_readable_not_only_the_course_tools(tmp_path):
    """sandbox.py moved into alexnet_edu/course/: binding its own folder left `import
    alexnet_edu` failing inside the sandbox, and every graded kernel 'died'."""
    argv = sandbox.command(["true"], tmp_path / "scratch", tmp_path / "runs", {})
    package = Path(alexnet_edu.__file__).resolve().parent
    assert any(package.is_relative_to(source) for source, _ in _pairs(argv, "--ro-bind"))


@needs_bwrap
def test_a_hidden_folder_is_covered_under_its_resolved_name_too(tmp_path):
    """Solutions named through a link (~/course -> /srv/course) inside a bound data root must
    still be covered: comparing unresolved paths left them readable."""
    real = tmp_path / "srv" / "course"
    (real / "notebooks").mkdir(parents=True)
    link = tmp_path / "home-course"
    link.symlink_to(real)
    argv = sandbox.command(["true"], tmp_path / "scratch", tmp_path / "runs", {},
                           readable=[real], hide=[link / "notebooks"])
    covered = [argv[i + 1] for i, a in enumerate(argv) if a == "--tmpfs"]
    assert str(real / "notebooks") in covered


def test_graded_kernels_read_the_graders_data_root_by_name(tmp_path, monkeypatch):
    """Without ALEXNET_EDU_DATA the grader's data root (the clone's data/) would have become the
    sandbox's scratch folder's, empty: every data notebook then tried to download, offline."""
    monkeypatch.delenv("ALEXNET_EDU_DATA", raising=False)
    monkeypatch.setattr(grading, "data_root", lambda: tmp_path)
    assert grading._environment("smoke")["ALEXNET_EDU_DATA"] == str(tmp_path)
    monkeypatch.setattr(grading, "data_root", lambda: tmp_path / "missing")
    assert "ALEXNET_EDU_DATA" not in grading._environment("smoke")   # stand-ins in scratch
    assert Path(tmp_path).is_dir()


@needs_bwrap
def test_folders_under_tmp_are_bound_after_the_private_tmp(tmp_path):
    """A clone (and its venv) under /tmp: the sandbox's private /tmp was mounted after the binds
    and hid them ('setpriv: failed to execute .../.venv/bin/python: No such file')."""
    argv = sandbox.command(["true"], tmp_path / "scratch", tmp_path / "runs", {},
                           readable=[tmp_path])
    private_tmp = argv.index("/tmp", argv.index("--tmpfs"))
    binds = [i for i, a in enumerate(argv) if a == "--ro-bind" and argv[i + 1] == str(tmp_path)]
    assert binds and all(private_tmp < i for i in binds)
