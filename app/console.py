"""The operator console: a Gradio Blocks page around one Controller.

Operate tab: live camera tiles, the imagined future next to the head view, instruction box
(Enter sends), START / PAUSE / reset scene, a big STOP that is always on screen, teleop
(keyboard, gamepad, jog buttons, WebXR headset, leader arms), recording, status with latency, and
errors in plain words.
Review tab: app/review.py. Only the tab that holds control may command the robot
(app/session.py); STOP works from every tab.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import gradio as gr
import numpy as np
import pandas as pd

from app import monitor_panels, panels, plots, teleop, xr_teleop
from app.control.controller import Controller, StoppedError
from app.control.records import Mode
from app.imagined import FuturePreviews
from app.live_route import add_live_route
from app.live_view import LiveFeeds
from app.collection import CollectionConfig, CollectionSession
from app.recording import Recorder
from app.recording_panel import RecordingPanel
from app.session import NotOperatorError, OperatorLock
from app.static_files import STATIC
from app.status import StatusView
from policy.wire.familiarity import with_scene

log = logging.getLogger(__name__)

CSS_PATH = STATIC / "console.css"


@dataclass
class ConsoleConfig:
    title: str = "Efficient-WAM operator console"
    record_rollouts: bool = True        # default of the "record policy rollouts" checkbox
    future_fps: float = 5.0             # playback rate of the imagined future (real time by default)
    head_camera: str = "head"           # shown next to the imagined future
    collection: CollectionConfig = field(default_factory=CollectionConfig)   # countdown, reset, targets


# reset_scene(task_name) -> the scene's instruction; None for real robots.
ResetScene = Callable[[str | None], str]


class Console:
    def __init__(self, controller: Controller, feeds: LiveFeeds, *, previews: FuturePreviews | None = None,
                 recorder: Recorder | None = None, reset_scene: ResetScene | None = None,
                 tasks: list[str] | None = None, current_task: str | None = None, dataset_root: str | None = None,
                 config: ConsoleConfig | None = None, lock: OperatorLock | None = None,
                 familiarity: Callable[[str], dict] | None = None, surprise=None,
                 scene: Callable[[], list[str]] | None = None, leader_follow: Callable[[], None] | None = None):
        """familiarity: instruction -> PolicyClient.familiarity's dict (None: not shown, START asks
        nothing); surprise: an app.surprise.SurpriseMonitor (None: no sparkline); scene: the
        objects on the table now (sim: "red_block", "plate", ...; None: unknown, no scene test);
        leader_follow: starts leader-follow mode (app.stack.DemoStack.start_leader_follow; None: the
        rig has no leader arms, no button)."""
        self.controller = controller
        self.leader_follow = leader_follow
        self.familiarity = familiarity
        self.scene = scene
        self.surprise = surprise
        self._confirmed: dict[str, str] = {}      # session -> the unfamiliar instruction it confirmed
        self.feeds = feeds
        self.previews = previews
        self.recorder = recorder
        self.reset_scene = reset_scene
        self.tasks = list(tasks or [])
        self.current_task = current_task
        self.dataset_root = dataset_root
        self.config = config or ConsoleConfig()
        self.lock = lock or OperatorLock()
        self.spec = controller.arm.spec
        self.jog = teleop.JogTranslator(self.spec)
        self._jog_held: dict[str, bool] = {}      # session (+ device) -> its last command asked for motion
        self.xr = xr_teleop.XRTeleop.for_robot(self.spec)
        self.status_view = StatusView(controller, self.lock, recorder, previews)
        self.record_rollouts = self.config.record_rollouts
        # teleop data collection (app/collection.py), shown by app/recording_panel.py
        self.collection = CollectionSession(recorder, self.config.collection) if recorder is not None else None
        self.demo: gr.Blocks | None = None

    # -- actions (each raises gr.Error with plain words) -------------------------------------
    def _require(self, request: gr.Request | None) -> None:
        try:
            self.lock.require(request.session_hash if request else "")
        except NotOperatorError as exc:
            raise gr.Error(str(exc)) from None

    def _call(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as exc:
            log.exception("%s failed", what)
            raise gr.Error(f"{what} failed: {exc}") from None

    def send_instruction(self, text: str, request: gr.Request = None) -> None:
        self._require(request)
        text = (text or "").strip()
        if not text:
            raise gr.Error("The instruction is empty: type what the robot should do, "
                           "e.g. \"put the red block on the plate\".")
        self._call("setting the instruction", self.controller.set_instruction, text)
        gr.Info(f"Instruction set: {text}")

    def familiarity_of(self, text: str) -> dict | None:
        text = (text or "").strip()
        if self.familiarity is None or not text:
            return None
        try:
            reply = self.familiarity(text)
            return with_scene(reply, self.scene() if self.scene is not None else None)
        except Exception as exc:      # an older server, or one busy: say nothing rather than guess
            log.warning("familiarity of %r unavailable: %s", text, exc)
            return None

    def familiarity_html(self, text: str) -> str:
        """As the operator types: how familiar the instruction is, and the nearest taught one."""
        return monitor_panels.familiarity_html(self.familiarity_of(text))

    def start_checked(self, text: str, record: bool, request: gr.Request = None):
        """START: an instruction below the familiarity threshold needs one more click (Run anyway)."""
        self._require(request)
        text_ = (text or "").strip()
        session = request.session_hash if request else ""
        fam = self.familiarity_of(text_)
        if fam is not None and not fam.get("familiar", True) and self._confirmed.get(session) != text_:
            return monitor_panels.confirm_unfamiliar(fam)
        self.start(text, record, request)
        return monitor_panels.confirm_hidden()

    def start_anyway(self, text: str, record: bool, request: gr.Request = None):
        self._require(request)
        self._confirmed[request.session_hash if request else ""] = (text or "").strip()
        return self.start_checked(text, record, request)

    def start(self, text: str, record: bool, request: gr.Request = None) -> None:
        self._require(request)
        text = (text or "").strip()
        if not text:
            raise gr.Error("Type an instruction first (what should the robot do?), then press START.")
        self._call("setting the instruction", self.controller.set_instruction, text)
        if self.surprise is not None:
            self.surprise.reset()
        recording = record and self.recorder is not None and self.recorder.kind is None
        if recording:          # before the policy moves, so the rollout's first frame is the start
            self._call("starting the rollout recording", self.recorder.start, text, "policy")
        try:
            self._call("starting the policy", self.controller.start_policy)
        except gr.Error:
            if recording:
                self.recorder.discard()
            raise

    def pause(self, request: gr.Request = None) -> None:
        self._require(request)
        self._call("pausing", self.controller.pause)

    def stop(self, request: gr.Request = None) -> None:
        """STOP: any tab, no questions asked."""
        self._call("STOP", self.controller.stop)
        self._finish_rollout()

    def _finish_rollout(self) -> None:
        if self.recorder is not None and self.recorder.kind == "policy":
            try:
                index = self.recorder.save()
                gr.Info(f"Policy rollout saved as episode {index}.")
            except Exception as exc:
                gr.Warning(f"The rollout could not be saved: {exc}")

    def reset(self, task: str | None, request: gr.Request = None) -> str:
        self._require(request)
        if self.reset_scene is None:
            raise gr.Error("Reset scene is only available in simulation; reset the real scene by hand.")
        self._call("STOP", self.controller.stop)
        self._finish_rollout()
        instruction = self._call("resetting the scene", self.reset_scene, task or None)
        self._call("setting the instruction", self.controller.set_instruction, instruction)
        return instruction

    def take_control(self, request: gr.Request = None) -> None:
        self.lock.take(request.session_hash if request else "")
        gr.Info("You are operating the robot now; other tabs watch.")

    def teleop_mode(self, request: gr.Request = None) -> None:
        self._require(request)
        self._call("switching to teleop", self.controller.start_teleop)

    def leader_follow_mode(self, request: gr.Request = None) -> None:
        """Leader-follow: refused, naming the joints that disagree, unless leader and arm are aligned."""
        from hardware.leader import LeaderError
        from hardware.leader_follow import LeaderNotAlignedError
        self._require(request)
        if self.leader_follow is None:
            raise gr.Error("No leader arms on this rig: add a [leader] section to the rig file (hardware/factory.py).")
        try:
            self.leader_follow()
        except (LeaderNotAlignedError, LeaderError) as exc:
            raise gr.Error(str(exc)) from None
        except Exception as exc:
            log.exception("starting leader-follow failed")
            raise gr.Error(f"starting leader-follow failed: {exc}") from None

    # -- server functions called by page scripts (no queue) ----------------------------------
    def _teleop_gate(self, key: str, pressed: bool, again: str) -> tuple[bool, str | None]:
        """The rule every teleop device passes (jog keys/stick/buttons, WebXR): (send?, error).
        Only a fresh press (this device's previous command was a release, or none) may switch an
        idle arm to teleop: a key, stick or grip still held through STOP/PAUSE must not resume
        motion. A release is sent in teleop mode only (it stops the arm now). StoppedError while
        STOP is latched."""
        fresh_press = pressed and not self._jog_held.get(key, False)
        self._jog_held[key] = pressed
        mode = self.status_view.mode()
        if mode == Mode.POLICY:
            return False, "the policy is driving: press PAUSE (or STOP) before jogging"
        if not pressed:
            return mode == Mode.TELEOP, None
        if mode != Mode.TELEOP:
            if not fresh_press and not self.controller.status().stopped:
                return False, f"holding: {again}"
            self.controller.start_teleop(explicit=False)    # StoppedError while STOP is latched
        return True, None

    def jog_command(self, session: str, vector, fast: bool) -> dict:
        try:
            self.lock.require(session)
        except NotOperatorError as exc:
            return {"error": str(exc)}
        try:
            velocity = self.jog.velocity(vector, bool(fast))
            send, error = self._teleop_gate(session, bool(np.any(velocity)),
                                            "release the jog keys/stick and press again to jog")
            if send:
                self.controller.teleop_command(joint_velocity=velocity)
            return {"error": error}
        except StoppedError as exc:
            return {"error": str(exc)}
        except Exception as exc:
            return {"error": f"jog refused: {exc}"}

    def xr_command(self, session: str, message) -> dict:
        """One WebXR frame (app/xr_teleop.py): controller poses -> IK -> a dead-man joint target.
        Malformed input is answered with the reason and ignored; an older frame than one already
        taken is dropped (latest wins)."""
        try:
            self.lock.require(session)
        except NotOperatorError as exc:
            return {"error": str(exc)}
        if not self.xr.available:
            return {"error": f"WebXR teleop is off: {self.xr.why_not}"}
        try:
            poses = xr_teleop.parse_poses(message)
        except ValueError as exc:
            return {"error": f"XR pose ignored: {exc}"}
        with self.xr.serial:
            if not self.xr.accept(session, poses):
                return {"error": None, "stale": True}
            try:
                send, error = self._teleop_gate(session + ":xr", self.xr.wants_motion(poses),
                                                "release the grip and squeeze again to move")
                if error or not send:
                    self.xr.reset()
                    return {"error": error}
                step = self.xr.step(poses, self.controller.arm.read_state().position)
                if step.target is None:            # released: hold now rather than when the command expires
                    self.controller.teleop_command(joint_velocity=np.zeros(self.spec.action_dim))
                else:
                    self.controller.teleop_command(target=step.target)
                return {"error": None, "engaged": step.engaged, "notes": step.notes}
            except StoppedError as exc:
                self.xr.reset()
                return {"error": str(exc)}
            except Exception as exc:
                self.xr.reset()
                log.exception("XR teleop command failed")
                return {"error": f"XR teleop refused: {exc}"}

    def stop_command(self, session: str) -> dict:
        self.controller.stop()
        return {"error": None}

    # -- page --------------------------------------------------------------------------------
    def build(self) -> gr.Blocks:
        from app.review import build_review_tab

        cams = self.feeds.names
        head = self.config.head_camera if self.config.head_camera in cams else cams[0]
        with gr.Blocks(title=self.config.title) as demo:
            session = panels.session_marker()
            with gr.Row(elem_id="ewam-header"):
                gr.Markdown(f"## {self.config.title}", elem_id="ewam-title")
                take = gr.Button("Take control", size="sm", scale=0, min_width=140)
            stop_btn = gr.Button("STOP", elem_id="ewam-stop", variant="stop")
            panels.status_bar(self.status_view.as_dict)
            with gr.Tab("Operate"):
                with gr.Row(equal_height=True):
                    instruction = gr.Textbox(label="Instruction (Enter sends)", scale=4, lines=1, max_lines=1,
                                             placeholder="put the red block on the plate", elem_id="instruction")
                    start_btn = gr.Button("START", variant="primary", scale=1, elem_id="ewam-start")
                    pause_btn = gr.Button("PAUSE", scale=1, elem_id="ewam-pause")
                familiarity = gr.HTML("", elem_id="familiarity")
                with gr.Row(visible=False, elem_id="familiarity-confirm") as confirm_row:
                    confirm_text = gr.HTML("", elem_id="familiarity-confirm-text")
                    run_anyway = gr.Button("Run anyway", variant="stop", scale=0, min_width=140,
                                           elem_id="ewam-run-anyway")
                    cancel = gr.Button("Cancel", scale=0, min_width=100, elem_id="ewam-run-cancel")
                others = [c for c in cams if c != head]
                with gr.Row(equal_height=False):
                    with gr.Column(scale=2, min_width=320):
                        panels.camera_tile(self.feeds, head)
                    with gr.Column(scale=2, min_width=320):
                        panels.future_panel(self.previews, self.config.future_fps)
                        surprise_panel = gr.HTML(monitor_panels.surprise_html(None), elem_id="surprise-panel")
                    if others:
                        with gr.Column(scale=1, min_width=200):
                            for name in others:
                                panels.camera_tile(self.feeds, name)
                with gr.Row():
                    record_rollouts = gr.Checkbox(value=self.record_rollouts and self.recorder is not None,
                                                  label="Record policy rollouts (with imagined futures)",
                                                  interactive=self.recorder is not None, scale=2)
                    if self.reset_scene is not None:
                        task = gr.Dropdown(choices=self.tasks, value=self.current_task or
                                           (self.tasks[0] if self.tasks else None),
                                           label="Scene task", scale=2, allow_custom_value=False,
                                           elem_id="scene-task")
                        reset_btn = gr.Button("Reset scene", scale=1, elem_id="ewam-reset")
                with gr.Accordion("Teleop (keyboard / gamepad / jog buttons / VR headset)", open=True):
                    with gr.Row():
                        teleop_btn = gr.Button("Teleop mode", scale=0, min_width=140, elem_id="ewam-teleop")
                        leader_btn = (gr.Button("Leader-follow", scale=0, min_width=140, elem_id="ewam-leader-follow")
                                      if self.leader_follow is not None else None)
                        gr.Markdown("Jogging switches to teleop mode by itself when the robot is idle.")
                    gr.HTML(value="", html_template=teleop.jog_panel_html(self.spec), js_on_load=teleop.TELEOP_JS,
                            server_functions=[self._server_jog(), self._server_stop()],
                            robot=teleop.page_config(self.spec), elem_id="ewam-teleop-panel")
                    gr.HTML(value="", html_template=xr_teleop.PANEL_HTML, js_on_load=xr_teleop.WEBXR_JS,
                            server_functions=[self._server_xr_pose()], xr=xr_teleop.page_config(self.xr, head),
                            elem_id="ewam-xr-panel")
                with gr.Accordion("Recording", open=True):
                    if self.collection is not None:
                        RecordingPanel(self.collection, self.lock,
                                       lambda: self.status_view.controller_status().instruction or "").component()
                    gr.Markdown(f"Dataset: `{self.recorder.root.resolve()}`" if self.recorder else
                                "Recording is off (start with `--dataset DIR`).")
                with gr.Accordion("Latency", open=False, elem_id="latency-accordion"):
                    latency_plot = gr.LinePlot(x="chunk", y="ms", color="stage", height=260, elem_id="latency-plot",
                                               title="per-chunk latency (p50 / p95 in the status bar)")
            with gr.Tab("Review", elem_id="review-tab") as review_tab:
                build_review_tab(self.dataset_root, review_tab)

            # -- wiring: STOP first, unqueued limits so nothing waits behind a slow handler --
            fast = dict(concurrency_limit=None, show_progress="hidden")
            stop_btn.click(self.stop, None, None, **fast)
            take.click(self.take_control, None, None, **fast)
            start_btn.click(self.start_checked, [instruction, record_rollouts], [confirm_row, confirm_text], **fast)
            run_anyway.click(self.start_anyway, [instruction, record_rollouts], [confirm_row, confirm_text], **fast)
            cancel.click(monitor_panels.confirm_hidden, None, [confirm_row, confirm_text], **fast)
            instruction.change(self.familiarity_html, [instruction], [familiarity], concurrency_limit=None,
                               show_progress="hidden", trigger_mode="always_last")
            instruction.submit(self.send_instruction, [instruction], None, **fast)
            pause_btn.click(self.pause, None, None, **fast)
            teleop_btn.click(self.teleop_mode, None, None, **fast)
            if leader_btn is not None:
                leader_btn.click(self.leader_follow_mode, None, None, **fast)
            record_rollouts.change(self._set_record_rollouts, [record_rollouts], None, **fast)
            if self.reset_scene is not None:
                reset_btn.click(self.reset, [task], [instruction], concurrency_limit=1)
            timer = gr.Timer(2.0)
            timer.tick(self._latency_frame, None, [latency_plot], concurrency_limit=None, show_progress="hidden")
            if self.surprise is not None:
                gr.Timer(1.0).tick(lambda: monitor_panels.surprise_html(self.surprise.snapshot()), None, [surprise_panel],
                                   concurrency_limit=None, show_progress="hidden")
            demo.load(self._on_load, None, [session, instruction], concurrency_limit=None, show_progress="hidden")
        self.demo = demo
        return demo

    def _server_jog(self):
        def jog(args) -> dict:
            session, vector, fast = panels.server_args(args, 3, ("", None, False))
            return self.jog_command(str(session or ""), vector, bool(fast))
        return jog

    def _server_xr_pose(self):
        def xr_pose(args) -> dict:
            session, message = panels.server_args(args, 2, ("", None))
            return self.xr_command(str(session or ""), message)
        return xr_pose

    def _server_stop(self):
        def stop(args) -> dict:
            (session,) = panels.server_args(args, 1, ("",))
            return self.stop_command(str(session or ""))
        return stop

    def _set_record_rollouts(self, value: bool) -> None:
        self.record_rollouts = bool(value)

    def _on_load(self, request: gr.Request):
        status = self.status_view.controller_status()
        return request.session_hash, status.instruction

    def _latency_frame(self) -> pd.DataFrame:
        return plots.latency_frame(self.status_view.controller_status())

    def launch(self, host: str = "127.0.0.1", port: int = 7860, auth: tuple[str, str] | None = None,
               inbrowser: bool = False) -> None:
        demo = self.demo or self.build()
        if self.collection is not None:
            self.collection.start_ticker()       # countdown / reset timers run without a page open
        demo.queue(default_concurrency_limit=None)
        demo.launch(server_name=host, server_port=port, auth=auth, inbrowser=inbrowser, prevent_thread_lock=True,
                    css_paths=[CSS_PATH], theme=gr.themes.Soft(), show_error=True, quiet=True, footer_links=[])
        add_live_route(demo.server_app, self.feeds)     # the camera tiles' frames, as JPEG bytes

    def is_running(self) -> bool:
        return bool(self.demo is not None and getattr(self.demo, "is_running", False))

    def close(self) -> None:
        if self.collection is not None:
            self.collection.close()
        if self.demo is not None:
            self.demo.close()
