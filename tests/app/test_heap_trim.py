"""app.heap_trim on the real glibc: memory freed in the middle of the heap stays in the process's
RSS until malloc_trim hands it back; the trimmer thread trims on its interval and stops."""
from __future__ import annotations

import ctypes
import ctypes.util
import time

import pytest

from app import heap_trim
from app.tools.proc_probes import rss_mb

pytestmark = pytest.mark.skipif(heap_trim.free_mb() is None, reason="not glibc >= 2.33: malloc_trim/mallinfo2 absent")


def test_trim_returns_memory_fragmentation_kept():
    import os
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    size, n = 64 * 1024, 1000                      # below the mmap threshold: from the heap
    blocks = [libc.malloc(size) for _ in range(n)]
    for b in blocks:
        ctypes.memset(b, 1, size)                  # touched: resident
    before = rss_mb(os.getpid())
    for b in blocks[:-1]:
        libc.free(b)                               # the last block pins the heap's top: no shrink
    free_mb = heap_trim.free_mb()
    kept = rss_mb(os.getpid())
    assert free_mb >= 0.9 * n * size / 1e6           # the arenas hold it free ...
    assert kept > before - 10                        # ... and the process still holds it
    heap_trim.trim()
    after = rss_mb(os.getpid())
    libc.free(blocks[-1])
    assert kept - after > 0.8 * n * size / 1e6, (before, kept, after)   # ~64 MB handed back


def test_the_trimmer_thread_trims_on_its_interval_and_stops():
    with pytest.raises(ValueError, match="interval_s"):
        heap_trim.HeapTrimmer(0)
    t = heap_trim.HeapTrimmer(interval_s=0.02)
    t.start()
    deadline = time.monotonic() + 10
    while t.trims < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    t.stop()
    assert t.trims >= 3 and t.last_ms >= 0
    n = t.trims
    time.sleep(0.1)
    assert t.trims == n                              # stopped: no more trims


ARENA_SCRIPT = """
import ctypes, json, os, sys, threading
from app import heap_trim
from app.tools.proc_probes import rss_mb_by_mapping
if sys.argv[1] != "none":
    assert heap_trim.limit_arenas(int(sys.argv[1]))
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
held, go = [], threading.Barrier(4)
def churn():                     # four threads allocating at once: glibc gives each its own arena
    go.wait()
    for _ in range(4000):
        p = libc.malloc(2048)
        ctypes.memset(p, 1, 2048)
        held.append(p)
threads = [threading.Thread(target=churn) for _ in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
print(json.dumps(rss_mb_by_mapping(os.getpid())))
"""


def test_limit_arenas_keeps_threads_in_the_shared_heaps():
    import json
    import subprocess
    import sys

    def run(cap: str) -> dict:
        out = subprocess.run([sys.executable, "-c", ARENA_SCRIPT, cap], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout.strip().splitlines()[-1])
    free_for_all, capped = run("none"), run("1")
    assert free_for_all["arenas"] > 8, free_for_all        # 32 MB in the threads' own arenas
    assert capped["arenas"] < 2 and capped["heap"] > free_for_all["heap"] + 20, (free_for_all, capped)
    with pytest.raises(ValueError, match="n >= 1"):
        heap_trim.limit_arenas(0)
