"""Robot side of imagination surprise: keep the camera frames a chunk's imagined future stands for.

The policy imagines `future_frames` frames of each chunk, one every `stride` = chunk_length //
future_frames ticks after the chunk's observation (sim-tiny, paper: 8 frames, ticks 2, 4, ..., 16).
The robot side knows which frames the cameras then delivered; the server still holds the imagined
latents. So the client sends those frames (PolicyClient.surprise) once a chunk's are all in, from
a thread that is not the control loop, and the server compares them after any waiting infer.

Why the client sends them rather than the server keeping the next requests' observations: a
request carries one observation per chunk (taken when the queue runs low), but the codec encodes
the future in groups of 4 frames at 2-tick spacing, so it needs 8 frames per chunk, 7 of which no
request ever carries.

    frames = ImaginedFrames.for_policy(metadata)
    frames.open(chunk.chunk_id, obs_tick)        # when the chunk arrives (its observation tick)
    for done in frames.add(tick, images):        # every control tick, after the cameras are read
        client.surprise(done.chunk_id, done.steps, done.frames)   # off the control thread

A chunk arrives one to a few ticks after its observation (the request's latency), by which time
its first imagined steps have passed: `add` keeps copies of the last `lookback` ticks' frames
and `open` takes the steps already past from them. Without that, every chunk slower than one
stride (200 ms at 10 Hz, stride 2) never completed and had no surprise at all.
No torch, no zmq.
"""
from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

import numpy as np

from policy.wire.types import PolicyMetadata


@dataclass
class SeenFrames:
    chunk_id: int
    obs_tick: int
    steps: list[int] = field(default_factory=list)                   # ticks after the observation
    frames: dict[str, list[np.ndarray]] = field(default_factory=dict)


class ImaginedFrames:
    """Frames at the imagined steps of the last few chunks; `add` hands back chunks whose steps are all in."""

    def __init__(self, stride: int, count: int, max_open: int = 4, lookback: int | None = None,
                 cameras: tuple[str, ...] | None = None):
        """cameras: the views the policy needs (its metadata's camera_names). A step counts only
        when every one of them delivered a frame (a camera that failed that tick: the step is
        skipped, the chunk does not complete), so each camera's list has one frame per step.
        None: the cameras of the first frames taken, exactly."""
        if stride < 1 or count < 1:
            raise ValueError(f"ImaginedFrames needs stride >= 1 and count >= 1, got {stride}, {count}")
        self.stride, self.count, self.max_open = stride, count, max_open
        self.cameras = None if cameras is None else frozenset(cameras)
        self.lookback = stride * count // 2 if lookback is None else lookback   # ticks a chunk may arrive late
        self._open: OrderedDict[int, SeenFrames] = OrderedDict()
        self._recent: deque[tuple[int, dict[str, np.ndarray]]] = deque(maxlen=max(0, self.lookback))

    @classmethod
    def for_policy(cls, metadata: PolicyMetadata, max_open: int = 4) -> "ImaginedFrames | None":
        """None for a policy that imagines nothing (future_frames 0)."""
        if not metadata.future_frames:
            return None
        return cls(max(1, metadata.chunk_length // metadata.future_frames), metadata.future_frames, max_open,
                   cameras=tuple(metadata.camera_names) or None)

    @property
    def steps(self) -> list[int]:
        return [self.stride * (k + 1) for k in range(self.count)]

    def open(self, chunk_id: int, obs_tick: int) -> None:
        """A chunk whose observation was taken at obs_tick; steps already past come from the
        recent frames (a chunk older than `lookback` ticks cannot complete and is dropped at its end)."""
        seen = SeenFrames(int(chunk_id), int(obs_tick))
        self._open[seen.chunk_id] = seen
        for tick, images in self._recent:
            self._take(seen, tick, images, copy=False)       # already copies
        while len(self._open) > self.max_open:
            self._open.popitem(last=False)

    def add(self, tick: int, images: dict[str, np.ndarray]) -> list[SeenFrames]:
        """Frames read at `tick`; -> the chunks completed by them (removed from the open set)."""
        if self._recent.maxlen:
            images = {name: np.array(image) for name, image in images.items()}   # cameras may reuse buffers
            self._recent.append((int(tick), images))
        done = []
        for chunk_id, seen in list(self._open.items()):
            self._take(seen, tick, images, copy=not self._recent.maxlen)
            if tick - seen.obs_tick >= self.stride * self.count:
                del self._open[chunk_id]
                if len(seen.steps) == self.count:
                    done.append(seen)
        return done

    def _take(self, seen: SeenFrames, tick: int, images: dict[str, np.ndarray], copy: bool) -> None:
        step = tick - seen.obs_tick
        # Every step needs the same cameras: a camera missing at one step (it failed that tick) must
        # not leave it one frame short of the others (a request the server refuses).
        needed = self.cameras or (frozenset(seen.frames) if seen.frames else frozenset(images))
        if step > 0 and step % self.stride == 0 and step // self.stride <= self.count \
                and step not in seen.steps and needed <= set(images):
            seen.steps.append(step)
            for name in needed:
                seen.frames.setdefault(name, []).append(np.array(images[name]) if copy else images[name])

    def clear(self) -> None:
        self._open.clear()
        self._recent.clear()
