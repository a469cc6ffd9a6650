"""The controller: the only writer to the arm, in idle, policy or teleop mode.

Threads. The control thread ticks at control_hz: it reads the cameras and the arm, sends at
most one command through the SafeArm, runs SafeArm's watchdog and reports a TickRecord to the
tick listeners. The policy link (app/control/policy_link.py) talks to the server on its own
request thread, so a slow or dead server never stalls a tick; its callbacks (LinkEvents) put
chunks into the action queue (app/control/action_queue.py) and report to the chunk listeners.
Operator commands come from any thread. One lock guards the mode and the queue.

Policy mode: each tick pops one action of the queue; when `request_threshold` or fewer actions
are left, the current observation (images, measured state, instruction) goes to the link while
the queue keeps executing (receding horizon; the queue's docstring has the selection, skip and
merge rules). An instruction change takes effect from the next request.

Invariants.
- STOP and PAUSE (and every mode change) empty the queue, drop the request not sent yet and make
  a reply in flight stale (the queue's epoch), and wake the control thread, which holds the
  measured position at once, well within one tick.
- STOP latches (`status().stopped`): only an explicit start_teleop() or start_policy() clears
  it, so a jog stream still arriving from a held key or stick cannot undo it
  (start_teleop(explicit=False) refuses while latched).
- No watchdog of its own: when no policy action comes (queue empty, server slow or gone) no
  command goes out, and SafeArm holds the measured position SafetyConfig.watchdog_s after the
  last command: start() starts SafeArm's own deadline thread (wall clock, independent of the
  ticks, so the hold is not late by up to a tick); step() on a simulated clock relies on
  SafeArm.tick, checked every tick. A second, longer timer here could never fire first.
- Teleop is dead-man: each command is valid teleop_valid_s.
Link outages: once a rollout has had a chunk, the time the queue has been empty counts as an
outage while the link says the server is unreachable (a slow server is not an outage), or when a
chunk's network time (round trip minus the server's own time) exceeds the limit. An outage of
up to `resume_after_outage_s` is ridden out: the arm holds (watchdog) and the rollout resumes by
itself when chunks come again. After a longer one the controller enters IDLE and says so; only
an explicit start_policy() resumes, so an arm never starts moving by itself after a long silence.
Rollouts end: on success (the task's check, `stop_on_success`) or when the time limit
(`set_time_limit`, e.g. the sim task's) passes without it: IDLE, holding, and the notice says so in
plain words; `status().outcome` is "succeeded" or "timed out" until the next start_policy().
Clocks: start() runs the control thread on the wall clock; an evaluation with a simulated clock
never starts it and calls step(now) once per tick instead (same tick, same rules).
Failures: an arm error in a tick (or in a hold) is caught, the thread keeps ticking; after
`max_arm_errors` failing ticks in a row the controller enters IDLE and says why. A chunk with
NaN/inf, or a server that no longer fits this robot, ends the rollout (IDLE, last_error).
This module imports no torch.
"""
from __future__ import annotations

import copy
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np

from app.control.action_queue import DEFAULT_MERGE, MERGE_RULES, ActionQueue
from app.control.policy_link import ChunkRequest, PolicyLink, ZmqPolicyLink
from app.control.records import ChunkRecord, ControllerStatus, Mode, TickRecord
from app.control.teleop import DeadManTeleop
from hardware.arm import ArmError
from hardware.camera import Camera, CameraError
from hardware.leader_follow import LeaderFollower
from hardware.safety import SafeArm, UnsafeCommandError
from policy.wire.client import PolicyClient, check_robot
from policy.wire.types import ActionChunk, Observation

__all__ = ["Controller", "ControllerConfig", "Mode", "StoppedError", "TickRecord", "ChunkRecord",
           "ControllerStatus"]

log = logging.getLogger("app.control.controller")


