"""The console's recording panel: the data-collection workflow of app/collection.py in the page.

One gr.HTML (template below, script app/static/recording.js) with two server functions, which
bypass Gradio's queue like the other live panels: `rec_status(session, task)` (polled 5x a
second: phase and its timer, "40 of 50", the live quality figures and flags, a pending
confirmation) and `rec_action(session, action, fields)` (buttons and keys). Keys, when focus is
not in a text box and the "keys" box is ticked: S = save the open teleop episode as success (or
label the last saved one), F = the same as failure, Backspace = discard-and-redo; while a flagged
episode waits for confirmation the same key again (or Enter) saves it anyway. The keys take
precedence over the keyboard jog keys S (joint 2 -) and F (joint 4 -); untick "keys" to jog
with them. Only the tab holding control may act (app/session.py); every tab sees the status.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable

import gradio as gr

from app.collection import CollectionSession
from app.panels import ServerArgs, server_args
from app.session import NotOperatorError, OperatorLock
from app.static_files import script

log = logging.getLogger(__name__)

ACTIONS = ("configure", "start", "success", "failure", "unlabelled", "confirm", "cancel_confirm", "redo", "discard")

TEMPLATE = """
<div class="rec-panel">
  <div class="rec-row">
    <label id="record-task" class="rec-field rec-wide">Task of the demonstration (empty: the instruction)
      <input type="text" class="rec-task" placeholder="put the red block on the plate"></label>
    <label id="rec-operator" class="rec-field">Operator<input type="text" class="rec-operator" placeholder="your name"></label>
    <label id="rec-target" class="rec-field rec-num">Target<input type="number" min="0" step="1" placeholder="none"></label>
    <label id="rec-countdown" class="rec-field rec-num">Countdown s<input type="number" min="0" max="600" step="0.5"></label>
    <label id="rec-reset" class="rec-field rec-num">Reset s<input type="number" min="0" max="600" step="1"></label>
    <label class="rec-check"><input type="checkbox" class="rec-auto"> next one after the reset</label>
  </div>
  <div class="rec-row">
    <button id="rec-start" class="rec-btn">Start recording</button>
    <button id="rec-success" class="rec-btn ok" title="S">✓ Save success <kbd>S</kbd></button>
    <button id="rec-failure" class="rec-btn bad" title="F">✗ Save failure <kbd>F</kbd></button>
    <button id="rec-save" class="rec-btn">Save unlabelled</button>
    <button id="rec-redo" class="rec-btn" title="Backspace">Discard &amp; redo <kbd>⌫</kbd></button>
    <button id="rec-discard" class="rec-btn">Discard</button>
    <label class="rec-check" title="S / F label episodes instead of jogging joints 2- / 4-">
      <input type="checkbox" class="rec-keys" checked> keys S / F / ⌫</label>
  </div>
  <div class="rec-state"><span id="rec-phase" class="rec-phase">connecting…</span>
    <span id="rec-progress" class="rec-progress"></span><span id="rec-last" class="rec-last"></span></div>
  <div id="rec-flag" class="rec-flag" hidden></div>
  <div id="rec-confirm" class="rec-confirm" hidden><span class="rec-confirm-text"></span>
    <button id="rec-confirm-yes" class="rec-btn bad">Save anyway <kbd>Enter</kbd></button>
    <button id="rec-confirm-no" class="rec-btn">Keep recording</button></div>
  <div id="rec-quality" class="rec-quality"></div>
  <label id="rec-notes" class="rec-field rec-wide">Notes on this episode (saved with it; S / F after saving add them)
    <textarea rows="2" placeholder="e.g. the cup slipped at the end"></textarea></label>
  <div id="rec-msg" class="rec-msg"></div>
  <div class="rec-help">S ✓ success · F ✗ failure (while recording: save with that label; otherwise: label the
    last saved episode) · Backspace: discard the open or last episode and record it again · not while typing
    in a text box. S and F jog joints 2− / 4− only with "keys" unticked.</div>
</div>"""

JS = script("recording.js")


def _named(fn: Callable, name: str) -> Callable:
    fn.__name__ = name            # Gradio routes server functions by __name__
    return fn


def _number(value, name: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}") from None


class RecordingPanel:
    def __init__(self, collection: CollectionSession, lock: OperatorLock, default_task: Callable[[], str]):
        """default_task: the task when the task box is empty (the console's instruction)."""
        self.collection = collection
        self.lock = lock
        self.default_task = default_task

    def status(self, session: str, task: str = "") -> dict:
        s = self.collection.status((task or "").strip() or self.collection.task or self.default_task())
        s["dataset"] = str(self.collection.recorder.root.resolve())
        s["operator_ok"] = bool(session) and self.lock.holder() == session
        return s

    def action(self, session: str, action: str, fields: dict | None) -> dict:
        fields = dict(fields or {})
        try:
            self.lock.require(session)
        except NotOperatorError as exc:
            return {"error": str(exc), "status": self.status(session)}
        if action not in ACTIONS:
            return {"error": f"unknown recording action {action!r}; known: {', '.join(ACTIONS)}",
                    "status": self.status(session)}
        c = self.collection
        task = str(fields.get("task") or "").strip()
        notes = str(fields.get("notes") or "")
        operator = str(fields.get("operator") or "").strip()
        result: dict = {}
        try:
            c.recorder.operator = operator
            target = fields.get("target")
            c.configure(countdown_s=_number(fields.get("countdown_s"), "countdown"),
                        reset_s=_number(fields.get("reset_s"), "reset"),
                        auto_next=None if fields.get("auto_next") is None else bool(fields["auto_next"]),
                        task=task or self.default_task() if action == "configure" else None,
                        target=(int(float(target)) if target not in (None, "") else 0) if action == "configure" else None)
            if action == "start":
                c.begin(task or self.default_task())
            elif action in ("success", "failure", "unlabelled"):
                result = c.verdict(action, notes=notes, operator=operator)
            elif action == "confirm":
                if c.confirm is None:
                    raise RuntimeError("nothing is waiting for confirmation")
                result = c.verdict(c.confirm["label"], notes=notes, operator=operator, confirmed=True)
            elif action == "cancel_confirm":
                c.cancel_confirm()
            elif action == "redo":
                result = {"dropped": c.discard_and_redo()}
            elif action == "discard":
                c.cancel()
        except (ValueError, RuntimeError, IndexError) as exc:
            return {"error": str(exc), "status": self.status(session, task)}
        except Exception as exc:  # noqa: BLE001 - disk full, writer broken: say it in the panel
            log.exception("recording action %s failed", action)
            return {"error": f"{action} failed: {exc}", "status": self.status(session, task)}
        return {"error": None, **result, "status": self.status(session, task)}

    def component(self) -> gr.HTML:
        def rec_status(args: ServerArgs) -> dict:
            session, task = server_args(args, 2, ("", ""))
            return self.status(str(session or ""), str(task or ""))

        def rec_action(args: ServerArgs) -> dict:
            session, action, fields = server_args(args, 3, ("", "", {}))
            return self.action(str(session or ""), str(action or ""), fields if isinstance(fields, dict) else {})

        c = self.collection.config
        defaults = json.dumps({"countdown_s": c.countdown_s, "reset_s": c.reset_s, "auto_next": c.auto_next})
        return gr.HTML(value="", html_template=TEMPLATE, js_on_load=JS,
                       server_functions=[_named(rec_status, "rec_status"), _named(rec_action, "rec_action")],
                       defaults=defaults, elem_id="ewam-recording")
