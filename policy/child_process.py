"""Child processes that die with their parent, started without running Python in the fork.

Why not `preexec_fn`: Python's docs call it unsafe in a threaded program, and ours always is
(cameras, control loop, encoders). Before it runs the hook, the forked child tidies the other
threads' state; measured here, that freed a PyAV frame reformatter held by a decoding thread,
whose destructor waited on a condition variable that thread owned at the fork: the child hung
before exec, the encoder waiting on it never finished, and a recording never saved (a whole CI
run timed out on it). So the child's set-up is done by small programs that exec the command:
util-linux's `setpriv --pdeathsig` (a signal when the parent dies, Linux only) and coreutils'
`nice`. Both are in every Debian and Ubuntu base system; without setpriv the child runs as is.

Note PR_SET_PDEATHSIG's rule: the signal comes when the *thread* that started the child ends,
so start long-lived children from a thread that outlives them (or from the main thread).
"""
from __future__ import annotations

import shutil
import signal
import sys


def child_command(command: list[str], *, death_signal: signal.Signals | None = None,
                  nice: int = 0) -> list[str]:
    """`command` wrapped so it gets `death_signal` when its parent dies and runs `nice` lower."""
    wrapped = list(command)
    if death_signal is not None and sys.platform.startswith("linux"):
        setpriv = shutil.which("setpriv")
        if setpriv is not None:
            wrapped = [setpriv, "--pdeathsig", death_signal.name.removeprefix("SIG"), "--", *wrapped]
    if nice:
        wrapped = [shutil.which("nice") or "nice", "-n", str(int(nice)), *wrapped]
    return wrapped
