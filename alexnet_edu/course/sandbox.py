"""Run an untrusted command inside bubblewrap, killed with everything it started at a deadline.

What the sandbox gives the command (the grader runs each notebook in one):

- a read-only view of the system (/usr, /etc), of Python and its packages, of `alexnet_edu/`
  and of the data root, and nothing else: no home folder, solutions, other students' files or
  grades file;
- one writable folder (its scratch, at /scratch), a private /tmp and a private `runs/`;
- no network (only loopback), its own PID, IPC and UTS namespaces (it cannot see or signal
  other processes), a new session (no terminal to inject keystrokes into);
- when the grader runs as root, a separate user (nobody, 65534) with no capabilities;
- death with the grader: everything inside is killed when the command's first process exits,
  at the deadline, or when the grader itself dies.

What it does not limit: memory, disk space in the scratch folder, and CPU time up to the deadline.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path

__all__ = ["SandboxUnavailable", "available", "command", "NOBODY", "kill"]

NOBODY = 65534
SCRATCH = "/scratch"
PACKAGE = Path(__file__).resolve().parent.parent   # alexnet_edu/, not course/


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create namespaces here; the message says what to do."""


def _python_roots() -> list[Path]:
    """The folders the running Python and its packages live in (a venv and its base)."""
    roots = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix),
             Path(sys.executable).resolve().parent.parent}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        roots.add(Path(sysconfig.get_paths()[key]))
    return sorted({r.resolve() for r in roots if r.exists()} | {r for r in roots if r.exists()})


def command(argv: Sequence[str], scratch: Path, runs: Path, env: dict[str, str],
            readable: Sequence[Path] = (), hide: Sequence[Path] = ()) -> list[str]:
    """The bwrap command line running `argv` with `scratch` writable at /scratch (also its working
    folder) and `runs` writable at /scratch/runs (the kernel's runs_dir()). `hide` are folders
    covered by an empty one should a read-only bind expose them (the solutions, the
    submissions)."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailable("bubblewrap (bwrap) is not installed")
    args = [bwrap, "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session"]
    if os.geteuid() != 0:   # without root, a user namespace is what makes the mounts possible
        args.append("--unshare-user")
    args += _system_binds()
    # a private /tmp first: the binds below then show through it (a clone, its venv or the data
    # may live under /tmp; a tmpfs mounted after them would hide them)
    args += ["--perms", "1777", "--tmpfs", "/tmp"]
    args += _read_only_binds([*_python_roots(), PACKAGE, *readable], hide)
    # runs/: inside the sandbox the package has no pyproject.toml beside it, so runs_dir() is
    # the working folder's (settings.PROJECT_ROOT), /scratch/runs
    args += ["--bind", str(scratch), SCRATCH, "--bind", str(runs), f"{SCRATCH}/runs",
             "--chdir", SCRATCH, "--dev", "/dev", "--proc", "/proc", "--clearenv"]
    for key, value in {"HOME": SCRATCH, "TMPDIR": "/tmp", "PATH": "/usr/bin:/bin",
                       "LANG": "C.UTF-8", "MPLCONFIGDIR": f"{SCRATCH}/.matplotlib",
                       "PYTHONDONTWRITEBYTECODE": "1", **env}.items():
        args += ["--setenv", key, value]
    args.append("--")
    if os.geteuid() == 0:
        # the command runs as nobody: the files it can write are its scratch and runs folders
        args += [shutil.which("setpriv") or "/usr/bin/setpriv", f"--reuid={NOBODY}",
                 f"--regid={NOBODY}", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"]
    return args + list(argv)


def _system_binds() -> list[str]:
    """/usr and /etc read-only, and the top-level folders a merged /usr links into it."""
    args = ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
    for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / top
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    return args


def _read_only_binds(readable: Sequence[Path], hide: Sequence[Path]) -> list[str]:
    """Bind the outermost folders of `readable` read-only (never / itself), then cover each
    folder of `hide` that a bind exposes with an empty tmpfs."""
    args: list[str] = []
    made = {Path(p) for p in ("/", "/usr", "/etc", "/tmp", "/proc", "/dev")}
    bound = [Path("/usr"), Path("/etc")]
    for path in sorted({Path(p).absolute() for p in readable if Path(p).exists()},
                       key=lambda p: len(p.parts)):
        if path == Path("/") or any(path.is_relative_to(b) for b in bound):
            continue
        # bwrap copies the mode of a parent it creates (/root is 0700): make them traversable
        for parent in reversed(path.parents):
            if parent not in made:
                made.add(parent)
                args += ["--perms", "0755", "--dir", str(parent)]
        args += ["--ro-bind", str(path), str(path)]
        made.add(path)
        bound.append(path)
    for path in hide:   # only a bind shows a folder's files: cover those inside one
        # as given and with its links resolved: a bound folder may hold it under either name
        for form in {Path(path).absolute(), Path(path).resolve()}:
            if form.is_dir() and any(form.is_relative_to(p) for p in bound):
                args += ["--tmpfs", str(form)]
    return args


def prepare(folder: Path) -> Path:
    """Make `folder` (created if needed) writable by the sandbox's user."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        os.chown(folder, NOBODY, NOBODY)
    return folder


def kill(process: subprocess.Popen) -> None:
    """SIGKILL the sandbox's process group: the PID namespace's init goes, and with it every
    process inside, detached or not."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def available() -> str | None:
    """None when a sandboxed command runs here, else why not (one line)."""
    if shutil.which("bwrap") is None:
        return ("bubblewrap is not installed (Debian/Ubuntu: `apt-get install bubblewrap`; "
                "Fedora: `dnf install bubblewrap`)")
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        return "setpriv (util-linux) is needed to drop root inside the sandbox"
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        scratch, runs = prepare(Path(tmp) / "s"), prepare(Path(tmp) / "r")
        os.chmod(tmp, 0o755)
        argv = command([sys.executable, "-c", "print('ok')"], scratch, runs, {})
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as err:
            return f"bubblewrap could not run: {err}"
    if done.returncode != 0 or done.stdout.strip() != "ok":
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return (f"bubblewrap cannot create a sandbox here ({reason}); unprivileged user "
                "namespaces may be disabled (sysctl kernel.unprivileged_userns_clone=1), or run "
                "the grader as root")
    return None
