"""app.tools.heap_growth: a real tracemalloc diff names the line that keeps allocating, and leaves
out what was alive at the baseline or freed since."""
from __future__ import annotations

import pytest

from app.tools.heap_growth import HeapGrowth

_kept: list[bytes] = []


def _leak(n: int) -> None:
    for _ in range(n):
        _kept.append(bytes(10_000))          # THE LEAKING LINE


def test_the_site_that_grows_is_named_first():
    heap = HeapGrowth(frames=4)
    heap.start()
    try:
        with pytest.raises(RuntimeError, match="run longer than --warmup"):
            heap.report(5)
        _leak(50)                            # alive at the baseline: not growth
        heap.mark()
        transient = [bytes(10_000) for _ in range(100)]
        del transient                        # freed again: not growth
        _leak(200)                           # 2 MB that stay
        report = heap.report(5)
    finally:
        heap.stop()
        _kept.clear()
    top = report["sites"][0]
    assert top["traceback"][0].endswith(f"test_heap_growth.py:{_leak.__code__.co_firstlineno + 2}"), top
    assert 200 <= top["count"] <= 205 and top["mb"] == pytest.approx(2.0, rel=0.05)   # + the list's resizes
    first, last = report["traced_mb_first_last"]
    assert last - first == pytest.approx(2.0, abs=0.3)
