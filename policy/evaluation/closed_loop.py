"""Closed-loop episodes through the console's own control core (app/control), on two clocks.

The console runs a rollout as: the Controller ticks at the control rate, pops one action of its
ActionQueue per tick through SafeArm, and when the queue runs low hands an observation to its
PolicyLink, which asks the server while the queue keeps executing; the chunk that comes back
skips what already ran and is merged into the queue. An evaluation number is an operator's
number only if it runs exactly that, so both clocks here drive a real Controller:

- real (`run_real_episode`): wall-clock. The SimRobot steps physics and renders its cameras in
  its own threads, the Controller's thread ticks at 10 Hz, the ZmqPolicyLink's thread talks to a
  real server child. Exactly the console's path; the headline number.
- sim (`run_sim_clock_episode`): the world advances only when this loop steps it, one control
  tick at a time. The Controller is ticked with step(now) on a simulated clock, and SimClockLink
  answers a request with the server's real chunk (computed while the world waits) but hands it
  to the Controller only after as many ticks as a latency drawn from LatencyModel covers. Stale
  observations, skipped actions and merges happen as live, deterministically per seed, and
  faster than real time when the server is faster than the latency modelled.

`policy.evaluation.rollout.run_episode` (--clock lockstep) is the model-only number: the world
waits for every chunk and the first actions of each chunk run; it is labelled as such.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from app.control.controller import Controller, ControllerConfig, Mode
from app.control.episode import run_rollout, task_time_limit_s
from app.control.policy_link import ChunkRequest, LinkEvents, PolicyLink
from hardware.camera import Camera, CameraConfig, Frame
from hardware.safety import SafeArm, SafetyConfig
from hardware.sim.env import CAMERA_NAMES, SimConfig, SimEnv
from policy.evaluation.rollout import EnvArm, EpisodeOutcome, ObjectLift
from policy.wire.client import PolicyClient, check_robot
from policy.wire.types import ActionChunk, Observation, PolicyMetadata


@dataclass
class LatencyModel:
    """Observation -> chunk latency as a log-normal with the given median and 95th percentile
    (a measured run's p50/p95, e.g. from app.tools.bench_live); p95 None: always p50."""
    p50_ms: float
    p95_ms: float | None = None

    def __post_init__(self):
        if self.p50_ms <= 0 or (self.p95_ms is not None and self.p95_ms < self.p50_ms):
            raise ValueError(f"latency p50={self.p50_ms} p95={self.p95_ms} ms: need 0 < p50 <= p95")

    @classmethod
    def parse(cls, text: str) -> "LatencyModel":
        """"200" or "200,350" (ms)."""
        parts = [float(p) for p in str(text).split(",") if p.strip()]
        if not 1 <= len(parts) <= 2:
            raise ValueError(f"--latency-ms {text!r}: give P50 or P50,P95 in milliseconds, e.g. 200,350")
        return cls(*parts)

    def draw(self, rng: np.random.Generator) -> float:
        if self.p95_ms is None or self.p95_ms == self.p50_ms:
            return self.p50_ms
        sigma = math.log(self.p95_ms / self.p50_ms) / 1.6449    # z of the 95th percentile
        return float(self.p50_ms * math.exp(sigma * rng.standard_normal()))


class SimClockLink(PolicyLink):
    """A PolicyLink for a simulated clock: no thread. submit() computes the chunk with the real
    server at once (the simulated world is not stepped meanwhile) and advance(now) delivers it to
    the controller once `now` has passed the request's time plus a drawn latency."""

    def __init__(self, client: PolicyClient, latency: LatencyModel, seed: int = 0):
        self.client = client
        self.latency = latency
        self.rng = np.random.default_rng(seed)
        self._events: LinkEvents | None = None
        self._metadata: PolicyMetadata | None = None
        self._pending: tuple[float, ChunkRequest, ActionChunk] | None = None
        self.latencies_ms: list[float] = []
        self.server_ms: list[float] = []

    def start(self, events: LinkEvents) -> None:
        self._events = events
        self._metadata = self.client.hello()
        events.link_connected()

    def ready(self, now: float) -> bool:
        return self._pending is None

    def submit(self, request: ChunkRequest) -> None:
        chunk = self.client.infer(request.obs)
        if not np.all(np.isfinite(chunk.actions)):
            self._events.request_failed(request, "the policy returned NaN/inf actions", True)
            return
        latency_ms = self.latency.draw(self.rng)
        self.latencies_ms.append(latency_ms)
        self.server_ms.append(float(chunk.timings_ms.get("inference", np.nan)))
        self._pending = (request.taken_at + latency_ms / 1000, request, chunk)

    def advance(self, now: float) -> None:
        """Before the tick at `now`: a reply that is due arrives (as the request thread would)."""
        if self._pending is not None and now >= self._pending[0] - 1e-9:   # ticks are float multiples
            due, request, chunk = self._pending
            self._pending = None
            self._events.chunk_arrived(request, chunk, now)

    def cancel(self) -> None:
        pass                         # a reply in flight still arrives; the controller drops it by epoch

    def close(self) -> None:
        self._pending = None

    @property
    def metadata(self) -> PolicyMetadata | None:
        return self._metadata

    @property
    def refusal(self) -> Exception | None:
        return None

    @property
    def connected(self) -> bool:
        return True

    @property
    def in_flight(self) -> bool:
        return self._pending is not None

    @property
    def error(self) -> str:
        return ""


class EnvCameras:
    """The synchronous SimEnv's three views as hardware Cameras: capture() renders them once per
    simulated tick; the controller then reads them like any camera."""

    def __init__(self, env: SimEnv):
        self.env = env
        self._frames: dict[str, Frame] = {}
        self._seq = 0
        self.cameras: dict[str, Camera] = {name: _EnvCamera(name, self) for name in CAMERA_NAMES}

    def capture(self) -> None:
        self._seq += 1
        now = time.monotonic()
        self._frames = {name: Frame(rgb, now, self._seq) for name, rgb in self.env.render().items()}


class _EnvCamera(Camera):
    def __init__(self, name: str, source: EnvCameras):
        h, w = source.env.config.height, source.env.config.width
        super().__init__(CameraConfig(name=name, width=w, height=h, max_age_s=3600.0))
        self.source = source

    def connect(self) -> None:
        pass

    def disconnect(self) -> None:
        pass

    @property
    def is_connected(self) -> bool:
        return True

    def latest(self) -> Frame | None:
        return self.source._frames.get(self.name)


def run_sim_clock_episode(env: SimEnv, client: PolicyClient, task: str, seed: int, instruction: str,
                          latency: LatencyModel, config: ControllerConfig | None = None,
                          safety: SafetyConfig | None = None, max_steps: int | None = None,
                          chunk_listener=None, tick_listener=None, after_tick=None) -> EpisodeOutcome:
    """One episode of the console's control core on a simulated clock (see the module docstring).
    chunk_listener(ChunkRecord) sees every chunk that entered the queue and tick_listener(TickRecord)
    every tick (before the world steps), as the console's listeners do; after_tick(tick) runs after
    the world stepped (a monitor the world waits for)."""
    env.reset(task=task, seed=seed)
    cams = EnvCameras(env)
    cams.capture()
    arm = SafeArm(EnvArm(env), safety or SafetyConfig())
    link = SimClockLink(client, latency, seed=seed)
    controller = Controller(arm, cams.cameras, link, config or ControllerConfig())
    period = 1.0 / controller.config.control_hz
    link.start(controller)
    check_robot(link.metadata, arm.spec.action_dim, cams.cameras.keys())
    controller.set_success_check(env.success)
    controller.set_time_limit(task_time_limit_s(env.task, controller.config.control_hz, max_steps))
    controller.set_instruction(instruction)
    controller.start_policy()
    chunks: list[float] = []
    controller.add_chunk_listener(lambda record: chunks.append(record.latency_ms))
    if chunk_listener is not None:
        controller.add_chunk_listener(chunk_listener)
    if tick_listener is not None:
        controller.add_tick_listener(tick_listener)
    tick = 0
    lift = ObjectLift(env)
    while controller.status().mode == Mode.POLICY:
        now = tick * period
        link.advance(now)
        controller.step(now)
        env.step(arm.arm.target)          # the target SafeArm let through (or its hold)
        lift()
        cams.capture()
        if after_tick is not None:
            after_tick(tick)
        tick += 1
    status = controller.status()
    return lift.record(EpisodeOutcome(task, seed, instruction, status.outcome == "succeeded", tick,
                                      status.chunk_count, chunk_ms=chunks, server_ms=link.server_ms))


def real_clock_robot(sim: SimConfig, client: PolicyClient, config: ControllerConfig):
    """The robot side of the real clock, as run_demo builds it: a running SimRobot (its physics and
    camera threads) and a Controller on it (SafeArm, the robot's cameras, a ZmqPolicyLink to
    `client`), not yet started: add listeners, then controller.start(). -> (robot, controller)."""
    from hardware.sim.robot import SimRobot
    robot = SimRobot(sim, camera_fps=30)
    robot.start()
    return robot, Controller(SafeArm(robot.arm, SafetyConfig()), dict(robot.cameras), client, config)


def run_real_episode(controller: Controller, robot, task: str, seed: int, instruction: str,
                     max_steps: int | None = None) -> EpisodeOutcome:
    """One episode on the wall clock through a running Controller (its thread started, a
    ZmqPolicyLink to a real server) and a running SimRobot: what an operator's START does."""
    r = run_rollout(controller, robot, task, seed, instruction, max_steps=max_steps)
    return EpisodeOutcome(task, seed, instruction, r.success, r.ticks, len(r.chunks), chunk_ms=r.latency_ms,
                          server_ms=[float(c.timings_ms.get("inference", np.nan)) for c in r.chunks])
