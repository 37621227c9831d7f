"""Fixtures for the browser tests: a throw-away JupyterLab server and headless Chromium.

Chromium is Debian's (`apt-get install chromium`, done by .ci/run), driven by Playwright's Python
package; Playwright never downloads a browser here. Without either, the tests skip and say why.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

CHROMIUM = os.environ.get("ALEXNET_EDU_CHROMIUM", "/usr/bin/chromium")
# Flags for a sandboxed CI machine with a closed network: no GPU, no sandbox (we run as root),
# and no background connections to Google (refused here, and slow to fail).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# JupyterLab settings for a predictable page: every cell in the DOM (JupyterLab 4 otherwise only
# renders the cells in view), the notebook's kernel started without a "Select Kernel" dialog,
# and no news/update checks (no network).
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings":
        {"windowingMode": "none", "autoStartDefaultKernel": True},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
}
SCREENSHOTS: list[Path] = []  # listed at the end of the pytest run


@dataclass
class Lab:
    url: str          # http://127.0.0.1:PORT
    token: str
    root: Path        # the server's root_dir (a temporary folder we copy notebooks into)
    log: Path

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?token={self.token}&reset"

    def kernel_state(self, name: str) -> str | None:
        """The execution state ("starting", "busy", "idle", ...) of the kernel the server runs
        for notebook `name`, from its REST API; None while there is no such session."""
        url = f"{self.url}/api/sessions?token={self.token}"
        with urllib.request.urlopen(url, timeout=5) as response:
            sessions = json.load(response)
        for session in sessions:
            if session.get("path") == name and session.get("kernel"):
                return session["kernel"].get("execution_state")
        return None

    def wait_for_kernel(self, name: str, state: str = "idle", timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        current = None
        while time.monotonic() < deadline:
            current = self.kernel_state(name)
            if current == state:
                return
            time.sleep(0.5)
        raise TimeoutError(f"the kernel of {name} is {current!r}, not {state!r}, after "
                           f"{timeout} s (server log: {self.log})")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(lab: Lab, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {process.returncode}:\n"
                               f"{lab.log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{lab.url}/api/status?token={lab.token}", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"JupyterLab not ready after {timeout} s:\n{lab.log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen) -> None:
    """Stop the server and its kernels: the whole process group, politely then firmly."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A JupyterLab server on 127.0.0.1 with a token and its own config/runtime/settings dirs,
    serving an empty temporary folder (tests copy notebooks in), kernels in smoke mode."""
    pytest.importorskip("jupyterlab", reason="JupyterLab is not installed (requirements.txt)")
    base = tmp_path_factory.mktemp("jupyterlab")
    root, home = base / "root", base / "home"
    settings = home / "lab-settings"
    for path, value in LAB_SETTINGS.items():
        plugin, name = path.rsplit("/", 1)
        (settings / plugin).mkdir(parents=True, exist_ok=True)
        (settings / plugin / name).write_text(json.dumps(value))
    root.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "MPLBACKEND"))}
    env.update(
        ALEXNET_EDU_SMOKE="1",  # the notebooks' small sizes: fast kernels
        JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(settings), JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
        IPYTHONDIR=str(home / "ipython"), OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "2"),
        PYTHONUNBUFFERED="1",
    )
    lab = Lab(url=f"http://127.0.0.1:{_free_port()}", token=secrets.token_hex(16), root=root,
              log=base / "jupyterlab.log")
    port = lab.url.rsplit(":", 1)[1]
    with open(lab.log, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
             f"--IdentityProvider.token={lab.token}", f"--ServerApp.root_dir={root}",
             "--LabApp.news_url=", "--ServerApp.terminals_enabled=False",
             # CI machines run as root; JupyterLab refuses that unless told it is intended
             *(["--allow-root"] if os.geteuid() == 0 else [])],
            env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)  # its own process group, so kernels die with it
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is threading.main_thread():
        # A CI timeout sends SIGTERM: raise SystemExit so the finally below still stops the
        # server (it runs in its own session, so nothing else would).
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        _wait_ready(lab, process)
        yield lab
    finally:
        _stop(process)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory: pytest.TempPathFactory):
    """A headless Debian Chromium (via Playwright) with a new, empty profile."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright's Python package is missing: pip install "
        "playwright (no `playwright install`; we use Debian's chromium)")
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"no Chromium at {CHROMIUM}: `apt-get install chromium` (Debian; .ci/run "
                    "does this) or set ALEXNET_EDU_CHROMIUM to a Chromium binary")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000})
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def artifacts_dir() -> Path:
    """Where screenshots go: $ALEXNET_EDU_ARTIFACTS/e2e (CI can upload it), else
    <tmp>/alexnet-edu-e2e (outside the repository, and not rotated away like pytest's tmp)."""
    env = os.environ.get("ALEXNET_EDU_ARTIFACTS", "").strip()
    folder = Path(env) / "e2e" if env else Path(tempfile.gettempdir()) / "alexnet-edu-e2e"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def copy_notebook(lab: Lab, source: Path) -> str:
    """Copy a notebook into the server's folder *without its stored outputs*, as a student runs
    it from scratch: stored execution counts would make "every cell ran" true before Run All."""
    nb = nbformat.read(source, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, lab.root / source.name)
    return source.name


def pytest_terminal_summary(terminalreporter) -> None:
    if SCREENSHOTS:
        terminalreporter.write_sep("-", "JupyterLab screenshots")
        for path in SCREENSHOTS:
            terminalreporter.write_line(str(path))
