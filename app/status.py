"""What the status bar shows: the controller's status, the operator lock, recording, previews.

Flattened into a JSON-ready dict (the page script renders it) with every problem spelled out
in plain words under "errors", so that nothing important lives only in a terminal.
"""
from __future__ import annotations

import dataclasses
import time
from enum import Enum

import numpy as np

from app.session import OperatorLock


def percentile(values, q: float) -> float | None:
    values = [float(v) for v in values if v is not None and np.isfinite(v)]
    return round(float(np.percentile(values, q)), 1) if values else None


def _plain(value):
    """Dataclasses / enums / numpy -> JSON-ready values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return _plain(value.value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


class StatusView:
    def __init__(self, controller, lock: OperatorLock, recorder=None, previews=None):
        self.controller = controller
        self.lock = lock
        self.recorder = recorder
        self.previews = previews

    def controller_status(self):
        return self.controller.status()

    def mode(self) -> str:
        return str(_plain(self.controller_status().mode)).lower()

    def as_dict(self, session: str = "") -> dict:
        self.lock.seen(session)
        s = self.controller_status()
        latencies = list(getattr(s, "latency_history", None) or [])
        errors: list[str] = []
        if getattr(s, "last_error", None):
            errors.append(str(s.last_error))
        if not getattr(s, "server_connected", True):
            errors.append("The policy server is not answering: START will not move the robot. "
                          "Check the terminal running run_demo.py (the server may have crashed or still be loading).")
        safety = getattr(s, "safety", None)
        safety_text = "ok"
        if safety is not None:
            counts = [f"{name.replace('_', ' ')} {getattr(safety, name)}" for name in
                      ("rejected", "clipped", "rate_limited", "watchdog_holds") if getattr(safety, name, 0)]
            safety_text = ", ".join(counts) or "ok"
            if getattr(safety, "rejected", 0) and getattr(safety, "last_error", ""):
                errors.append(f"Safety layer: {safety.last_error}")
        recording = None
        if self.recorder is not None:
            rec = self.recorder.status()
            recording = _plain(rec)
            if rec.error:
                errors.append(rec.error)
        if self.previews is not None and self.previews.last_error:
            errors.append(self.previews.last_error)
        metadata = getattr(s, "policy_metadata", None)
        try:
            joints = [round(float(x), 4) for x in self.controller.arm.read_state().position]
        except Exception as exc:          # arm gone: say so rather than break the status bar
            joints = None
            errors.append(f"cannot read the arm's joints: {exc}")
        holder = self.lock.holder()
        return {
            "mode": str(_plain(s.mode)).lower(),
            "instruction": getattr(s, "instruction", ""),
            "chunk_count": getattr(s, "chunk_count", 0),
            "last_chunk_id": getattr(s, "last_chunk_id", None),
            "queue_length": getattr(s, "queue_length", 0),
            "latency_ms": {"last": round(latencies[-1], 1) if latencies else None,
                           "p50": percentile(latencies, 50), "p95": percentile(latencies, 95)},
            "stage_ms": _plain(getattr(s, "stage_ms", None) or {}),
            "server_connected": bool(getattr(s, "server_connected", False)),
            "preset": getattr(metadata, "preset", None),
            "safety": safety_text,
            "notice": getattr(s, "notice", ""),
            "holding": bool(getattr(s, "holding", False)),
            "tick_hz": round(float(getattr(s, "tick_hz", 0.0) or 0.0), 1),
            "operator": bool(session) and holder == session,
            "holder": holder is not None,
            "recording": recording,
            "joints": joints,
            "errors": errors,
            "time": time.time(),
        }
