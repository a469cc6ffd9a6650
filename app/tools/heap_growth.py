"""Where a growing process's Python memory goes: tracemalloc snapshots compared over a soak.

bench_soak --tracemalloc N starts tracing when the soak starts, takes a baseline snapshot at the
end of the warm-up and compares the last snapshot with it, grouped by allocation traceback. If
the traced total grows about as fast as the process's RSS, the growth is Python objects and the
top sites name them; if it stays flat while RSS grows, the growth is native (allocator
fragmentation, a C library's buffers) and tracemalloc cannot see it.

Tracing costs time on every Python allocation (the rollouts run slower): a diagnostic run, not
the one whose numbers go in a table. Not thread-affine: snapshots may be taken from any thread.
"""
from __future__ import annotations

import tracemalloc
from dataclasses import dataclass, field

# Frames of tracemalloc itself and of the import machinery are noise in a diff.
_IGNORED = (tracemalloc.__file__, "<frozen importlib._bootstrap>", "<frozen importlib._bootstrap_external>",
            "<unknown>")


@dataclass
class HeapGrowth:
    frames: int = 12            # traceback depth stored per allocation (more: slower, clearer)
    _baseline: tracemalloc.Snapshot | None = field(default=None, init=False)
    _baseline_mb: float = field(default=0.0, init=False)

    def start(self) -> None:
        if not tracemalloc.is_tracing():
            tracemalloc.start(self.frames)

    @staticmethod
    def _snapshot() -> tracemalloc.Snapshot:
        return tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, name) for name in _IGNORED])

    def mark(self) -> None:
        """The baseline: allocations alive now are not growth."""
        self._baseline = self._snapshot()
        self._baseline_mb = tracemalloc.get_traced_memory()[0] / 1e6

    @property
    def marked(self) -> bool:
        return self._baseline is not None

    def report(self, top: int) -> dict:
        """{"traced_mb_first_last": [a, b], "sites": [{"mb", "count", "traceback": [file:line, ...]}]},
        the `top` sites whose live allocations grew most since mark(), innermost frame first."""
        if self._baseline is None:
            raise RuntimeError("HeapGrowth.report() before mark(): the soak ended inside its warm-up; "
                               "run longer than --warmup")
        now = self._snapshot()
        diffs = sorted(now.compare_to(self._baseline, "traceback"), key=lambda d: d.size_diff, reverse=True)
        sites = [{"mb": round(d.size_diff / 1e6, 3), "count": d.count_diff,
                  "traceback": [f"{f.filename}:{f.lineno}" for f in reversed(d.traceback)]}
                 for d in diffs[:top] if d.size_diff > 0]
        return {"traced_mb_first_last": [round(self._baseline_mb, 1),
                                         round(tracemalloc.get_traced_memory()[0] / 1e6, 1)],
                "sites": sites}

    def stop(self) -> None:
        tracemalloc.stop()
