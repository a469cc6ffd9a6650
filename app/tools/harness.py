"""Drive the real demo from outside: start run_demo.py as a subprocess on free ports and open
its page in Debian's headless chromium, either through Playwright (chromium_page: the browser
tests in tests/app/, app.tools.bench_console; Playwright is imported only then) or as an
operator's browser with nothing attached (plain_chromium: the live and soak benchmarks, whose
numbers must not carry a DevTools session's cost)."""
from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from policy.wire.netutil import free_port

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
URL_MARKER = "console running on "


class DemoProcess:
    """`python run_demo.py --no-browser ...` with its stdout/stderr kept for failure messages."""

    def __init__(self, args: list[str], startup_timeout_s: float = 240.0):
        self.port = free_port()
        self.policy_port = free_port()
        env = dict(os.environ, MUJOCO_GL="osmesa", PYOPENGL_PLATFORM="osmesa", GRADIO_ANALYTICS_ENABLED="False",
                   HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
        self.log_path = Path(tempfile.mkstemp(prefix="run_demo_", suffix=".log")[1])
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "run_demo.py", "--no-browser", "--port", str(self.port),
             "--policy-port", str(self.policy_port), *args],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=self._log, text=True)
        self.url = self._wait_for_url(startup_timeout_s)

    def _wait_for_url(self, timeout_s: float) -> str:
        # A reader thread, not select() on a buffered text pipe (lines can sit in Python's buffer).
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in self.proc.stdout], daemon=True).start()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if URL_MARKER in line:
                return line.split(URL_MARKER, 1)[1].split()[0]
        self.stop()
        raise RuntimeError(f"run_demo.py did not start (exit code {self.proc.returncode}); log:\n{self.log()}")

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()[-6000:]

    def stop(self, timeout_s: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@contextmanager
def chromium_page(viewport=(1400, 1000)):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p, tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        ctx = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True,
                                                   args=CHROMIUM_ARGS,
                                                   viewport={"width": viewport[0], "height": viewport[1]})
        try:
            page = ctx.new_page()
            yield page
        finally:
            ctx.close()


@contextmanager
def plain_chromium(url: str, profile: str, viewport: tuple[int, int] = (1400, 1000)):
    """An operator's browser on `url`: headless chromium as a child of this process, nothing
    attached (no DevTools session). Killed with its whole process group at the end."""
    proc = subprocess.Popen([CHROMIUM, "--headless=new", *CHROMIUM_ARGS, f"--user-data-dir={profile}",
                             f"--window-size={viewport[0]},{viewport[1]}", "--no-first-run", url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
