"""One operator at a time: the browser tab that holds control may command the robot.

Every other tab watches (live feeds, status) until it presses "Take control". A tab that
commands while nobody holds control (or while the holder's tab has gone quiet) takes
control by itself, so a single operator never has to think about the lock. STOP is not
subject to the lock: anyone watching may stop the robot.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass


class NotOperatorError(RuntimeError):
    """A watching tab tried to command the robot."""


@dataclass
class OperatorLockConfig:
    idle_timeout_s: float = 15.0     # the holder's tab counts as gone after this long without a sign of life


class OperatorLock:
    def __init__(self, config: OperatorLockConfig | None = None):
        self.config = config or OperatorLockConfig()
        self._lock = threading.Lock()
        self._holder: str | None = None
        self._seen: dict[str, float] = {}

    def seen(self, tab: str, now: float | None = None) -> None:
        """A sign of life from a tab (its status poll)."""
        if tab:
            with self._lock:
                self._seen[tab] = time.monotonic() if now is None else now
                if len(self._seen) > 1000:       # forget long-closed tabs
                    cutoff = (time.monotonic() if now is None else now) - 10 * self.config.idle_timeout_s
                    self._seen = {k: t for k, t in self._seen.items() if t > cutoff or k == self._holder}

    def holder(self, now: float | None = None) -> str | None:
        with self._lock:
            return self._live_holder(time.monotonic() if now is None else now)

    def take(self, tab: str, now: float | None = None) -> None:
        """Take control (from whoever had it)."""
        if not tab:
            raise NotOperatorError("this page has no session yet; reload the page")
        with self._lock:
            self._holder = tab
            self._seen[tab] = time.monotonic() if now is None else now

    def release(self, tab: str) -> None:
        with self._lock:
            if self._holder == tab:
                self._holder = None

    def is_operator(self, tab: str, now: float | None = None) -> bool:
        with self._lock:
            return bool(tab) and self._live_holder(time.monotonic() if now is None else now) == tab

    def require(self, tab: str, now: float | None = None) -> None:
        """Raise NotOperatorError unless `tab` holds control; claims it if nobody does."""
        now = time.monotonic() if now is None else now
        with self._lock:
            holder = self._live_holder(now)
            if holder is None and tab:
                self._holder = tab
                self._seen[tab] = now
                return
            if holder != tab:
                raise NotOperatorError(
                    "another browser tab is operating the robot; this tab is watching. "
                    "Press \"Take control\" to operate from here (STOP works from any tab).")
            self._seen[tab] = now

    def _live_holder(self, now: float) -> str | None:
        if self._holder is not None and now - self._seen.get(self._holder, -1e9) > self.config.idle_timeout_s:
            self._holder = None
        return self._holder
