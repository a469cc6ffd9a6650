"""SimRobot: the simulation as a live robot, behind the same Arm / Camera interfaces as hardware.

Two threads:
- physics: steps the SimEnv in real time toward the latest commanded target. A control tick
  (1/control_hz) is split into a few slices so that camera frames show smooth motion.
- render: at camera_fps, copies the joint positions into its own MjData (under the lock,
  microseconds) and renders the three views from that copy, so rendering never holds
  the physics. Its mujoco.Renderer is created, used and closed in that thread (OSMesa/GL
  contexts belong to the thread that made them).
"""
from __future__ import annotations

import threading
import time

import mujoco
import numpy as np

from hardware.arm import Arm, ArmNotConnectedError, ArmState
from hardware.camera import Camera, CameraConfig, CameraDisconnectedError, Frame
from hardware.sim.env import ALOHA_SPEC, CAMERA_NAMES, SimConfig, SimEnv, make_renderer
from hardware.sim.tasks import Task

SLICES_PER_TICK = 5   # physics publishes a new state 5x per control tick (50 Hz at 10 Hz control)


class SimArm(Arm):
    """Both sim arms as one 14-d robot. command() sets the target the physics thread holds."""

    spec = ALOHA_SPEC

    def __init__(self, robot: "SimRobot"):
        self._robot = robot
        self._connected = False

    def connect(self) -> None:
        if not self._robot.running:
            raise ArmNotConnectedError("the sim robot is not running: call SimRobot.start() first")
        self._connected = True

    def disconnect(self) -> None:
        # Leave the arm holding where it is (never "limp"), like a real arm should.
        if self._connected and self._robot.running:
            self._robot.set_target(self._robot.measured())
        self._connected = False

    @property
    def is_connected(self) -> bool:
        return self._connected and self._robot.running

    def read_state(self) -> ArmState:
        self._check()
        position, target = self._robot.measured(), self._robot.target()
        return ArmState(position=position, timestamp=time.monotonic(), target=target)

    def command(self, target: np.ndarray) -> None:
        self._check()
        target = np.asarray(target, dtype=np.float32)
        if target.shape != (self.spec.action_dim,) or not np.all(np.isfinite(target)):
            raise ValueError(f"sim arm command must be {self.spec.action_dim} finite floats, got shape "
                             f"{target.shape}; send commands through hardware.safety.SafeArm")
        self._robot.set_target(target)

    def _check(self) -> None:
        if not self.is_connected:
            raise ArmNotConnectedError("sim arm is not connected: start the SimRobot and call connect()")


class SimCamera(Camera):
    """One of the sim's views; frames are pushed by SimRobot's render thread."""

    def __init__(self, config: CameraConfig, robot: "SimRobot"):
        if config.name not in CAMERA_NAMES:
            raise ValueError(f"sim has no camera '{config.name}'; its cameras are {', '.join(CAMERA_NAMES)}")
        if config.use_depth:
            raise ValueError(f"sim camera '{config.name}' renders RGB only: set use_depth=False")
        super().__init__(config)
        self._robot = robot
        self._connected = False
        self._frame: Frame | None = None
        self._lock = threading.Lock()

    def connect(self) -> None:
        if not self._robot.running:
            raise CameraDisconnectedError(f"sim camera '{self.name}': the sim robot is not running; "
                                          "call SimRobot.start() first")
        self._connected = True

    def disconnect(self) -> None:
        self._connected = False

    @property
    def is_connected(self) -> bool:
        return self._connected and self._robot.running

    def latest(self) -> Frame | None:
        with self._lock:
            return self._frame

    def _publish(self, rgb: np.ndarray, timestamp: float) -> None:
        with self._lock:
            seq = 0 if self._frame is None else self._frame.seq + 1
            self._frame = Frame(rgb=rgb, timestamp=timestamp, seq=seq)


