"""A data-collection session: countdown before recording, a timed reset phase, per-task targets
("40 of 50"), the operator's verdict (success / failure keys), confirmation before saving an
episode that broke a quality limit, discard-and-redo. Pure logic over a Recorder and a clock (no
Gradio), so the console's recording panel (app/recording_panel.py) only renders `status()` and
forwards keys and buttons.

Phases: idle -> countdown (countdown_s, then the recorder starts) -> recording -> (save) ->
reset (reset_s: the operator puts the scene back; the next countdown starts by itself when
auto_next) -> countdown ... `tick()` advances the phases; `start_ticker()` calls it from a thread
of its own every 0.1 s (or call it from any timer). Targets count the saved episodes of each task
already in the dataset plus those of this session, optionally only the successful ones
(count_only_success).

Threads: the console's handlers (Gradio's thread pool) and the ticker call in; one re-entrant
lock serialises them (the Recorder has its own lock for the control thread's ticks).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

log = logging.getLogger(__name__)

VERDICTS = ("success", "failure", "unlabelled")


@dataclass
class CollectionConfig:
    countdown_s: float = 3.0              # 0: record at once
    reset_s: float = 10.0                 # 0: no reset phase
    auto_next: bool = False               # start the next countdown when the reset timer ends
    targets: dict[str, int] = field(default_factory=dict)   # task -> episodes wanted
    count_only_success: bool = False
    confirm_flagged: bool = True          # saving an episode that broke a quality limit asks first


class CollectionSession:
    def __init__(self, recorder, config: CollectionConfig | None = None, clock: Callable[[], float] = time.monotonic):
        self.recorder = recorder
        self.config = config or CollectionConfig()
        self.clock = clock
        self.phase = "idle"
        self.task = ""
        self._lock = threading.RLock()
        self._deadline: float | None = None
        self._started_at: float | None = None
        self._counts: dict[str, int] = self._dataset_counts()
        self._saved: list[tuple[int, str]] = []          # (index, task) saved in this session
        self.confirm: dict | None = None                  # {"label", "flags"}: a flagged save waiting for a yes
        self.message = ""
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()

    def _dataset_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        try:
            from policy.episodes.reader import DatasetReader
            for e in DatasetReader(self.recorder.root).episodes:
                if not self.config.count_only_success or e.label == "success":
                    counts[e.task] = counts.get(e.task, 0) + 1
        except Exception:  # noqa: BLE001 - an empty or new dataset
            pass
        return counts

    # -- settings ----------------------------------------------------------------------------
    def configure(self, countdown_s: float | None = None, reset_s: float | None = None,
                  auto_next: bool | None = None, task: str | None = None, target: int | None = None) -> None:
        """From the panel's fields; target <= 0 removes the task's target."""
        with self._lock:
            for name, value in (("countdown_s", countdown_s), ("reset_s", reset_s)):
                if value is not None:
                    value = float(value)
                    if not 0 <= value <= 600:
                        raise ValueError(f"{name.replace('_s', '')} must be 0-600 seconds, got {value:g}")
                    setattr(self.config, name, value)
            if auto_next is not None:
                self.config.auto_next = bool(auto_next)
            task = (task or "").strip()
            if task and target is not None:
                if int(target) > 0:
                    self.config.targets[task] = int(target)
                else:
                    self.config.targets.pop(task, None)

    # -- operator actions ------------------------------------------------------------------
    def begin(self, task: str) -> None:
        """Record an episode of `task` after the countdown (at once when countdown_s is 0)."""
        task = (task or "").strip()
        if not task:
            raise ValueError("type the task of this demonstration first")
        with self._lock:
            if self.phase in ("countdown", "recording"):
                raise RuntimeError(f"already {self.phase}: save or discard first")
            if self.recorder.kind is not None:
                raise RuntimeError(f"a {self.recorder.kind} episode is being recorded: "
                                   + ("STOP ends the rollout" if self.recorder.kind == "policy" else "save or discard it"))
            self.task, self.confirm = task, None
            if self.config.countdown_s > 0:
                self.phase, self._deadline = "countdown", self.clock() + self.config.countdown_s
                self.message = f"recording '{task}' in {self.config.countdown_s:g} s"
            else:
                self._start_recording()

    def _start_recording(self) -> None:
        self.recorder.start(self.task, "teleop")
        self.phase, self._deadline, self._started_at = "recording", None, self.clock()
        self.message = f"recording '{self.task}'"

    def save(self, label: str | None = None, notes: str = "", operator: str | None = None) -> int:
        with self._lock:
            index = self.recorder.save(label=label, notes=notes, operator=operator)
            label = self.recorder.status().last_label
            self._saved.append((index, self.task))
            if not self.config.count_only_success or label == "success":
                self._counts[self.task] = self._counts.get(self.task, 0) + 1
            self.confirm, self._started_at = None, None
            self._enter_reset()
            self.message = f"episode {index} saved ({label or 'unlabelled'})"
            return index

    def verdict(self, label: str, notes: str = "", operator: str | None = None, confirmed: bool = False) -> dict:
        """The S / F keys (and their buttons): save the open teleop episode with this label, or,
        when none is open, label the last saved one. A flagged episode is only saved once
        confirmed (the same key again, or Save anyway). Returns {"saved"| "labelled"| "confirm"}."""
        if label not in VERDICTS:
            raise ValueError(f"label must be one of {', '.join(VERDICTS)}, got {label!r}")
        with self._lock:
            kind = self.recorder.kind
            if kind == "policy":
                raise RuntimeError("a policy rollout is recording: the sim's success check labels it when it "
                                   "ends (STOP); label it afterwards if you disagree")
            if kind == "teleop":
                quality = self.recorder.quality_status()
                flags = list(quality.get("flags", []))
                pending = self.confirm is not None and self.confirm["label"] == label
                if flags and self.config.confirm_flagged and not (confirmed or pending):
                    self.confirm = {"label": label, "flags": flags}
                    self.message = "this episode is flagged: confirm to save it anyway"
                    return {"confirm": flags}
                return {"saved": self.save(label, notes, operator)}
            # idle, reset or counting down to the next one: the verdict is on the last episode saved
            index = self.recorder.label_last(label, notes=(notes or None))
            if self.config.count_only_success and self._saved and self._saved[-1][0] == index:
                task = self._saved[-1][1]
                self._counts[task] = self._counts.get(task, 0) + (1 if label == "success" else 0)
            self.message = f"episode {index} labelled {label}"
            return {"labelled": index}

    def label_last(self, label: str) -> None:
        self.verdict(label)

    def cancel_confirm(self) -> None:
        with self._lock:
            self.confirm = None
            self.message = "still recording" if self.recorder.kind else ""

    def discard_and_redo(self) -> int | None:
        """Drop the open (or last saved) episode and count down to record the same task again."""
        with self._lock:
            if self.recorder.kind == "policy":
                raise RuntimeError("a policy rollout is recording: STOP ends it (it is saved and labelled), "
                                   "then discard-and-redo drops it")
            was_saved = self.phase not in ("countdown", "recording")
            if self.phase == "countdown":
                self.phase, self._deadline = "idle", None
                dropped = None
            else:
                dropped = self.recorder.discard_last()
            ours = False
            if dropped is not None and was_saved and self._saved and self._saved[-1][0] == dropped:
                _, task = self._saved.pop()
                self._counts[task] = max(self._counts.get(task, 1) - 1, 0)
                ours = True
            redo = self.task and (ours or not was_saved)     # a dropped policy rollout is not redone by hand
            self.phase, self.confirm = "idle", None
            if redo:
                self.begin(self.task)
            self.message = (f"episode {dropped} discarded" + (": redo it" if redo else "")) if dropped is not None \
                else ("countdown restarted" if redo else "nothing to discard")
            return dropped

    def cancel(self) -> None:
        with self._lock:
            if self.phase == "recording" and self.recorder.kind == "teleop":
                self.recorder.discard()
            self.phase, self._deadline, self.confirm = "idle", None, None
            self.message = "discarded"

    def _enter_reset(self) -> None:
        if self.config.reset_s > 0:
            self.phase, self._deadline = "reset", self.clock() + self.config.reset_s
        else:
            self.phase, self._deadline = "idle", None

    # -- time --------------------------------------------------------------------------------
    def tick(self) -> str:
        """Advance countdown / reset when their time is up; returns the phase."""
        with self._lock:
            if self.phase == "recording" and self.recorder.kind is None:   # stopped by an error
                self.phase, self.confirm = "idle", None
                self.message = self.recorder.status().error or "recording stopped"
            if self._deadline is not None and self.clock() >= self._deadline:
                if self.phase == "countdown":
                    try:
                        self._start_recording()
                    except Exception as exc:  # noqa: BLE001 - shown in the panel, not lost in a thread
                        self.phase, self._deadline = "idle", None
                        self.message = f"recording did not start: {exc}"
                elif self.phase == "reset":
                    self.phase, self._deadline = "idle", None
                    if self.config.auto_next and self.task and not self.target_reached(self.task):
                        try:
                            self.begin(self.task)
                        except Exception as exc:  # noqa: BLE001
                            self.message = f"next episode not started: {exc}"
            return self.phase

    def start_ticker(self, period_s: float = 0.1) -> None:
        if self._ticker is not None:
            return

        def run():
            while not self._stop.wait(period_s):
                try:
                    self.tick()
                except Exception:  # noqa: BLE001 - keep ticking; the panel shows recorder errors
                    log.exception("collection tick failed")

        self._ticker = threading.Thread(target=run, name="collection-ticker", daemon=True)
        self._ticker.start()

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=2)
            self._ticker = None

    def remaining_s(self) -> float | None:
        return None if self._deadline is None else max(self._deadline - self.clock(), 0.0)

    def count(self, task: str) -> int:
        return self._counts.get(task, 0)

    def target_reached(self, task: str) -> bool:
        target = self.config.targets.get(task)
        return target is not None and self.count(task) >= target

    def progress_text(self, task: str | None = None) -> str:
        task = task if task is not None else self.task
        target = self.config.targets.get(task)
        return f"{self.count(task)} of {target}" if target else f"{self.count(task)} recorded"

    def status(self, task: str | None = None) -> dict:
        """task: the task typed in the panel (its progress is shown before anything is recorded)."""
        with self._lock:
            remaining = self.remaining_s()
            task = (task or "").strip() or self.task
            rec = self.recorder.status()
            elapsed = None if self._started_at is None or self.phase != "recording" else self.clock() - self._started_at
            return {"phase": self.phase, "task": self.task, "remaining_s": None if remaining is None else round(remaining, 1),
                    "progress": self.progress_text(task) if task else "",
                    "target": self.config.targets.get(task) if task else None,
                    "targets": {t: {"done": self.count(t), "target": n} for t, n in self.config.targets.items()},
                    "saved_this_session": len(self._saved), "message": self.message,
                    "recording": rec.recording, "kind": rec.kind, "frames": rec.frames,
                    "elapsed_s": None if elapsed is None else round(elapsed, 1),
                    "last_saved": rec.last_saved, "last_label": rec.last_label, "error": rec.error,
                    "quality": {"ok": rec.quality_ok, "flags": rec.quality_flags, "figures": rec.quality},
                    "confirm": dict(self.confirm) if self.confirm else None,
                    "config": {"countdown_s": self.config.countdown_s, "reset_s": self.config.reset_s,
                               "auto_next": self.config.auto_next}}