@dataclass
class ControllerConfig:
    control_hz: float = 10.0
    request_threshold: int = 6           # request the next chunk when this many actions remain
    actions_per_chunk: int = 16          # execute n of each chunk's H actions, evenly spaced
    merge: str = DEFAULT_MERGE           # replace / blend / rtc (app/control/action_queue.py)
    stop_on_success: bool = True         # leave policy mode when the success check says done
    teleop_valid_s: float = 0.2          # a teleop command moves the arm for this long only
    retry_s: float = 0.5                 # wait after a failed policy request
    ping_interval_s: float = 1.0         # keep server_connected fresh while no request runs
    history: int = 200                   # latencies kept for display
    max_arm_errors: int = 3              # failing ticks in a row before leaving policy/teleop for IDLE
    resume_after_outage_s: float | None = 1.0   # see "Link outages" above; None: always resume by itself

    def __post_init__(self):
        if self.merge not in MERGE_RULES:
            raise ValueError(f"ControllerConfig.merge is {self.merge!r}; use one of {', '.join(MERGE_RULES)}")
        if self.control_hz <= 0:
            raise ValueError("ControllerConfig.control_hz must be positive")
        if not 0 <= self.request_threshold < self.actions_per_chunk:
            raise ValueError(f"request_threshold ({self.request_threshold}) must be below actions_per_chunk "
                             f"({self.actions_per_chunk}), or the queue never runs low enough to request")


class StoppedError(RuntimeError):
    """STOP is latched: only the Teleop mode or Start policy buttons resume motion."""