class SimRobot:
    """The embedded simulation as a live robot: `arm`, `cameras`, reset / success / instruction."""

    def __init__(self, config: SimConfig | None = None, camera_fps: int = 30):
        self.config = config or SimConfig()
        if camera_fps <= 0:
            raise ValueError(f"camera_fps must be positive, got {camera_fps}")
        self.camera_fps = camera_fps
        self.env = SimEnv(self.config)   # touched only under self._lock once started
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._render_qpos = self.env.data.qpos.copy()
        self._render_time = time.monotonic()
        self._target = self.env.target.copy()
        self.render_error: BaseException | None = None
        self.physics_error: BaseException | None = None
        self.ticks = 0
        self.render_count = 0
        self.arm = SimArm(self)
        self.cameras: dict[str, SimCamera] = {
            name: SimCamera(CameraConfig(name=name, adapter="sim", width=self.config.width,
                                         height=self.config.height, fps=camera_fps), self)
            for name in CAMERA_NAMES}

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True while both threads are alive (a crashed thread shows up here and in *_error)."""
        return bool(self._threads) and not self._stop.is_set() and all(t.is_alive() for t in self._threads)

    def start(self) -> None:
        """Start physics and rendering, connect the arm and cameras; returns once every camera
        has a frame that read_latest() accepts."""
        if self.running:
            return
        self._stop.clear()
        with self._lock:
            self._snapshot()
        self._threads = [threading.Thread(target=self._physics_loop, name="sim-physics", daemon=True),
                         threading.Thread(target=self._render_loop, name="sim-render", daemon=True)]
        for thread in self._threads:
            thread.start()
        self.arm.connect()
        for camera in self.cameras.values():
            camera.connect()
        deadline = time.monotonic() + 30.0
        while not all(self._fresh(c) for c in self.cameras.values()):
            if self.render_error is not None:
                self.close()
                raise RuntimeError(f"sim rendering failed: {self.render_error}. On a machine without a "
                                   "display set MUJOCO_GL=osmesa (apt install libosmesa6)") from self.render_error
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError("sim rendering produced no fresh frame in 30 s; check MUJOCO_GL=osmesa "
                                   "and the machine's load")
            time.sleep(0.005)

    @staticmethod
    def _fresh(camera: "SimCamera") -> bool:
        frame = camera.latest()
        return frame is not None and frame.age_s <= camera.config.max_age_s

    def close(self) -> None:
        """Stop the threads (the arm holds its last target); safe to call twice."""
        self.arm.disconnect()
        self._stop.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5.0)
        for camera in self.cameras.values():
            camera.disconnect()
        self._threads = []

    def __enter__(self) -> "SimRobot":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- episode -----------------------------------------------------------------------------
    def reset(self, task: str | None = None, seed: int | None = None, timeout_s: float = 5.0) -> None:
        """New episode (thread-safe): home pose, objects laid out from the seed. Returns once every
        camera shows the new scene: until then a camera's newest frame is the old one (the arm
        over the last episode's goal), and a policy started at once would act on that picture
        with the new state (measured: it sent the arm off in a wrong direction)."""
        with self._lock:
            self.env.reset(task=task, seed=seed)
            self._target = self.env.target.copy()
            self._snapshot()
            reset_at = self._render_time
        if not self.running:            # not started: start() waits for its first frames
            return
        deadline = time.monotonic() + timeout_s
        while not all((f := c.latest()) is not None and f.timestamp >= reset_at for c in self.cameras.values()):
            if self.render_error is not None or not self.running:
                raise RuntimeError(f"sim rendering stopped during the reset: {self.render_error or 'robot closed'}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the sim cameras showed no frame of the new scene within {timeout_s:g} s of "
                                   "the reset; the machine is overloaded or rendering is stuck (check MUJOCO_GL)")
            time.sleep(0.002)

    def push_object(self, name: str, dx: float, dy: float) -> None:
        """Thread-safe SimEnv.push_object: someone moves an object while the robot works."""
        with self._lock:
            self.env.push_object(name, dx, dy)
            self._snapshot()

    def success(self) -> bool:
        with self._lock:
            return self.env.success()

    @property
    def task(self) -> Task:
        return self.env.task

    @property
    def instruction(self) -> str:
        return self.env.instruction

    # -- used by SimArm ----------------------------------------------------------------------
    def measured(self) -> np.ndarray:
        with self._lock:
            return self.env.state()

    def target(self) -> np.ndarray:
        with self._lock:
            return self._target.copy()

    def set_target(self, target: np.ndarray) -> None:
        with self._lock:
            self._target = np.clip(np.asarray(target, dtype=np.float32), ALOHA_SPEC.lower, ALOHA_SPEC.upper)

    # -- threads -----------------------------------------------------------------------------
    def _snapshot(self) -> None:
        self._render_qpos[:] = self.env.data.qpos
        self._render_time = time.monotonic()

    def _physics_loop(self) -> None:
        try:
            self._run_physics()
        except BaseException as exc:  # noqa: BLE001 - reported through physics_error / running
            self.physics_error = exc

    def _run_physics(self) -> None:
        period = 1.0 / (self.config.control_hz * SLICES_PER_TICK)
        nstep = max(1, self.env.substeps // SLICES_PER_TICK)
        next_time = time.monotonic()
        slice_index = 0
        while not self._stop.is_set():
            with self._lock:
                # A command takes effect at the next slice (<= 20 ms), as on a real servo bus,
                # not at the physics thread's own tick boundary: STOP must not lag a tick.
                self.env.set_target(self._target)
                self.env.advance(nstep)
                self._snapshot()
                if slice_index == SLICES_PER_TICK - 1:
                    self.env.steps += 1
                    self.ticks += 1
            slice_index = (slice_index + 1) % SLICES_PER_TICK
            next_time += period
            delay = next_time - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            elif delay < -0.5:   # fell far behind (machine busy): resynchronise, do not race
                next_time = time.monotonic()

    def _render_loop(self) -> None:
        try:
            renderer = make_renderer(self.env.model, self.config.width, self.config.height)
        except BaseException as exc:  # noqa: BLE001 - reported to start() and the caller
            self.render_error = exc
            return
        data = mujoco.MjData(self.env.model)
        period = 1.0 / self.camera_fps
        next_time = time.monotonic()
        try:
            while not self._stop.is_set():
                with self._lock:
                    data.qpos[:] = self._render_qpos
                    stamp = self._render_time
                mujoco.mj_kinematics(self.env.model, data)
                mujoco.mj_camlight(self.env.model, data)
                for name, camera in self.cameras.items():
                    renderer.update_scene(data, camera=name)
                    camera._publish(renderer.render(), stamp)
                self.render_count += 1
                next_time += period
                delay = next_time - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                else:
                    next_time = time.monotonic()   # rendering is the bottleneck: run flat out
        except BaseException as exc:  # noqa: BLE001
            self.render_error = exc
        finally:
            renderer.close()
