"""Which queued request the policy server's worker runs next.

Per-client FIFO queues served round-robin, so one busy robot cannot starve another; inference
before previews (the arm waits on actions, people wait on pictures), except that a preview
which has waited `preview_max_wait_s` goes next, so previews never starve either.

Batching (get_batch, max_batch > 1): with the next infer job come the oldest infer jobs of the
other clients that are already queued, at most one per client (each client's requests stay in
order) and max_batch in all. Only what is pending now: nothing ever waits for a batch to fill,
so a lone robot's request runs exactly as without batching. Jobs of the openpi / XPolicyLab
endpoints (`execute` set) run alone.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Callable

from policy.wire.protocol import Message


@dataclass
class Job:
    identity: bytes
    msg: Message
    received: float                       # time.perf_counter() on arrival
    payload: object = None                # Observation for infer, chunk id for preview
    # Jobs from the openpi / XPolicyLab endpoints (policy.serving.ws_bridge): the worker calls
    # execute(queue_ms) instead of answering over ZeroMQ; it runs the runner and hands back the result.
    execute: Callable[[float], None] | None = None


class FairScheduler:
    """Per-client FIFO queues served round-robin; infer before preview (bounded wait for previews)."""

    def __init__(self, max_pending_per_client: int = 4, preview_max_wait_s: float = 0.5):
        self.max_pending_per_client = max_pending_per_client
        self.preview_max_wait_s = preview_max_wait_s
        # kind -> client identity -> its queued jobs; dict order is the round-robin order
        self._queues: dict[str, OrderedDict[bytes, deque[Job]]] = {"infer": OrderedDict(), "preview": OrderedDict()}
        self._cond = threading.Condition()
        self._closed = False

    def pending(self, identity: bytes | None = None) -> int:
        with self._cond:
            return sum(len(q) for queues in self._queues.values() for ident, q in queues.items()
                       if identity is None or ident == identity)

    def put(self, job: Job) -> bool:
        with self._cond:   # a re-entrant lock: pending() may take it again
            if self.pending(job.identity) >= self.max_pending_per_client:
                return False
            kind = "infer" if job.msg.type == "infer" else "preview"   # familiarity, surprise: as previews
            self._queues[kind].setdefault(job.identity, deque()).append(job)
            self._cond.notify()
        return True

    def get(self, timeout: float) -> Job | None:
        batch = self.get_batch(timeout, 1)
        return batch[0] if batch else None

    def get_batch(self, timeout: float, max_batch: int) -> list[Job]:
        """The next job (as get()), and with an infer job up to max_batch - 1 more (module docstring);
        [] on timeout or close."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._closed or any(self._queues.values()), timeout):
                return []
            if self._closed:
                return []
            infer, preview = self._queues["infer"], self._queues["preview"]
            oldest_preview = min((q[0].received for q in preview.values()), default=None)
            late = oldest_preview is not None and time.perf_counter() - oldest_preview > self.preview_max_wait_s
            queues = preview if (late or not infer) else infer
            identity, queue = next(iter(queues.items()))
            batch = [self._pop(queues, identity)]
            if queues is infer and batch[0].execute is None:
                for other in list(infer):                  # round-robin order; the first went to the back
                    if len(batch) >= max_batch or other == identity:
                        break
                    if infer[other][0].execute is None:
                        batch.append(self._pop(infer, other))
            return batch

    @staticmethod
    def _pop(queues: OrderedDict[bytes, deque[Job]], identity: bytes) -> Job:
        queue = queues[identity]
        job = queue.popleft()
        if queue:
            queues.move_to_end(identity)   # round-robin: this client goes behind the others
        else:
            del queues[identity]
        return job

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
