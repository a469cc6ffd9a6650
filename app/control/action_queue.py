"""The action queue of policy mode: which actions of a chunk run, in which order, and what is committed.

Synchronous and thread-free: no clock and no thread of its own, so it can be driven (and
tested) tick by tick. The controller owns one and guards it with its lock.

Receding horizon. Of each chunk of H actions, `actions_per_chunk` (n) run, evenly spaced:
action ceil((k+1)H/n)-1 for k < n, so n = H runs them all and n = 4 of 16 runs actions
3, 7, 11, 15 (for robots ticking n/H as fast as the policy's rate). A chunk is computed from an
observation taken d actions ago (the queue kept executing while the server worked): those d
selected actions are in the past when it arrives and are skipped (at most all but the last).
Then the merge rule:
- "replace": the queue becomes the new chunk's remaining actions.
- "blend": over the overlap with what was still queued, action i is (1 - w_i) * old_i + w_i * new_i
  with w_i = (i + 1) / (overlap + 1), rising towards the new chunk; after the overlap, the new chunk.
- "rtc" (real-time chunking): the request carried the committed prefix (the actions executing from
  the observation's tick on, see the controller) and the server's sampler kept them as the chunk's
  first actions; the chunk already continues from the queue, so it replaces it.

Epochs: clear() (STOP, PAUSE, any mode change) empties the queue and starts a new epoch. A chunk
requested in an earlier epoch is stale and never enters the queue, however late it arrives.

The committed prefix, committed(k), is what will still execute during the next k ticks whatever
the next chunk says: the head of the queue. Real-time chunking sends it with the request.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

MERGE_RULES = ("replace", "blend", "rtc")
# The default everywhere (console, run_demo, evaluation, benchmarks): the rule that measured best live
# (app.tools.bench_live --browser, 20 held-out episodes per trained task, 2026-12-02: rtc 100%,
# p50 51 ms; replace 98.75%, 59 ms). Where rtc cannot apply (a server that ignores the prefix,
# or fewer actions run than each chunk holds) it is replace: the queue rule is the same.
DEFAULT_MERGE = "rtc"


def chunk_indices(horizon: int, n: int) -> np.ndarray:
    """Which of H actions run when n are executed, evenly spaced and ending at the last one."""
    n = min(n, horizon)
    return np.array([math.ceil((k + 1) * horizon / n) - 1 for k in range(n)])


def merge_actions(queued: list[np.ndarray], new: np.ndarray, rule: str) -> list[np.ndarray]:
    """The queue after a chunk arrives: `new` replaces `queued`, or blends into it over the overlap."""
    if rule in ("replace", "rtc") or not queued:
        return list(new)
    overlap = min(len(queued), len(new))
    merged = [(1 - (i + 1) / (overlap + 1)) * queued[i] + (i + 1) / (overlap + 1) * new[i] for i in range(overlap)]
    return merged + list(new[overlap:])


@dataclass
class QueuedAction:
    action: np.ndarray                   # (action_dim,) float64 joint target
    chunk_id: int                        # the chunk it came from


class ActionQueue:
    """The queued actions of the current chunk. Not thread-safe: the owner serialises calls."""

    def __init__(self, actions_per_chunk: int, merge: str = DEFAULT_MERGE):
        if merge not in MERGE_RULES:
            raise ValueError(f"merge rule is {merge!r}; use one of {', '.join(MERGE_RULES)}")
        if actions_per_chunk < 1:
            raise ValueError("actions_per_chunk must be at least 1")
        self.actions_per_chunk = actions_per_chunk
        self.merge = merge
        self._items: deque[QueuedAction] = deque()
        self._executed = 0                   # actions popped since the queue was made
        self._epoch = 0
        self._action_dim = 0

    def __len__(self) -> int:
        """How many actions are left: the caller requests the next chunk when this runs low."""
        return len(self._items)

    @property
    def executed(self) -> int:
        """Actions popped so far (never reset): note it with an observation, to know d later."""
        return self._executed

    @property
    def epoch(self) -> int:
        """Bumped by clear(); note it with a request, pass it back to add_chunk."""
        return self._epoch

    def select(self, actions: np.ndarray) -> np.ndarray:
        """The actions_per_chunk evenly spaced actions of a chunk that run, as float64."""
        actions = np.asarray(actions, dtype=np.float64)
        return actions[chunk_indices(len(actions), self.actions_per_chunk)]

    def add_chunk(self, actions: np.ndarray, chunk_id: int, executed_since: int = 0,
                  epoch: int | None = None) -> int | None:
        """Merge a chunk (H, action_dim) whose observation was taken `executed_since` actions ago.

        Returns how many selected actions were skipped as already past, or None when the chunk is
        stale (requested in an earlier epoch than the current one) and was dropped."""
        if epoch is not None and epoch != self._epoch:
            return None
        selected = self.select(actions)
        skipped = max(0, min(int(executed_since), len(selected) - 1))
        queued = [item.action for item in self._items]
        merged = merge_actions(queued, selected[skipped:], self.merge)
        self._items = deque(QueuedAction(a, chunk_id) for a in merged)
        self._action_dim = selected.shape[1] if selected.ndim == 2 else self._action_dim
        return skipped

    def pop(self) -> QueuedAction | None:
        """The action of this tick (None when the queue is empty: the arm holds)."""
        if not self._items:
            return None
        self._executed += 1
        return self._items.popleft()

    def committed(self, k: int) -> np.ndarray:
        """The actions that will still execute during the next k ticks, (min(k, len), action_dim)."""
        head = [item.action for item, _ in zip(self._items, range(max(0, int(k))))]
        return np.array(head, dtype=np.float64) if head else np.empty((0, self._action_dim), np.float64)

    def clear(self) -> None:
        """STOP / PAUSE / mode change: nothing queued runs, and replies in flight become stale."""
        self._items.clear()
        self._epoch += 1