class Controller:
    def __init__(self, arm: SafeArm, cameras: dict[str, Camera], policy: PolicyClient | PolicyLink | None,
                 config: ControllerConfig | None = None):
        """policy: a PolicyClient (driven through a ZmqPolicyLink), any other PolicyLink, or None
        (teleop only)."""
        self.arm = arm
        self.cameras = cameras
        self.policy = policy
        self.config = config or ControllerConfig()
        self.spec = arm.spec
        if arm.config.watchdog_s <= 1.0 / self.config.control_hz:
            raise ValueError(f"SafetyConfig.watchdog_s ({arm.config.watchdog_s} s) must exceed the control period "
                             f"({1 / self.config.control_hz:.3f} s), or the arm holds between every two commands")
        if policy is None or isinstance(policy, PolicyLink):
            self.link: PolicyLink | None = policy
        else:
            self.link = ZmqPolicyLink(policy, self.spec.action_dim, cameras.keys(), retry_s=self.config.retry_s,
                                      ping_interval_s=self.config.ping_interval_s)
        self._lock = threading.RLock()
        self._wake = threading.Event()                # STOP/PAUSE: hold now, not at the next tick
        self._closed = False
        self._thread: threading.Thread | None = None
        self._tick_listeners: list[Callable[[TickRecord], None]] = []
        self._chunk_listeners: list[Callable[[ChunkRecord], None]] = []
        self._success_check: Callable[[], bool] | None = None
        self._time_limit_s: float | None = None
        # state below is guarded by _lock
        self._mode = Mode.IDLE
        self._paused = False
        self._stopped = False                         # STOP latch, see the module docstring
        self._arm_errors = 0                          # failing ticks in a row
        self._instruction = ""
        self._hold_now = True
        self._queue = ActionQueue(self.config.actions_per_chunk, self.config.merge)
        self._teleop = DeadManTeleop(self.spec, self.config.teleop_valid_s)
        self._leader: LeaderFollower | None = None     # teleop by a leader arm (start_leader_follow)
        self._target = np.asarray(arm.read_state().position, dtype=np.float32)
        self._tick = 0
        self._tick_hz = 0.0
        self._chunk_count = 0
        self._last_chunk_id: int | None = None
        self._latency: deque[float] = deque(maxlen=self.config.history)
        self._stage_ms: dict[str, float] = {}
        self._last_error = ""
        self._notice = ""
        self._camera_error = ""
        self._starved_since: float | None = None      # policy mode: when the queue ran empty
        self._rollout_has_chunk = False               # outages count once the link worked in this rollout
        self._policy_since: float | None = None       # the first policy tick of this rollout
        self._task_done: bool | None = None
        self._outcome = ""

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("Controller.start() was called twice")
        self._thread = threading.Thread(target=self._control_loop, name="control", daemon=True)
        self.arm.start_watchdog()         # the wall clock drives the ticks: SafeArm's deadline thread too
        self._thread.start()
        if self.link is not None:
            self.link.start(self)

    def close(self) -> None:
        """Stop both threads; the arm is left holding. Does not close the arm, cameras or client."""
        self.stop()
        with self._lock:
            self._closed = True
        self._wake.set()
        if self.link is not None:
            self.link.close()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        try:
            self.arm.hold()
        except ArmError as e:             # the arm was disconnected first: it holds by itself then
            log.warning("could not hold the arm on close: %s", e)
        self.arm.stop_watchdog()

    # -- operator commands (any thread) ------------------------------------------------------------
    def set_instruction(self, text: str) -> None:
        """Takes effect at the next chunk request; the chunk in flight keeps its instruction."""
        with self._lock:
            self._instruction = str(text).strip()

    def start_policy(self) -> None:
        if self.link is None:
            raise RuntimeError("no policy server is configured: start the console with a policy address")
        with self._lock:
            if self.link.refusal is not None:
                raise self.link.refusal
            if self.link.metadata is not None:
                check_robot(self.link.metadata, self.spec.action_dim, self.cameras.keys())
            if not self._instruction:
                raise ValueError("type an instruction before starting the policy")
            self._enter(Mode.POLICY)
            self._stopped = False
            self._outcome = ""
            self._notice = "policy started"

    def pause(self) -> None:
        with self._lock:
            was_policy = self._mode == Mode.POLICY
            self._enter(Mode.IDLE)
            self._paused = was_policy
            self._notice = "paused: holding position"

    def stop(self) -> None:
        """Empty the queue and hold within one control tick, whatever the request thread is doing.
        Latches until start_teleop() or start_policy()."""
        with self._lock:
            self._enter(Mode.IDLE)
            self._stopped = True
            self._notice = "STOP: holding position"

    def start_teleop(self, explicit: bool = True) -> None:
        """explicit: the operator pressed Teleop mode (clears a STOP). explicit=False is an implied
        switch (a jog while idle): refused with StoppedError while STOP is latched."""
        with self._lock:
            if not explicit and self._stopped:
                raise StoppedError("STOPPED: press Teleop mode to jog again")
            self._enter(Mode.TELEOP)
            self._stopped = False
            self._notice = "teleop: the arm moves only while commands keep coming"

    def start_leader_follow(self, follower: LeaderFollower) -> None:
        """Teleop by a leader arm (hardware.leader_follow): refuses (LeaderError, LeaderNotAlignedError
        naming the joints that disagree) unless the leader is fresh and aligned with the arm; then each
        tick mirrors it through the SafeArm, and a stale leader holds. Clears STOP like start_teleop();
        any mode change, PAUSE or STOP ends it. Jog commands are ignored meanwhile."""
        if follower.arm is not self.arm:
            raise ValueError("the LeaderFollower must drive this controller's SafeArm")
        with self._lock:
            follower.start()
            self._enter(Mode.TELEOP)
            self._leader = follower
            self._stopped = False
            self._notice = "leader-follow: the arm mirrors the leader arm"

    def teleop_command(self, joint_velocity: np.ndarray | None = None, gripper: dict[int, float] | None = None,
                       target: np.ndarray | None = None) -> None:
        """Dead-man teleop (app/control/teleop.py): velocities (rad/s per joint), gripper openings
        {action dim: 0..1} or an absolute target; each command moves the arm for teleop_valid_s only.
        Outside teleop mode a command that asks for no motion (a key released) is ignored; others raise."""
        self._teleop.check(joint_velocity, gripper, target)
        with self._lock:
            if self._mode != Mode.TELEOP:
                if DeadManTeleop.asks_for_motion(joint_velocity, gripper, target):
                    raise RuntimeError("not in teleop mode: call start_teleop() first")
                return
            self._teleop.set(time.monotonic(), joint_velocity, gripper, target)

    def set_success_check(self, fn: Callable[[], bool] | None) -> None:
        """A task's success test (e.g. the sim's); policy mode stops when it returns True."""
        self._success_check = fn

    def set_time_limit(self, seconds: float | None) -> None:
        """A rollout that has not succeeded `seconds` after it started ends (IDLE, holding)."""
        if seconds is not None and seconds <= 0:
            raise ValueError(f"time limit must be positive, got {seconds}")
        self._time_limit_s = seconds

    def step(self, now: float) -> None:
        """One control tick at time `now` (seconds, any clock), for a caller that owns the clock
        (evaluation with a simulated clock); never together with start()'s thread."""
        if self._thread is not None:
            raise RuntimeError("step() drives a controller whose thread was not started; this one runs its own")
        try:
            self._run_tick(now, 1.0 / self.config.control_hz)
            self._arm_errors = 0
        except Exception as e:
            self._tick_failed(e)

    def add_tick_listener(self, fn: Callable[[TickRecord], None]) -> None:
        """fn runs on the control thread after every tick: keep it cheap (hand work to a queue)."""
        self._tick_listeners.append(fn)

    def add_chunk_listener(self, fn: Callable[[ChunkRecord], None]) -> None:
        """fn runs on the request thread for every chunk that entered the queue."""
        self._chunk_listeners.append(fn)

    def remove_chunk_listener(self, fn: Callable[[ChunkRecord], None]) -> None:
        self._chunk_listeners.remove(fn)

    def status(self) -> ControllerStatus:
        link = self.link
        with self._lock:
            return ControllerStatus(
                mode=self._mode, instruction=self._instruction, paused=self._paused, stopped=self._stopped,
                chunk_count=self._chunk_count, last_chunk_id=self._last_chunk_id, queue_length=len(self._queue),
                request_in_flight=link is not None and link.in_flight, latency_history=list(self._latency),
                stage_ms=dict(self._stage_ms), safety=copy.deepcopy(self.arm.events), holding=self.arm.holding,
                last_error=self._camera_error or (link.error if link else "") or self._last_error,
                notice=self._notice, server_connected=link is not None and link.connected,
                policy_metadata=link.metadata if link else None, tick=self._tick, tick_hz=self._tick_hz,
                task_done=self._task_done, outcome=self._outcome)

    # -- mode changes (under _lock) -----------------------------------------------------------------
    def _enter(self, mode: Mode) -> None:
        self._mode = mode
        self._paused = False
        self._queue.clear()               # a new epoch: replies to earlier requests are dropped
        if self.link is not None:
            self.link.cancel()
        self._teleop.clear()
        if self._leader is not None:
            self._leader.stop()
            self._leader = None
        self._starved_since = None
        self._rollout_has_chunk = False
        self._policy_since = None
        self._hold_now = True
        self._wake.set()

    # -- control thread --------------------------------------------------------------------------
    def _control_loop(self) -> None:
        period = 1.0 / self.config.control_hz
        next_tick = previous = time.monotonic()
        while not self._closed:
            started = time.monotonic()
            interval, previous = started - previous, started
            if interval > 0:
                self._tick_hz = 0.9 * self._tick_hz + 0.1 / interval if self._tick_hz else 1 / period
            try:
                self._run_tick(started, period)
                self._arm_errors = 0
            except Exception as e:  # keep ticking: a dead control loop would leave the watchdog alone
                self._tick_failed(e)
            next_tick += period
            now = time.monotonic()
            if next_tick < now:
                next_tick = now              # overran: start again from now rather than bursting
            while not self._closed and (remaining := next_tick - time.monotonic()) > 0:
                if self._wake.wait(remaining):
                    self._wake.clear()
                    try:
                        self._apply_hold()
                    except Exception as e:       # _hold_now stays set: the next tick tries again
                        self._tick_failed(e)

    def _tick_failed(self, error: Exception) -> None:
        """A tick (or a hold) raised: try to hold, count it, and leave policy/teleop if it persists."""
        log.error("control tick failed: %s: %s", type(error).__name__, error,
                  exc_info=not isinstance(error, ArmError))
        self._arm_errors += 1
        try:
            self.arm.hold()
        except Exception as e:                   # the arm cannot even hold now: the next tick retries
            log.warning("could not hold the arm after a failed tick: %s: %s", type(e).__name__, e)
        with self._lock:
            if self._arm_errors < self.config.max_arm_errors:
                self._last_error = f"control tick failed: {type(error).__name__}: {error}"
                return
            if self._mode != Mode.IDLE:
                self._enter(Mode.IDLE)
            self._last_error = (f"{self._arm_errors} control ticks in a row failed ({type(error).__name__}: "
                                f"{error}): stopped, trying to hold; check the arm's connection, then choose "
                                "a mode again")

    def _apply_hold(self) -> bool:
        with self._lock:
            if not self._hold_now:
                return False
            self._target = np.asarray(self.arm.hold(), dtype=np.float32)
            self._hold_now = False               # only once the hold went through
            return True

    def _run_tick(self, now: float, period: float) -> None:
        self._apply_hold()
        t0 = time.perf_counter()
        images, frame_age_ms = self._capture()
        capture_ms = (time.perf_counter() - t0) * 1000
        state = np.asarray(self.arm.read_state().position, dtype=np.float32)
        chunk_id, commanded = None, False
        t1 = time.perf_counter()
        with self._lock:
            mode, instruction = self._mode, self._instruction
            if mode == Mode.POLICY:
                chunk_id, commanded = self._policy_step(now, images, state, capture_ms + frame_age_ms)
            elif mode == Mode.TELEOP:
                commanded = self._teleop_step(now, state, period)
        execution_ms = (time.perf_counter() - t1) * 1000
        if self.arm.tick(now):                  # SafeArm's own watchdog (hardware side)
            self._target = state
        self._end_rollout_if_done(mode, now, period)
        with self._lock:
            self._stage_ms["execution"] = execution_ms
            self._stage_ms["tick"] = (time.perf_counter() - t0) * 1000
            self._tick += 1
        record = TickRecord(timestamp=now, tick=self._tick - 1, mode=mode, images=images, state=state,
                            action=self._target, commanded=commanded, chunk_id=chunk_id, instruction=instruction)
        for fn in self._tick_listeners:
            try:
                fn(record)
            except Exception:
                log.exception("tick listener %r failed", fn)

    def _end_rollout_if_done(self, mode: Mode, now: float, period: float) -> None:
        """After a tick: the task's check (shown live as task_done), then success and the time limit."""
        done = None
        if self._success_check is not None and (mode == Mode.POLICY or self._tick % 5 == 0):
            done = bool(self._success_check())          # idle: a few times a second is enough for the badge
            self._task_done = done
        if mode != Mode.POLICY:
            return
        with self._lock:
            if self._mode != Mode.POLICY:
                return
            if self._policy_since is None:
                self._policy_since = now
            if done and self.config.stop_on_success:
                self._enter(Mode.IDLE)
                self._outcome = "succeeded"
                self._notice = "task succeeded: stopped and holding"
            elif (self._time_limit_s is not None            # this tick's period counts: N ticks = N periods
                  and now + period - self._policy_since >= self._time_limit_s - 1e-9):
                self._enter(Mode.IDLE)
                self._outcome = "timed out"
                self._notice = (f"no success within the task's time limit ({self._time_limit_s:.0f} s): "
                                "stopped and holding; reset the scene or press Start policy to try again")
            else:
                return
        self._apply_hold()

    def _capture(self) -> tuple[dict[str, np.ndarray], float]:
        images, oldest, errors = {}, 0.0, []
        for name, camera in self.cameras.items():
            try:
                frame = camera.read_latest()
            except CameraError as e:
                errors.append(str(e))
                continue
            images[name] = frame.rgb
            oldest = max(oldest, frame.age_s * 1000)
        self._camera_error = "; ".join(errors)      # cleared as soon as every camera delivers again
        return images, oldest

    def _send(self, target: np.ndarray, now: float) -> bool:
        try:   # `now` is the tick's clock, so SafeArm's watchdog runs on it too (a simulated clock)
            self._target = np.asarray(self.arm.command(target, now=now), dtype=np.float32)
            return True
        except UnsafeCommandError as e:           # SafeArm already made the arm hold
            self._last_error = str(e)
            self._target = np.asarray(self.arm.read_state().position, dtype=np.float32)
            return False

    def _policy_step(self, now: float, images, state, capture_ms: float) -> tuple[int | None, bool]:
        chunk_id, commanded = None, False
        # The observation was taken before this tick's action went out, so that action counts as
        # executed since the observation: a chunk arriving 3 ticks later skips 3, not 2 (in
        # lockstep, action 0 of a chunk runs at the observation's own tick).
        executed_before_obs = self._queue.executed
        item = self._queue.pop()
        if item is not None:
            commanded = self._send(item.action, now)
            chunk_id = item.chunk_id
            self._starved_since = None
        elif self._starved_since is None:
            self._starved_since = now
        if self._outage_too_long(now, self.link.connected and not self.link.error):
            return chunk_id, commanded
        if len(self._queue) <= self.config.request_threshold and self.link.ready(now):
            metadata = self.link.metadata
            missing = [name for name in (metadata.camera_names if metadata else self.cameras) if name not in images]
            if not missing:
                obs = Observation(images=images, state=state, instruction=self._instruction,
                                  committed=self._committed_prefix(item))
                self.link.submit(ChunkRequest(obs, self._tick, executed_before_obs, self._queue.epoch, now,
                                              capture_ms))
        return chunk_id, commanded

    def _committed_prefix(self, popped) -> np.ndarray | None:
        """merge="rtc": what the arm executes from this observation's tick on while the server
        computes: this tick's action, then the queue's head for the ticks the recent latency
        covers (chunk index j runs at the observation's tick + j, so only when every action of a
        chunk runs: actions_per_chunk equal to the policy's horizon)."""
        metadata = self.link.metadata if self.link is not None else None
        if (self.config.merge != "rtc" or popped is None or metadata is None
                or self.config.actions_per_chunk != metadata.chunk_length):
            return None
        period_ms = 1000.0 / self.config.control_hz
        recent = list(self._latency)[-10:]
        ticks = int(np.ceil(np.median(recent) / period_ms)) if recent else 2
        head = self._queue.committed(min(ticks, metadata.chunk_length - 1))
        return np.vstack([np.asarray(popped.action, np.float32)[None], head.astype(np.float32)]) \
            if len(head) else np.asarray(popped.action, np.float32)[None]

    def _teleop_step(self, now: float, state: np.ndarray, period: float) -> bool:
        if self._leader is not None:
            result = self._leader.tick(now)
            if result.sent is not None:
                self._target = np.asarray(result.sent, dtype=np.float32)
            self._notice = result.message
            return result.commanded
        target = self._teleop.next_target(now, state, period)
        if target is None:
            if self._teleop.released():        # the dead-man let go: hold where the arm is, once
                self._target = np.asarray(self.arm.hold(), dtype=np.float32)
            return False
        ok = self._send(target, now)
        self._teleop.sent(self._target if ok else None)
        return ok

    def _outage_too_long(self, now: float, link_up: bool, network_s: float = 0.0) -> bool:
        """Under _lock in policy mode: end the rollout if the link has been out longer than allowed."""
        limit = self.config.resume_after_outage_s
        if limit is None or not self._rollout_has_chunk or self._starved_since is None:
            return False
        outage = now - self._starved_since
        if outage <= limit or (link_up and network_s <= limit):
            return False
        self._enter(Mode.IDLE)
        self._notice = (f"the policy server was unreachable for {outage:.1f} s, longer than resume_after_outage_s "
                        f"({limit:g} s): holding; press Start policy to resume")
        return True

    # -- LinkEvents: called by the policy link on its request thread ------------------------------
    def link_connected(self) -> None:
        with self._lock:
            self._last_error = ""

    def link_refused(self, error: Exception) -> None:
        """This server cannot drive this robot (any more): end the rollout and say why."""
        with self._lock:
            if self._mode == Mode.POLICY:
                self._enter(Mode.IDLE)
            self._last_error = str(error)

    def request_failed(self, request: ChunkRequest | None, message: str, end_rollout: bool) -> None:
        with self._lock:
            if (end_rollout and request is not None and request.epoch == self._queue.epoch
                    and self._mode == Mode.POLICY):
                self._enter(Mode.IDLE)
            self._last_error = message

    def chunk_arrived(self, request: ChunkRequest, chunk: ActionChunk, arrived: float) -> bool:
        """Merge a reply into the queue unless STOP/PAUSE/a mode change made it stale."""
        with self._lock:
            if self._mode != Mode.POLICY or (request.epoch == self._queue.epoch and self._outage_too_long(
                    arrived, True, chunk.timings_ms.get("network", 0.0) / 1000)):
                return False
            skipped = self._queue.add_chunk(chunk.actions, chunk.chunk_id,
                                            executed_since=self._queue.executed - request.executed,
                                            epoch=request.epoch)
            if skipped is None:
                return False
            self._chunk_count += 1
            self._rollout_has_chunk = True
            self._last_chunk_id = chunk.chunk_id
            latency_ms = (arrived - request.taken_at) * 1000
            self._latency.append(latency_ms)
            t = chunk.timings_ms
            self._stage_ms.update(capture=request.capture_ms, serialise=t.get("resize", 0) + t.get("serialise", 0),
                                  network=t.get("network", 0.0), queue=t.get("queue", 0.0),
                                  inference=t.get("inference", 0.0), total=latency_ms)
            self._last_error = ""
            instruction = request.obs.instruction
        record = ChunkRecord(chunk.chunk_id, chunk.actions, request.tick, latency_ms, dict(chunk.timings_ms),
                             instruction, skipped)
        for fn in self._chunk_listeners:
            try:
                fn(record)
            except Exception:
                log.exception("chunk listener %r failed", fn)
        return True
