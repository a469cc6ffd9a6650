"""The safety layer: the only path from a command to an Arm.

Chain (in order): shape / NaN check -> clip to joint limits (with a margin; counted as clipped
when beyond limit_tolerance) -> cap the per-tick change -> send. A watchdog holds the measured
position when no fresh command arrives in time. Holding never releases torque: a gravity-loaded arm must not drop.

Watchdog, two ways, same rule (hold once `watchdog_s` has passed since the last command):
- `tick(now)`, called by whoever drives the arm (the controller, every control tick; on a
  simulated clock this is the only way, and it is exact on that clock);
- `start_watchdog()`: a thread of SafeArm's own enforces the deadline on the wall clock
  (time.monotonic), independently of the caller's ticks, so a hold comes watchdog_s after the
  last command plus the thread's wake-up latency (~1 ms), not at the next tick (up to a control
  period later), and comes even when the command source stalls or dies. Start it only when
  commands carry monotonic times (`now=None` or time.monotonic()). Controller.start() does.
Threads: one lock (`_lock`, also the watchdog thread's condition) serialises every command,
hold and watchdog check, so the Arm never sees two calls at once.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from hardware.arm import Arm, ArmError, ArmState


class UnsafeCommandError(ValueError):
    """A command was refused (wrong shape, NaN/inf); the arm was told to hold instead."""


@dataclass
class SafetyConfig:
    limit_margin: float = 0.0          # shrink the joint range by this much on each side
    # Clamped like any command, but not counted as clipped: a policy holding a gripper fully open
    # samples 1.006 for a limit of 1.0 (measured live: every "clipped" command of the sim-tiny
    # rollouts was a gripper 0.006 median, 0.026 at most, past its range), and a counter that
    # ticks for rounding hides the commands that really went past a limit.
    limit_tolerance: float = 0.03
    max_step: tuple[float, ...] | None = None  # per-tick change cap; default: the RobotSpec's
    watchdog_s: float = 0.2            # hold if no command for this long
    dry_run: bool = False              # check commands but never send them


@dataclass
class SafetyEvents:
    """Counters shown in the console's status panel."""
    rejected: int = 0
    clipped: int = 0
    rate_limited: int = 0
    watchdog_holds: int = 0
    last_error: str = ""
    # (time of the last command, time of the hold), time.monotonic() (or the caller's clock), of
    # the latest watchdog hold: how late the hold came is measured, not assumed.
    last_watchdog_hold: tuple[float, float] | None = None
    log: list[str] = field(default_factory=list)

    def note(self, message: str) -> None:
        self.last_error = message
        self.log.append(f"{time.strftime('%H:%M:%S')} {message}")
        del self.log[:-50]


