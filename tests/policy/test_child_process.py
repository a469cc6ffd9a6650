"""child_command: a child gets its death signal when the parent process dies, and runs niced."""
import os
import subprocess
import sys
import time

import pytest

from app.tools.proc_probes import cmdline_args
from policy.child_process import child_command

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"   # a zombie is dead, only not reaped
    except FileNotFoundError:
        return False


def test_the_child_dies_when_its_parent_is_killed():
    # A parent that starts a long sleep through child_command and then waits; kill -9 the parent.
    parent_code = ("import signal, subprocess, sys, time\n"
                   "from policy.child_process import child_command\n"
                   "p = subprocess.Popen(child_command(['sleep', '60'], death_signal=signal.SIGKILL))\n"
                   "print(p.pid, flush=True)\n"
                   "time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True)
    try:
        child_pid = int(parent.stdout.readline())
        deadline = time.monotonic() + 10        # setpriv has set the signal once it has exec'd sleep
        while (cmdline_args(child_pid) or [])[:1] != [b"sleep"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cmdline_args(child_pid) == [b"sleep", b"60"]
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while _alive(child_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child_pid), "the child outlived its killed parent"
    finally:
        parent.kill()
        parent.stdout.close()


def test_the_child_runs_at_the_lower_priority_and_keeps_its_arguments():
    here = os.nice(0)
    command = child_command([sys.executable, "-c", "import os, sys; print(os.nice(0), sys.argv[1:])", "a b", "--c"],
                            death_signal=None, nice=5)
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split(" ", 1)
    assert int(out[0]) == min(here + 5, 19)
    assert out[1].strip() == "['a b', '--c']"
