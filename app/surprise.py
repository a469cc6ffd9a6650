"""Imagination surprise, live: per chunk, what the policy imagined vs what the cameras then saw.

The controller reports each chunk (its observation tick) and each tick (its camera frames).
policy.wire.surprise.ImaginedFrames keeps the frames at a chunk's imagined steps; once they
are all in (16 ticks after the observation), this module's own thread sends them to the
server (PolicyClient.surprise: its own socket, queued behind any infer on the server) and
keeps the answer: a sparkline of recent chunks and a state in plain words (on track /
surprised / lost). Listeners (the rollout recorder) get (chunk_id, surprise, state).

Auto-hold (off by default): when `chunks` chunks in a row come back at or above `threshold`
(default: the server's "lost" threshold), PAUSE is pressed at once, from the thread that got
the answer (the controller holds within one tick), and `hold_reason` says why.
Nothing here runs on the control thread but a dictionary update and one copy of the tick's
frames (kept for the last few ticks, for chunks that arrive after their first imagined step).
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from policy.wire.surprise import ImaginedFrames, SeenFrames

log = logging.getLogger(__name__)

SurpriseListener = Callable[[int, float, str], None]


@dataclass
class AutoHoldConfig:
    enabled: bool = False
    chunks: int = 2                      # K chunks in a row at or above the threshold
    threshold: float | None = None       # None: the server's "lost" threshold


class SurpriseMonitor:
    def __init__(self, client, metadata, pause: Callable[[], None] | None = None,
                 auto_hold: AutoHoldConfig | None = None, history: int = 60):
        self._client = client
        self._frames = ImaginedFrames.for_policy(metadata)
        self._pause = pause
        self.auto_hold = auto_hold or AutoHoldConfig()
        self._lock = threading.Lock()
        self._ready: deque[SeenFrames] = deque(maxlen=2)   # if answers fall behind, old chunks are skipped
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._history: deque[tuple[int, float, str]] = deque(maxlen=history)
        self._listeners: list[SurpriseListener] = []
        self._run_length = 0
        self._asking = False                 # the thread holds a chunk it has not had answered yet
        self.thresholds: dict[str, float] = {}
        self.hold_reason: str = ""
        self.held_at: float | None = None    # time.monotonic() of the auto-hold
        self.last_error: str | None = None
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return self._frames is not None

    def start(self) -> None:
        if self.enabled:
            self._thread = threading.Thread(target=self._run, name="surprise", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def add_listener(self, fn: SurpriseListener) -> None:
        self._listeners.append(fn)

    def reset(self) -> None:
        """A new rollout (START): forget the streak, the previous hold's reason and the frames
        kept for chunks (a caller whose controller restarts its tick count needs that)."""
        self._forget_streak()
        with self._lock:
            if self._frames is not None:
                self._frames.clear()

    def _forget_streak(self) -> None:
        with self._lock:
            self._run_length, self.hold_reason, self.held_at = 0, "", None

    def wait_idle(self, timeout_s: float = 30.0) -> bool:
        """Block until every completed chunk has had its answer (an evaluation on a simulated
        clock waits here, as it waits for infer); False if still busy after timeout_s."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if not self._ready and not self._asking:
                    return True
            time.sleep(0.002)
        return False

    # -- controller listeners (cheap) ------------------------------------------------------
    def on_chunk(self, record) -> None:
        """Request thread. A chunk entering the queue after an auto-hold means the operator
        started again (PAUSE drops replies in flight): the streak starts afresh."""
        if self.held_at is not None:
            self._forget_streak()
            with self._lock:
                self._ready.clear()         # chunks from before the hold
        if self._frames is not None:
            with self._lock:
                self._frames.open(int(record.chunk_id), int(record.start_tick))

    def on_tick(self, record) -> None:
        if self._frames is None:
            return
        with self._lock:
            done = self._frames.add(int(record.tick), record.images)
            if done:
                self._ready.extend(done)
        if done:
            self._wake.set()

    # -- the page ------------------------------------------------------------------------------
    def snapshot(self, last: int = 30) -> dict:
        with self._lock:
            history = list(self._history)[-last:]
        latest = history[-1] if history else None
        return {"chunk_ids": [h[0] for h in history], "values": [round(h[1], 4) for h in history],
                "latest": None if latest is None else round(latest[1], 4),
                "state": latest[2] if latest else "waiting", "thresholds": dict(self.thresholds),
                "hold_reason": self.hold_reason, "auto_hold": self.auto_hold.enabled, "error": self.last_error}

    # -- the surprise thread -------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            while not self._stop.is_set():
                with self._lock:
                    seen = self._ready.popleft() if self._ready else None
                    self._asking = seen is not None
                if seen is None:
                    break
                try:
                    self._ask(seen)
                finally:
                    with self._lock:
                        self._asking = False

    def _ask(self, seen: SeenFrames) -> None:
        try:
            reply = self._client.surprise(seen.chunk_id, seen.steps, seen.frames)
        except Exception as exc:        # unknown chunk (server restarted), timeout: say so, keep going
            self.last_error = f"surprise unavailable: {exc}"
            log.debug("surprise of chunk %d failed: %s", seen.chunk_id, exc)
            return
        self.last_error = None
        value, state = float(reply["surprise"]), str(reply.get("state", ""))
        self.thresholds = {k: float(v) for k, v in dict(reply.get("thresholds", {})).items()}
        with self._lock:
            self._history.append((seen.chunk_id, value, state))
        for listener in self._listeners:
            try:
                listener(seen.chunk_id, value, state)
            except Exception:
                log.exception("surprise listener failed")
        self._check_hold(seen.chunk_id, value)

    def _check_hold(self, chunk_id: int, value: float) -> None:
        cfg = self.auto_hold
        threshold = cfg.threshold if cfg.threshold is not None else self.thresholds.get("lost", float("inf"))
        with self._lock:
            self._run_length = self._run_length + 1 if value >= threshold else 0
            trigger = cfg.enabled and self._pause is not None and self._run_length >= cfg.chunks and not self.hold_reason
            if trigger:
                self.hold_reason = (f"auto-hold: the policy looks lost - {self._run_length} chunks in a row saw "
                                    f"something other than it imagined (surprise {value:.2f} >= {threshold:.2f}, "
                                    f"chunk {chunk_id}). Check the scene, then START again")
        if trigger:
            self.held_at = time.monotonic()
            self._pause()
            log.warning(self.hold_reason)
