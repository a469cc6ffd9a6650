"""ServerProcess: the one way to run `python -m policy.server` as a child process.

Start it, wait for its ready line (the server prints `policy server ready on ADDRESS` on stdout
once it serves; every log goes to stderr), optionally at a lower CPU priority, and stop it with
terminate -> wait -> kill. Used by run_demo's stack, evaluation, the benchmarks and the test
fixtures. Imports no torch: the console's process starts its policy child through this.

    with ServerProcess(["--runner", "testing", "--bind", "tcp://127.0.0.1:5599"]) as server:
        client = PolicyClient(server.address)
"""
from __future__ import annotations

import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from policy.child_process import child_command

log = logging.getLogger("policy.serving.process")

READY_LINE = "policy server ready on "
REPO = Path(__file__).resolve().parents[2]


def wait_until_ready(proc: subprocess.Popen, ready_timeout_s: float,
                     should_stop: threading.Event | None = None) -> str:
    """Read a spawned server's stdout until its ready line; return the address it serves on.

    Raises RuntimeError if it dies first (bad flags, insecure bind, port in use: its stderr says
    why), if should_stop is set, or if it is not ready in time (it is then killed)."""
    deadline = time.monotonic() + ready_timeout_s
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline and not (should_stop is not None and should_stop.is_set()):
            if selector.select(timeout=0.1):
                line = proc.stdout.readline()
                if line.startswith(READY_LINE):
                    return line[len(READY_LINE):].strip()
                if line == "" and proc.wait(timeout=10) is not None:
                    raise RuntimeError(f"policy server exited with code {proc.returncode} before it was ready "
                                       "(its log above says why)")
            elif proc.poll() is not None:
                raise RuntimeError(f"policy server exited with code {proc.returncode} before it was ready")
    proc.kill()
    proc.wait()
    if should_stop is not None and should_stop.is_set():
        raise RuntimeError("interrupted while the policy server was starting")
    raise RuntimeError(f"policy server was not ready within {ready_timeout_s:.0f} s (still loading the model "
                       "on a busy machine?); it was stopped")


class ServerProcess:
    """`python -m policy.server ARGS` as a child process.

    `start()` returns the address once the server is ready; `stop()` is terminate -> wait ->
    kill and safe to call twice; `died()` says in words whether (and how) the child ended."""

    def __init__(self, args: list[str], *, nice: int = 0, env: dict | None = None, ready_timeout_s: float = 300.0,
                 stop_timeout_s: float = 10.0, prefix: list[str] | None = None):
        self.args = list(args)
        self.prefix = list(prefix or [])       # e.g. ["ip", "netns", "exec", NS]: run it inside a namespace
        self.nice = nice
        self.env = env
        self.ready_timeout_s = ready_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.proc: subprocess.Popen | None = None
        self.address: str | None = None

    @property
    def command(self) -> str:
        return " ".join([*self.prefix, "python -m policy.server", *self.args])

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self, should_stop: threading.Event | None = None) -> str:
        # SIGTERM if the parent dies without cleaning up; `nice` yields the CPU to the cameras and
        # the control loop when they share a machine with the model.
        command = child_command([*self.prefix, sys.executable, "-m", "policy.server", *self.args],
                                death_signal=signal.SIGTERM, nice=self.nice)
        self.proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True,
                                     env=self.env if self.env is not None else os.environ.copy())
        self.address = wait_until_ready(self.proc, self.ready_timeout_s, should_stop)
        return self.address

    def died(self) -> str | None:
        if self.proc is not None and self.proc.poll() is not None:
            code = self.proc.returncode
            how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
            return f"the policy server (pid {self.proc.pid}) {how}; its log above says why"
        return None

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("policy server did not stop in %.0f s; killing it", self.stop_timeout_s)
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode

    def kill(self) -> int | None:
        """SIGKILL, as a crash would: for tests of what survives a dead server."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode if self.proc is not None else None

    def __enter__(self) -> "ServerProcess":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
