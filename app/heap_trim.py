"""Give the console process's freed heap memory back to the OS now and then (glibc malloc_trim).

Why: the console process allocates and frees hundreds of camera-sized buffers a second from a
dozen threads (MuJoCo renders, JPEG encodes for the page, recorder copies, Gradio's workers).
glibc keeps what they free inside its per-thread arenas, where it fragments: in a 60-minute soak
the process's RSS grew ~50 MB an hour while its Python heap (tracemalloc, `bench_soak
--tracemalloc`) and its object count stayed flat. malloc_trim(0) returns the free pages of every
arena to the OS; `free_mb()` (mallinfo2's fordblks) shows what the arenas hold free.

limit_arenas(n) caps how many arenas glibc makes (mallopt M_ARENA_MAX; glibc's default is 8 per
core): a trim returns free pages, but each extra arena keeps its own fragmented heap alive, and
the 60-min soak with trims still grew (+63 MB/h). Set before the stack's threads start; threads
beyond the cap share the existing arenas (their per-thread caches still spare most locking).

Thread: HeapTrimmer runs one daemon thread ("heap-trim") that trims every `interval_s`; a trim
takes the arenas' locks for a few milliseconds. Anything but glibc (musl, macOS): a no-op, and
free_mb() is None.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
import time

log = logging.getLogger(__name__)


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def _libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") else None


_LIBC = _libc()         # loaded once; holds no state of ours
if _LIBC is not None and hasattr(_LIBC, "mallinfo2"):
    _LIBC.mallinfo2.restype = _MallInfo2


def free_mb() -> float | None:
    """Bytes glibc's arenas hold free (not returned to the OS), in MB; None off glibc < 2.33."""
    if _LIBC is None or not hasattr(_LIBC, "mallinfo2"):
        return None
    return _LIBC.mallinfo2().fordblks / 1e6


def trim() -> bool:
    """Return free arena memory to the OS now; True if any was released."""
    return bool(_LIBC.malloc_trim(0)) if _LIBC is not None else False


M_ARENA_MAX = -8      # glibc malloc.h


def limit_arenas(n: int) -> bool:
    """Let glibc make at most n malloc arenas from now on (arenas already made stay); True if set."""
    if n < 1:
        raise ValueError(f"limit_arenas needs n >= 1, got {n}")
    return bool(_LIBC.mallopt(M_ARENA_MAX, n)) if _LIBC is not None else False


class HeapTrimmer:
    def __init__(self, interval_s: float = 30.0):
        if interval_s <= 0:
            raise ValueError(f"HeapTrimmer interval_s must be > 0, got {interval_s}")
        self.interval_s = interval_s
        self.trims = 0
        self.last_ms = 0.0               # how long the last trim held the allocator
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if _LIBC is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="heap-trim", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            t0 = time.perf_counter()
            trim()
            self.last_ms = (time.perf_counter() - t0) * 1000
            self.trims += 1
            if self.last_ms > 50:
                log.info("malloc_trim held the allocator %.0f ms", self.last_ms)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