class SafeArm:
    """Wraps an Arm; every command passes `command()`, and `tick()` runs the watchdog."""

    def __init__(self, arm: Arm, config: SafetyConfig | None = None):
        self.arm = arm
        self.config = config or SafetyConfig()
        spec = arm.spec
        m = self.config.limit_margin
        self.lower = np.asarray(spec.lower, dtype=np.float64) + m
        self.upper = np.asarray(spec.upper, dtype=np.float64) - m
        if np.any(self.lower > self.upper):
            raise ValueError(f"limit_margin {m} leaves no joint range for robot '{spec.name}'")
        if not self.config.limit_tolerance >= 0:
            raise ValueError(f"limit_tolerance {self.config.limit_tolerance} must be >= 0 (0: count every clip)")
        step = self.config.max_step if self.config.max_step is not None else spec.max_step
        self.max_step = None if step is None else np.asarray(step, dtype=np.float64)
        if self.max_step is not None and self.max_step.shape != (spec.action_dim,):
            raise ValueError(f"SafetyConfig.max_step has {self.max_step.size} entries, robot '{spec.name}' "
                             f"has {spec.action_dim} joints: give one cap per joint")
        self.events = SafetyEvents()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)   # the watchdog thread waits on it
        self._watchdog: threading.Thread | None = None
        self._watchdog_stop = False
        self._last_sent: np.ndarray | None = None
        self._last_command_time = -np.inf
        self._holding = True

    @property
    def spec(self):
        return self.arm.spec

    @property
    def holding(self) -> bool:
        """True while the watchdog or a refusal has the arm holding its measured position."""
        return self._holding

    def read_state(self) -> ArmState:
        return self.arm.read_state()

    def command(self, target, now: float | None = None) -> np.ndarray:
        """Check, clip and rate-limit a target, send it, and return what was sent."""
        now = time.monotonic() if now is None else now
        with self._lock:
            try:
                target = np.asarray(target, dtype=np.float64)
            except (TypeError, ValueError):
                self._refuse(f"command {target!r:.80} is not numeric")
            n = self.spec.action_dim
            if target.shape != (n,):
                self._refuse(f"command has shape {target.shape}, robot '{self.spec.name}' needs ({n},)")
            if not np.all(np.isfinite(target)):
                bad = [self.spec.joint_names[i] for i in np.flatnonzero(~np.isfinite(target))]
                self._refuse(f"command contains NaN/inf for {', '.join(bad)}")
            clipped = np.clip(target, self.lower, self.upper)
            if np.any(np.abs(clipped - target) > self.config.limit_tolerance):
                self.events.clipped += 1
            reference = self._reference()
            if self.max_step is not None:
                limited = np.clip(clipped, reference - self.max_step, reference + self.max_step)
                if not np.array_equal(limited, clipped):
                    self.events.rate_limited += 1
                clipped = limited
            if not np.all(np.isfinite(clipped)):   # a NaN reference would pass np.clip
                self._refuse("the rate-limited command is not finite (bad measured position?)")
            self._send(clipped)
            self._last_command_time = now
            if self._holding:
                self._wake.notify_all()      # the watchdog thread waits without a deadline while holding
            self._holding = False
            return clipped

    def hold(self) -> np.ndarray:
        """Hold the measured position now (STOP, watchdog, refusals)."""
        with self._lock:
            return self._hold_locked()

    def rebase(self) -> None:
        """The arm was moved outside this chain (a sim scene reset, a homing routine): forget the
        last command, so the next hold holds the measured pose, grippers included. Without this a
        hold after a reset would close an opened gripper again to the previous episode's grip."""
        with self._lock:
            self._last_sent = None
            self._holding = True

    def tick(self, now: float | None = None) -> bool:
        """Run the watchdog; returns True if it made the arm hold on this call."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if self._holding or now - self._last_command_time <= self.config.watchdog_s:
                return False
            self._watchdog_hold_locked(now)
            return True

    def start_watchdog(self) -> None:
        """Enforce watchdog_s from a thread of SafeArm's own, on time.monotonic() (module
        docstring). Idempotent; an infinite watchdog_s starts nothing."""
        if not np.isfinite(self.config.watchdog_s):
            return
        with self._lock:
            if self._watchdog is not None:
                return
            self._watchdog_stop = False
            self._watchdog = threading.Thread(target=self._watchdog_loop, name="safearm-watchdog", daemon=True)
            self._watchdog.start()

    def stop_watchdog(self) -> None:
        """End the watchdog thread (the arm keeps whatever it was last told: call hold() first)."""
        with self._lock:
            thread, self._watchdog = self._watchdog, None
            self._watchdog_stop = True
            self._wake.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    # -- internals -------------------------------------------------------------------------
    def _watchdog_hold_locked(self, now: float) -> None:
        self.events.watchdog_holds += 1
        self.events.last_watchdog_hold = (self._last_command_time, now)
        self.events.note(f"watchdog: no command for {self.config.watchdog_s * 1000:.0f} ms, holding")
        self._hold_locked()

    def _watchdog_loop(self) -> None:
        with self._lock:
            while not self._watchdog_stop:
                if self._holding:
                    self._wake.wait()                      # until a command moves the arm again
                    continue
                remaining = self._last_command_time + self.config.watchdog_s - time.monotonic()
                if remaining > 0:
                    self._wake.wait(remaining)             # a command meanwhile moves the deadline on
                    continue
                try:
                    self._watchdog_hold_locked(time.monotonic())
                except Exception as e:  # noqa: BLE001 - keep guarding; _hold_locked re-sent the last target
                    self.events.note(f"watchdog: could not hold ({type(e).__name__}: {e}); retrying")
                    self._wake.wait(self.config.watchdog_s)   # retry, without spinning on a dead arm

    def _reference(self) -> np.ndarray:
        # Rate-limit against what we last sent; after a hold, against the measured position,
        # so that the first command after a hold cannot jump.
        if self._last_sent is None or self._holding:
            return self._measured()
        return self._last_sent

    def _measured(self) -> np.ndarray:
        """The measured position, refusing a reading that cannot be a pose (encoder fault, bad frame)."""
        position = np.asarray(self.arm.read_state().position, dtype=np.float64)
        if position.shape != (self.spec.action_dim,) or not np.all(np.isfinite(position)):
            raise ArmError(f"robot '{self.spec.name}' reported an invalid position {position!r:.120}; "
                           "check the arm's encoders and connection")
        return position

    def _send(self, target: np.ndarray) -> None:
        self._last_sent = target.copy()
        if not self.config.dry_run:
            self.arm.command(target.astype(np.float32))

    def _hold_locked(self) -> np.ndarray:
        try:
            position = self._measured()
        except ArmError:
            # Without a trustworthy reading, keep the last target we sent: the arm stays where
            # it was told to be, which is the closest thing to holding we can do.
            self._holding = True
            if self._last_sent is not None and not self.config.dry_run:
                self.arm.command(self._last_sent.astype(np.float32))
            raise
        grippers = list(self.spec.gripper_indices)
        if grippers and self._last_sent is not None:
            # Grippers keep their last commanded opening: a gripper squeezing an object measures
            # the object's width, and "holding" that would release the grip and drop the object.
            position[grippers] = self._last_sent[grippers]
        self._send(position)
        self._holding = True
        return position

    def _refuse(self, message: str) -> None:
        self.events.rejected += 1
        self.events.note(f"refused: {message}; holding")
        self._hold_locked()
        raise UnsafeCommandError(f"{message}. The arm is holding its position; fix the command source.")
