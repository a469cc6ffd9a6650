"""Drive the real demo from outside: start run_demo.py as a subprocess on free ports and open
its page in Debian's headless chromium, either through Playwright (chromium_page: the browser
tests in tests/app/, app.tools.bench_console; Playwright is imported only then) or as an
operator's browser with nothing attached (plain_chromium: the live and soak benchmarks, whose
numbers must not carry a DevTools session's cost)."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
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
def plain_chromium(url: str, profile: str, viewport: tuple[int, int] = (1400, 1000), devtools: bool = False):
    """An operator's browser on `url`: headless chromium as a child of this process, nothing
    attached (no DevTools session). devtools=True opens a DevTools port on 127.0.0.1 (chromium
    writes it to PROFILE/DevToolsActivePort) for page_memory's short visits. Killed with its whole
    process group at the end."""
    port = ["--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0"] if devtools else []
    proc = subprocess.Popen([CHROMIUM, "--headless=new", *CHROMIUM_ARGS, *port, f"--user-data-dir={profile}",
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


def page_memory(profile: str, url: str, timeout_s: float = 10.0) -> dict | None:
    """What the page at `url` holds, read over DevTools for a moment (a plain_chromium started with
    devtools=True): its JS heap (Runtime.getHeapUsage) and DOM counters (Memory.getDOMCounters), no
    domain enabled, detached at once. Tells a renderer's growth in JS objects or DOM nodes apart
    from growth elsewhere (images, layout, the compositor). None when the page cannot be reached."""
    from websockets.sync.client import connect      # gradio's dependency; only this diagnostic needs it
    try:
        port = int((Path(profile) / "DevToolsActivePort").read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=timeout_s) as r:
            targets = json.load(r)
        target = next(t for t in targets if t.get("type") == "page" and t.get("url", "").startswith(url))
        with connect(target["webSocketDebuggerUrl"], open_timeout=timeout_s, max_size=None) as ws:
            replies = {}
            for i, method in enumerate(["Runtime.getHeapUsage", "Memory.getDOMCounters"]):
                ws.send(json.dumps({"id": i, "method": method}))
            while len(replies) < 2:
                msg = json.loads(ws.recv(timeout=timeout_s))
                if "id" in msg:
                    replies[msg["id"]] = msg.get("result", {})
    except (OSError, ValueError, StopIteration, TimeoutError, KeyError) as exc:
        logging.getLogger(__name__).warning("page_memory: could not read the page (%s)", exc)
        return None
    heap, dom = replies[0], replies[1]
    return {"js_heap_used_mb": round(heap.get("usedSize", 0) / 2**20, 2),
            "js_heap_total_mb": round(heap.get("totalSize", 0) / 2**20, 2),
            "dom_nodes": dom.get("nodes"), "js_event_listeners": dom.get("jsEventListeners"),
            "documents": dom.get("documents")}
