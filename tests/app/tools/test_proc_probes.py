"""app.tools.proc_probes on a real child process: RSS, fds, the process tree by role, and zeros once it has gone."""
import os
import subprocess
import sys

from app.tools import proc_probes


def test_proc_probes_see_a_real_child():
    child = subprocess.Popen([sys.executable, "-c", "import time; x = bytearray(50 * 2**20); time.sleep(30)"])
    try:
        for _ in range(100):
            if proc_probes.rss_mb(child.pid) > 40:
                break
            subprocess.run(["sleep", "0.1"])
        assert child.pid in proc_probes.descendants(os.getpid())
        assert proc_probes.rss_mb(child.pid) > 40
        assert proc_probes.fd_count(child.pid) >= 3
        groups = proc_probes.process_groups(os.getpid(), policy_pid=child.pid)
        assert groups["policy"] == [child.pid] and groups["stack"] == [os.getpid()]
    finally:
        child.kill()
        child.wait()
    assert proc_probes.rss_mb(child.pid) == 0.0 and proc_probes.fd_count(child.pid) == 0


def test_cpu_seconds_of_a_busy_child_grow_and_a_gone_one_reads_zero():
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        first = proc_probes.cpu_s(child.pid)
        subprocess.run(["sleep", "0.5"])
        assert proc_probes.cpu_s(child.pid) - first > 0.1          # a spinning loop gets CPU in 0.5 s
        assert proc_probes.cpu_s(os.getpid()) > 0
    finally:
        child.kill()
        child.wait()
    assert proc_probes.cpu_s(child.pid) == 0.0



def test_cpu_by_group_counts_a_child_that_lived_between_two_samples():
    """A recorder's encoder lives one episode: born after one sample and reaped before the next, its CPU
    shows only in the parent's reaped time. Real processes: the test process is the root."""
    me = os.getpid()
    before = proc_probes.cpu_samples({"stack": [me]})
    subprocess.run([sys.executable, "-c", "import time\nt = time.process_time()\n"
                    "while time.process_time() - t < 0.4: pass"], check=True)
    used = proc_probes.cpu_seconds_by_group(before, proc_probes.cpu_samples({"stack": [me]}), root=me)
    assert used["other"] >= 0.35, used          # the gone child's 0.4 s, reaped by the root
    assert used["stack"] >= 0.0


def test_cpu_by_group_arithmetic():
    S = proc_probes.CpuSample
    prev = {1: S(10.0, 0.0, "stack"), 2: S(5.0, 0.0, "policy"), 3: S(1.0, 0.0, "other"), 4: S(2.0, 0.0, "chromium"),
            5: S(0.5, 0.0, "chromium")}
    now = {1: S(11.0, 3.0, "stack"),            # reaped 3 (its child 3 ended with 3 s in all, 1 s already shown)
           2: S(5.5, 0.0, "policy"),
           4: S(2.5, 0.25, "chromium"),          # chromium's own child 5 ended with 0.25 s in all
           6: S(0.75, 0.0, "other")}             # born since prev: all of it counts
    used = proc_probes.cpu_seconds_by_group(prev, now, root=1)
    assert used == {"stack": 1.0, "policy": 0.5, "chromium": 0.25, "other": 2.75}
    assert proc_probes.cpu_seconds_by_group(prev, {}, root=1) == {g: 0.0 for g in ("stack", "policy", "other",
                                                                                    "chromium")}


def test_chromium_roles_come_from_the_type_flag():
    # argv in one string, as chromium's children rewrite their process title ("chromium --type=renderer ...")
    child = subprocess.Popen(["bash", "-c", 'exec -a "chromium --type=renderer --lang=en" sleep 30'])
    me = os.getpid()
    try:
        for _ in range(100):            # until the child has exec'd (its cmdline is ours before that)
            if proc_probes.chromium_role(child.pid) == "renderer":
                break
            subprocess.run(["sleep", "0.05"])
        assert proc_probes.chromium_role(child.pid) == "renderer"
        assert proc_probes.chromium_role(me) == "browser"          # no --type: the main process
        assert proc_probes.by_role([child.pid, me], lambda pid: 1.5) == {"renderer": 1.5, "browser": 1.5}
        assert proc_probes.by_process([child.pid, me], lambda pid: 2.0) == {f"renderer-{child.pid}": 2.0,
                                                                            f"browser-{me}": 2.0}
    finally:
        child.kill()
        child.wait()
    assert proc_probes.chromium_role(child.pid) == "" and proc_probes.by_role([child.pid], proc_probes.rss_mb) == {}


MAPPING_SCRIPT = """
import ctypes, json, os, threading
import numpy as np
from app.tools import proc_probes
pid = os.getpid()
before = proc_probes.rss_mb_by_mapping(pid)
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
held = []
def churn():                    # 30 MB of 1 KB blocks, touched, from a fresh thread: its own arena
    for _ in range(30_000):
        p = libc.malloc(1024)
        ctypes.memset(p, 1, 1024)
        held.append(p)
t = threading.Thread(target=churn)
t.start()
t.join()
big = np.ones(40 * 2**20 // 8)          # 40 MB, one mmap of its own
print(json.dumps([before, proc_probes.rss_mb_by_mapping(pid)]))
"""


def test_rss_by_mapping_sees_a_thread_arena_and_a_large_buffer():
    """In a fresh process (a busy one reuses arenas it already has): a thread's small mallocs land
    in a glibc thread arena; a large numpy buffer is an anonymous mmap of its own."""
    import json

    out = subprocess.run([sys.executable, "-c", MAPPING_SCRIPT], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    before, after = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(before) == set(proc_probes.MAPPING_KINDS) and before["files"] > 0
    assert after["arenas"] - before["arenas"] > 20, (before, after)
    assert after["anon"] - before["anon"] > 30, (before, after)
    assert proc_probes.rss_mb_by_mapping(2**22 + 12345) == {}          # gone: nothing, no error
    assert proc_probes.mapping_kind(0x7F0000000000, 2**20, "/usr/lib/libc.so.6") == "files"
    assert proc_probes.mapping_kind(0x7F0004000000, 2**20, "") == "arenas"
    assert proc_probes.mapping_kind(0x7F0004001000, 2**20, "") == "anon"
    assert proc_probes.mapping_kind(0x7F0004001000, 2**20, "[stack]") == "anon"


def test_fds_by_kind_counts_what_this_process_opens(tmp_path):
    import socket
    before = proc_probes.fds_by_kind([os.getpid()])
    r, w = os.pipe()
    socks = [socket.socket() for _ in range(3)]
    f = open(tmp_path / "x", "w")
    try:
        after = proc_probes.fds_by_kind([os.getpid()])
        assert after.get("pipe", 0) - before.get("pipe", 0) == 2
        assert after.get("socket", 0) - before.get("socket", 0) == 3
        assert after.get("file", 0) - before.get("file", 0) == 1
    finally:
        os.close(r), os.close(w), f.close()
        for s in socks:
            s.close()
    assert proc_probes.fd_kind("anon_inode:[eventfd]") == "anon:eventfd"
    assert proc_probes.fd_kind("/memfd:shared (deleted)") == "memfd" and proc_probes.fd_kind("/dev/null") == "dev"
    assert proc_probes.fds_by_kind([2**22 + 7]) == {}                     # no such process
