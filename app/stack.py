"""The demo stack: policy server (child process or remote), robot, controller, console.

run_demo.py parses flags into a StackConfig and runs `DemoStack`; the console benchmark and
the browser tests start the same stack through run_demo.py. Start order: policy server
(wait for its ready line, then the handshake) -> robot and cameras -> the rig's leader arms
(if any) -> controller -> console.
Shutdown runs in reverse and is safe to call twice; `check()` names the first part that
died and why, so the caller can shut everything down with that message.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from app.control.action_queue import DEFAULT_MERGE

log = logging.getLogger("run_demo")

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CHECKPOINT = REPO / "assets" / "checkpoints" / "sim-tiny"


class StackError(RuntimeError):
    """A part of the stack failed to start or died; the message says which and why."""


@dataclass
class StackConfig:
    robot: str = "sim"                       # "sim", or an arm adapter from the rig file
    rig: str | None = None                   # TOML/JSON rig file (cameras, arm, safety, leader)
    policy: str | None = None                # tcp://HOST:PORT of a running server; None = start a child
    policy_keys: str | None = None           # CurveZMQ key directory for a server off loopback (policy.keys)
    policy_protocol: str = "zmq"             # "zmq" (ours) or "openpi" (policy is ws://HOST:PORT, app.control.openpi_link)
    policy_embodiment: str = "aloha"         # openpi observation layout (policy.wire.openpi.EMBODIMENTS)
    policy_api_key: str | None = None        # openpi server that wants 'Authorization: Api-Key KEY'
    policy_actions_per_chunk: int | None = None   # openpi server whose metadata has no action_horizon
    policy_port: int = 5555                  # the child server's port (loopback)
    checkpoint: str | None = None            # default: assets/checkpoints/sim-tiny
    policy_args: list[str] = field(default_factory=list)   # extra flags for the child server
    policy_compile: bool = False             # child server --compile (torch.compile graphs, built before ready)
    policy_ready_s: float = 600.0            # model loading on a busy CPU can take minutes
    policy_nice: int = 10                    # >0: the child model yields CPU to cameras and control loop
    policy_timeout_s: float = 30.0           # per request; a CPU-only sim-tiny can take seconds per chunk
    dataset: str | None = "data/demos"       # None: recording off
    quality_limits: dict = field(default_factory=dict)   # policy.episodes.quality.QualityLimits overrides
    host: str = "127.0.0.1"
    port: int = 7860
    auth: tuple[str, str] | None = None
    task: str | None = None
    seed: int = 0
    scenes: str = "classic"                  # sim scenes (hardware.sim.tasks.SCENES): classic / varied
    camera_fps: int = 30
    width: int = 320
    height: int = 240
    open_browser: bool = True
    merge: str = DEFAULT_MERGE               # how a new chunk joins the action queue: replace / blend / rtc
    auto_hold: bool = False                  # PAUSE when imagination surprise stays "lost" (app.surprise)
    auto_hold_chunks: int = 2                # ... for this many chunks in a row
    heap_trim_s: float | None = 30.0         # malloc_trim this often (app.heap_trim: RSS that fragmentation
                                             # kept); None: never
    malloc_arenas: int | None = 2            # cap glibc's malloc arenas (app.heap_trim.limit_arenas); None: glibc's


class DemoStack:
    def __init__(self, config: StackConfig):
        self.config = config
        self.policy_process = None                # policy.serving.process.ServerProcess when a child
        self.client = None
        self.robot = None
        self.hardware_arm = None                 # a real arm (--robot other than sim); None in sim
        self.rig = None                          # hardware.factory.RigConfig from --rig
        self.leader = None                       # hardware.leader.LeaderArm from the rig's [leader]
        self.leader_follow = None                # hardware.leader_follow.LeaderFollower onto self.arm
        self.cameras: dict = {}
        self.controller = None
        self.previews = None
        self.surprise = None                      # app.surprise.SurpriseMonitor (policies that imagine)
        self.recorder = None
        self.console = None
        self.heap_trimmer = None                  # app.heap_trim.HeapTrimmer
        self.url: str | None = None
        self._stopping = threading.Event()
        self._last_tick = (-1, time.monotonic())

    def interrupt(self) -> None:
        """From a signal handler: make a start-up in progress give up (close() still follows)."""
        self._stopping.set()

    # -- start -------------------------------------------------------------------------------
    def policy_server_args(self) -> list[str]:
        cfg = self.config
        checkpoint = Path(cfg.checkpoint) if cfg.checkpoint else DEFAULT_CHECKPOINT
        bind = ["--bind", f"tcp://127.0.0.1:{cfg.policy_port}"]
        if cfg.policy_compile:
            bind.append("--compile")      # a server flag like --bind: whichever model it serves
        if cfg.policy_args:
            return [*cfg.policy_args, *bind]
        if checkpoint.is_dir():
            return ["--checkpoint", str(checkpoint), *bind]
        if cfg.checkpoint:
            raise StackError(f"checkpoint directory {checkpoint} does not exist; pass an existing --checkpoint DIR")
        log.warning("no trained checkpoint at %s: serving sim-tiny with RANDOM weights (the arm will move, but "
                    "not sensibly). Train one with the training pipeline to get a useful policy.", checkpoint)
        return ["--preset", "sim-tiny", "--random-init", *bind]

    def start(self) -> None:
        cfg = self.config
        from policy.wire.client import PolicyClient

        if cfg.malloc_arenas is not None:        # before this stack's threads exist (app.heap_trim)
            from app.heap_trim import limit_arenas
            limit_arenas(cfg.malloc_arenas)

        if cfg.policy is None:
            from policy.serving.process import ServerProcess   # torch-free: starts the child, never imports the model
            self.policy_process = ServerProcess(self.policy_server_args(), nice=cfg.policy_nice,
                                                ready_timeout_s=cfg.policy_ready_s)
            log.info("starting the policy server: %s", self.policy_process.command)
            try:
                address = self.policy_process.start(self._stopping)
            except RuntimeError as e:
                raise StackError(f"the {e}") from None
        else:
            address = cfg.policy
        if cfg.policy_protocol == "openpi":
            from policy.wire.openpi_policy import OpenPIPolicy
            self.client = OpenPIPolicy(address, cfg.policy_embodiment, timeout_s=cfg.policy_timeout_s,
                                       api_key=cfg.policy_api_key, chunk_length=cfg.policy_actions_per_chunk)
        else:
            self.client = PolicyClient(address, timeout_s=cfg.policy_timeout_s,
                                       keys=cfg.policy_keys if cfg.policy else None)
        metadata = self._handshake(address)
        log.info("policy %s ready at %s (H=%d, cameras %s)", metadata.preset, address, metadata.chunk_length,
                 ", ".join(metadata.camera_names))
        self._start_robot()
        self._start_leader()
        self._start_controller(metadata)
        self._start_console(metadata)
        if cfg.heap_trim_s is not None:
            from app.heap_trim import HeapTrimmer
            self.heap_trimmer = HeapTrimmer(cfg.heap_trim_s)
            self.heap_trimmer.start()

    def _handshake(self, address: str):
        from policy.wire.client import PolicyClientError
        deadline = time.monotonic() + (30.0 if self.policy_process else 10.0)
        while True:
            try:
                return self.client.hello()
            except PolicyClientError as exc:
                if time.monotonic() > deadline or self._stopping.is_set():
                    raise StackError(f"no handshake with the policy server at {address}: {exc}") from None
                time.sleep(0.5)

    def _start_robot(self) -> None:
        cfg = self.config
        from hardware.factory import load_rig, make_cameras
        from hardware.safety import SafeArm, SafetyConfig
        rig = self.rig = load_rig(cfg.rig) if cfg.rig else None
        safety = rig.safety if rig else SafetyConfig()
        if cfg.robot != "sim":
            self._start_real_robot(rig, safety)
            return
        from hardware.sim.env import SimConfig
        from hardware.sim.robot import SimRobot
        sim = SimConfig(seed=cfg.seed, width=cfg.width, height=cfg.height, scenes=cfg.scenes)
        if cfg.task:
            from hardware.sim.tasks import TASKS
            if cfg.task not in TASKS:
                raise StackError(f"unknown sim task '{cfg.task}'; tasks: {', '.join(sorted(TASKS))}")
            sim.task = cfg.task
        self.robot = SimRobot(sim, camera_fps=cfg.camera_fps)
        try:
            self.robot.start()
        except Exception as exc:
            raise StackError(f"the simulated robot failed to start: {exc}") from exc
        self.cameras = dict(self.robot.cameras)
        if rig is not None and rig.cameras:
            self.cameras = make_cameras(rig.cameras, sim_cameras=self.robot.cameras)
            for camera in self.cameras.values():
                if not camera.is_connected:
                    camera.connect()
        self.arm = SafeArm(self.robot.arm, safety)

    def _start_real_robot(self, rig, safety) -> None:
        """--robot NAME: the arm from hardware.factory.make_arm, the cameras from the rig file."""
        from hardware.arm import ArmError
        from hardware.factory import make_arm, make_cameras
        from hardware.safety import SafeArm
        cfg = self.config
        if rig is None or not rig.cameras:
            raise StackError(f"--robot {cfg.robot} needs --rig RIG.toml with the arm's settings and the real "
                             "cameras ([[cameras]] entries); see hardware/factory.py")
        if rig.arm.adapter not in ("sim", cfg.robot):    # "sim" is the rig default: no [arm] adapter given
            raise StackError(f"--robot {cfg.robot} but the rig file's [arm] adapter is '{rig.arm.adapter}': "
                             "make them agree")
        try:
            self.hardware_arm = make_arm(dataclasses.replace(rig.arm, adapter=cfg.robot))
            self.cameras = make_cameras(rig.cameras)
        except ValueError as exc:
            raise StackError(f"rig file {cfg.rig}: {exc}") from None
        try:
            self.hardware_arm.connect()
        except ArmError as exc:
            raise StackError(f"the {cfg.robot} arm did not connect: {exc}") from None
        for camera in self.cameras.values():
            camera.connect()
        self.arm = SafeArm(self.hardware_arm, safety)

    def _start_leader(self) -> None:
        """The rig's [leader] (e.g. Piper leaders over CAN; the follower is the sim or the real arm):
        connect it (read-only) and offer leader-follow mode, which starts only when aligned."""
        if self.rig is None or self.rig.leader is None:
            return
        from hardware.factory import make_leader
        from hardware.leader import LeaderError
        from hardware.leader_follow import LeaderFollower
        try:
            self.leader = make_leader(self.rig.leader)
            self.leader_follow = LeaderFollower(self.leader, self.arm, self.rig.leader.follow)
        except ValueError as exc:
            raise StackError(f"rig file {self.config.rig}: [leader]: {exc}") from None
        try:
            self.leader.connect()
        except LeaderError as exc:
            raise StackError(f"the leader arms did not connect: {exc}") from None
        log.info("leader arms (%s) connected: leader-follow mode is available", self.rig.leader.adapter)

    def start_leader_follow(self) -> None:
        """Leader-follow mode (the console's button): raises LeaderNotAlignedError / LeaderError,
        naming what disagrees, unless the leader is fresh and aligned with the follower."""
        if self.leader_follow is None:
            raise StackError("no leader arms: add a [leader] section to the rig file (see hardware/factory.py)")
        self.controller.start_leader_follow(self.leader_follow)

    def _start_controller(self, metadata) -> None:
        from app.control.controller import Controller, ControllerConfig
        from app.control.episode import task_time_limit_s
        from app.imagined import FuturePreviews
        spec = self.arm.spec
        config = ControllerConfig(control_hz=spec.control_hz, actions_per_chunk=metadata.chunk_length,
                                  merge=self.config.merge)
        policy = self.client
        if self.config.policy_protocol == "openpi":      # the same link interface, over openpi's websocket
            from app.control.openpi_link import OpenPIPolicyLink
            policy = OpenPIPolicyLink(self.client, spec.action_dim, self.cameras.keys(), retry_s=config.retry_s,
                                      ping_interval_s=config.ping_interval_s)
        self.controller = Controller(self.arm, self.cameras, policy, config)
        if self.robot is not None:
            self.controller.set_success_check(self.robot.success)
            self.controller.set_instruction(self.robot.instruction)
            self.controller.set_time_limit(task_time_limit_s(self.robot.task, spec.control_hz))
        if metadata.future_frames:
            self.previews = FuturePreviews(self.client)
            self.controller.add_chunk_listener(self.previews.on_chunk)
            self.previews.start()
            from app.surprise import AutoHoldConfig, SurpriseMonitor
            self.surprise = SurpriseMonitor(self.client, metadata, pause=self.controller.pause,
                                            auto_hold=AutoHoldConfig(enabled=self.config.auto_hold,
                                                                     chunks=self.config.auto_hold_chunks))
            self.controller.add_chunk_listener(self.surprise.on_chunk)
            self.controller.add_tick_listener(self.surprise.on_tick)
            self.surprise.start()
        if self.config.dataset:
            from app.recording import Recorder, dataset_spec_for
            sizes = {name: (cam.resolution[1], cam.resolution[0]) for name, cam in self.cameras.items()}
            self.recorder = Recorder(self.config.dataset, dataset_spec_for(spec, sizes), self.cameras,
                                     quality_limits=self.config.quality_limits)
            if self.robot is not None:    # labels policy rollouts success / failure
                self.recorder.set_success_check(self.robot.success)
            self.controller.add_tick_listener(self.recorder.on_tick)
            if self.previews is not None:
                self.previews.add_listener(self.recorder.on_future)
            if self.surprise is not None:
                self.surprise.add_listener(self.recorder.on_surprise)
        self.controller.start()

    def _start_console(self, metadata) -> None:
        from app.console import Console, ConsoleConfig
        cfg = self.config
        future_s = metadata.chunk_length / max(metadata.control_hz, 1e-6)
        console_cfg = ConsoleConfig(future_fps=max(metadata.future_frames, 1) / max(future_s, 1e-3))
        reset, tasks = None, None
        if self.robot is not None:
            from hardware.sim.tasks import TASKS
            tasks = sorted(TASKS)
            reset = self.reset_scene
        from app.live_view import LiveFeeds
        self.console = Console(self.controller, LiveFeeds(self.cameras), previews=self.previews,
                               recorder=self.recorder, reset_scene=reset, tasks=tasks,
                               current_task=self.robot.task.name if self.robot is not None else None,
                               dataset_root=cfg.dataset, config=console_cfg,
                               familiarity=getattr(self.client, "familiarity", None),
                               surprise=self.surprise,
                               leader_follow=self.start_leader_follow if self.leader_follow is not None else None,
                               scene=(lambda: list(self.robot.env.layout)) if self.robot is not None else None)
        self.console.launch(host=cfg.host, port=cfg.port, auth=cfg.auth, inbrowser=cfg.open_browser)
        host = "127.0.0.1" if cfg.host in ("0.0.0.0", "::") else cfg.host
        self.url = f"http://{host}:{cfg.port}"

    def reset_scene(self, task: str | None) -> str:
        """Sim only: a new episode of `task` (or the current one) with the next seed."""
        self.config.seed += 1
        self.robot.reset(task=task or self.robot.task.name, seed=self.config.seed)
        self.arm.rebase()                 # the reset moved the arm: hold the new pose, grippers included
        self.controller.stop()            # hold the new home pose (refreshes the controller's target)
        from app.control.episode import task_time_limit_s
        self.controller.set_time_limit(task_time_limit_s(self.robot.task, self.arm.spec.control_hz))
        return self.robot.instruction

    def _own_cameras(self) -> list:
        """The cameras this stack connected (rig cameras, also beside the sim); the sim's own
        cameras close with the simulated robot."""
        sim = list(self.robot.cameras.values()) if self.robot is not None else []
        return [c for c in self.cameras.values() if not any(c is s for s in sim)]

    # -- supervision -------------------------------------------------------------------------
    def check(self) -> str | None:
        """None while every part runs; else which part died and why."""
        if self.policy_process is not None and (why := self.policy_process.died()):
            return why
        if self.robot is not None:
            if self.robot.render_error is not None:
                return f"the simulated robot's renderer failed: {self.robot.render_error}"
            if not self.robot.running:
                return "the simulated robot stopped"
        if self.hardware_arm is not None and not self.hardware_arm.is_connected:
            return f"the {self.config.robot} arm lost its connection (CAN bus / power); it holds its last target"
        if self.controller is not None:
            tick, now = self.controller.status().tick, time.monotonic()
            if tick != self._last_tick[0]:
                self._last_tick = (tick, now)
            elif now - self._last_tick[1] > 5.0:
                return (f"the control loop has not ticked for {now - self._last_tick[1]:.0f} s (thread dead or "
                        "stuck; see the traceback above)")
        if self.console is not None and self.console.demo is not None and not self.console.is_running():
            return "the web console's server stopped"
        return None

    def close(self) -> None:
        """Reverse order; every step runs even if an earlier one fails. Safe to call twice."""
        self._stopping.set()
        steps = [("heap trimmer", lambda: self.heap_trimmer and self.heap_trimmer.stop()),
                 ("controller", lambda: self.controller and self.controller.close()),
                 ("console", lambda: self.console and self.console.close()),
                 ("previews", lambda: self.previews and self.previews.close()),
                 ("surprise monitor", lambda: self.surprise and self.surprise.close()),
                 ("recorder", lambda: self.recorder and self.recorder.close()),
                 ("robot", lambda: self.robot and self.robot.close()),
                 ("arm", lambda: self.hardware_arm and self.hardware_arm.disconnect()),   # holds, never limp
                 ("leader arms", lambda: self.leader and self.leader.close()),
                 ("cameras", lambda: [c.disconnect() for c in self._own_cameras()]),
                 ("policy client", lambda: self.client and self.client.close()),
                 ("policy server", lambda: self.policy_process and self.policy_process.stop())]
        for name, step in steps:
            try:
                step()
            except Exception as exc:       # keep going: the rest must still shut down
                log.warning("closing the %s failed: %s", name, exc)
        self.controller = self.console = self.previews = self.recorder = self.robot = self.hardware_arm = None
        self.surprise = self.leader = self.leader_follow = self.heap_trimmer = None
        self.client = self.policy_process = None
