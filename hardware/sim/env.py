"""SimEnv: the bimanual MuJoCo tabletop, stepped one control tick at a time.

Single-threaded and deterministic given (task, seed): the same reset gives the same
state and the same images. hardware/sim/robot.py wraps it for live use (threads, the
Camera / Arm interfaces); data generation and evaluation use it directly.

Action / state layout (RoboTwin 2.0 aloha-agilex): 14 floats,
[left 6 arm joints, left gripper, right 6 arm joints, right gripper], grippers
normalised 0 (closed) .. 1 (open).
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from hardware.aloha import CAMERA_NAMES, SIDES, joint_names  # noqa: F401  (re-exported: sim users read them here)
from hardware.aloha import both_arms as _both
from hardware.arm import RobotSpec
from hardware.sim.tasks import DEFAULT_TASK, SCENES, TASKS, Layout, Task, object_pos, object_yaw, set_object_pose

SCENE_XML = Path(__file__).resolve().parents[2] / "assets" / "sim" / "aloha_tabletop.xml"
from hardware.sim.ik import ARM_JOINTS
FINGER_CLOSED, FINGER_OPEN = 0.021, 0.057   # left finger slide (m); the right finger mirrors it

# A ready pose: both grippers above the table pointing down, fingers open, so that the
# wrist cameras see the workspace from the first frame.
_ARM_HOME = (0.0, -0.528, 0.5738, 0.0, 1.5249, 0.0)  # tool point 0.2 m up, pointing down
_ARM_LOWER = (-1.6, -1.85, -1.76, -3.14, -1.86, -3.14)
_ARM_UPPER = (1.6, 1.25, 1.6, 3.14, 2.23, 3.14)
_ARM_MAX_STEP = (0.25, 0.25, 0.25, 0.35, 0.35, 0.35)  # rad per 10 Hz tick


ALOHA_SPEC = RobotSpec(
    name="sim-aloha-vx300s",
    joint_names=joint_names(ARM_JOINTS),
    lower=_both(_ARM_LOWER, 0.0),
    upper=_both(_ARM_UPPER, 1.0),
    home=_both(_ARM_HOME, 1.0),
    gripper_indices=(6, 13),
    control_hz=10.0,
    max_step=_both(_ARM_MAX_STEP, 0.5),
)


@dataclass
class SimConfig:
    task: str = DEFAULT_TASK
    seed: int = 0
    control_hz: float = 10.0
    width: int = 320
    height: int = 240
    object_jitter: float = 1.0     # scales classic layouts' randomisation (0 = fixed), varied scenes' task regions
    # "classic": a few cm of jitter around fixed slots (what assets/checkpoints/sim-tiny was
    # trained on; the default until a policy is retrained on varied scenes). "varied": objects
    # anywhere in table regions, random block yaw, distractors (hardware/sim/scenes.py);
    # object_jitter does not apply to them.
    scenes: str = "classic"


class SimEnv:
    """The simulation. Not thread-safe: one thread calls reset/step/render."""

    def __init__(self, config: SimConfig | None = None):
        self.config = config or SimConfig()
        if self.config.control_hz <= 0:
            raise ValueError(f"control_hz must be positive, got {self.config.control_hz}")
        if self.config.scenes not in SCENES:
            raise ValueError(f"unknown scenes '{self.config.scenes}'; choose one of: {', '.join(SCENES)}")
        if not SCENE_XML.exists():
            raise FileNotFoundError(f"MuJoCo scene {SCENE_XML} is missing: reinstall the repository's assets/")
        self.model = mujoco.MjModel.from_xml_path(str(SCENE_XML))
        self.data = mujoco.MjData(self.model)
        self.substeps = max(1, round(1.0 / (self.config.control_hz * self.model.opt.timestep)))
        m = self.model
        self._arm_qpos = {s: np.array([m.joint(f"{s}/{j}").qposadr[0] for j in ARM_JOINTS]) for s in SIDES}
        self._arm_ctrl = {s: np.array([m.actuator(f"{s}/{j}").id for j in ARM_JOINTS]) for s in SIDES}
        self._finger_qpos = {s: (m.joint(f"{s}/left_finger").qposadr[0], m.joint(f"{s}/right_finger").qposadr[0])
                             for s in SIDES}
        self._finger_ctrl = {s: (m.actuator(f"{s}/left_finger").id, m.actuator(f"{s}/right_finger").id)
                             for s in SIDES}
        self._renderer: mujoco.Renderer | None = None
        self.task: Task = lookup_task(self.config.task)
        self.seed = self.config.seed
        self.steps = 0
        self.target = np.asarray(ALOHA_SPEC.home, dtype=np.float32)
        self.layout: Layout = {}       # where reset() put the objects: name -> (x, y[, yaw])
        self.reset()

    # -- episode -------------------------------------------------------------------------
    @property
    def instruction(self) -> str:
        return self.task.instructions[0]

    def reset(self, task: str | None = None, seed: int | None = None) -> None:
        """Home pose, objects laid out from the seed; same (task, seed) -> same state."""
        if task is not None:
            self.task = lookup_task(task)
        if seed is not None:
            self.seed = int(seed)
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        home = np.asarray(ALOHA_SPEC.home, dtype=np.float64)
        self._write_joints(d.qpos, home)
        self._write_ctrl(home)
        rng = np.random.default_rng(self.seed)
        self.layout = self.task.place_objects(m, d, rng, self.config.object_jitter, self.config.scenes)
        mujoco.mj_forward(m, d)
        # Let objects settle onto the table before the first observation.
        for _ in range(25):
            mujoco.mj_step(m, d)
        self.target = home.astype(np.float32)
        self.steps = 0

    def step(self, action: np.ndarray) -> None:
        """One control tick: hold `action` as the position target for 1/control_hz seconds."""
        self.set_target(action)
        self.advance(self.substeps)
        self.steps += 1

    def set_target(self, action: np.ndarray) -> None:
        """Set the joint-position target (clipped to the joint limits) without stepping."""
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (ALOHA_SPEC.action_dim,):
            raise ValueError(f"action has shape {action.shape}, expected ({ALOHA_SPEC.action_dim},) "
                             "= [left 6 joints, left gripper, right 6 joints, right gripper]")
        if not np.all(np.isfinite(action)):
            raise ValueError("action contains NaN/inf; send joint targets in radians, grippers 0..1")
        action = np.clip(action, ALOHA_SPEC.lower, ALOHA_SPEC.upper)
        self.target = action.astype(np.float32)
        self._write_ctrl(action)

    def advance(self, nstep: int) -> None:
        """Run nstep physics substeps toward the current target (SimRobot splits a tick)."""
        mujoco.mj_step(self.model, self.data, nstep=nstep)

    def push_object(self, name: str, dx: float, dy: float) -> None:
        """Move object `name` by (dx, dy) metres on the table, keeping its yaw: the disturbance an
        evaluation of the monitors induces (someone moves the block while the policy runs)."""
        p = object_pos(self.model, self.data, name)
        set_object_pose(self.model, self.data, name, float(p[0] + dx), float(p[1] + dy),
                        object_yaw(self.model, self.data, name))
        mujoco.mj_forward(self.model, self.data)

    def state(self) -> np.ndarray:
        """Measured joints, (14,) float32, grippers 0..1."""
        return self.read_joints(self.data.qpos)

    def success(self) -> bool:
        return bool(self.task.success(self.model, self.data))

    # -- rendering -----------------------------------------------------------------------
    def render(self) -> dict[str, np.ndarray]:
        """camera name -> HxWx3 uint8 RGB at the configured size."""
        return render_cameras(self._get_renderer(), self.data)

    def _get_renderer(self) -> mujoco.Renderer:
        if self._renderer is None:
            self._renderer = make_renderer(self.model, self.config.width, self.config.height)
            # Closes the GL context at interpreter exit if close() was never called (mujoco's
            # own __del__ then runs during module teardown and prints a traceback).
            self._close_renderer = weakref.finalize(self, self._renderer.close)
        return self._renderer

    def close(self) -> None:
        """Release the renderer's GL context; safe to call twice."""
        if self._renderer is not None:
            self._close_renderer()
            self._renderer = None

    def __enter__(self) -> "SimEnv":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- joint mapping -------------------------------------------------------------------
    def read_joints(self, qpos: np.ndarray) -> np.ndarray:
        out = np.empty(ALOHA_SPEC.action_dim, dtype=np.float32)
        for i, s in enumerate(SIDES):
            out[7 * i:7 * i + 6] = qpos[self._arm_qpos[s]]
            lf, rf = self._finger_qpos[s]
            finger = 0.5 * (qpos[lf] - qpos[rf])
            out[7 * i + 6] = (finger - FINGER_CLOSED) / (FINGER_OPEN - FINGER_CLOSED)
        return out

    def _write_joints(self, qpos: np.ndarray, joints: np.ndarray) -> None:
        for i, s in enumerate(SIDES):
            qpos[self._arm_qpos[s]] = joints[7 * i:7 * i + 6]
            finger = gripper_to_finger(joints[7 * i + 6])
            lf, rf = self._finger_qpos[s]
            qpos[lf], qpos[rf] = finger, -finger

    def _write_ctrl(self, joints: np.ndarray) -> None:
        ctrl = self.data.ctrl
        for i, s in enumerate(SIDES):
            ctrl[self._arm_ctrl[s]] = joints[7 * i:7 * i + 6]
            finger = gripper_to_finger(joints[7 * i + 6])
            lf, rf = self._finger_ctrl[s]
            ctrl[lf], ctrl[rf] = finger, -finger


def lookup_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown sim task '{name}'; choose one of: {', '.join(TASKS)}")
    return TASKS[name]


def gripper_to_finger(g: float) -> float:
    return FINGER_CLOSED + float(np.clip(g, 0.0, 1.0)) * (FINGER_OPEN - FINGER_CLOSED)


def make_renderer(model: mujoco.MjModel, width: int, height: int) -> mujoco.Renderer:
    """An offscreen renderer without shadows or reflections (CPU rendering is the budget)."""
    if width > model.vis.global_.offwidth or height > model.vis.global_.offheight:
        raise ValueError(f"render size {width}x{height} exceeds the scene's offscreen buffer "
                         f"{model.vis.global_.offwidth}x{model.vis.global_.offheight}; use at most 640x480")
    renderer = mujoco.Renderer(model, height=height, width=width)
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = True
    return renderer


def render_cameras(renderer: mujoco.Renderer, data: mujoco.MjData) -> dict[str, np.ndarray]:
    images = {}
    for name in CAMERA_NAMES:
        renderer.update_scene(data, camera=name)
        images[name] = renderer.render()   # a fresh array each call
    return images
