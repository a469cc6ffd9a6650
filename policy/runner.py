"""What a policy server serves: the interface between a model and the wire.

The model side (policy.model, torch) implements PolicyRunner; policy.server wraps any
PolicyRunner in ZeroMQ. This file imports no torch so that app/ can share the types.
"""
from __future__ import annotations

import abc
from dataclasses import asdict, dataclass, field

import numpy as np

PROTOCOL_VERSION = 1


@dataclass
class PolicyMetadata:
    """Answered by `hello`: everything a client needs to drive a robot with this policy."""
    preset: str                              # "sim-tiny", "paper-1b", ...
    action_dim: int                          # 14 for the dual-arm aloha-agilex layout
    chunk_length: int                        # H actions per chunk
    camera_names: list[str]                  # ["head", "left_wrist", "right_wrist"]
    image_sizes: dict[str, list[int]]        # camera -> [height, width] the policy expects
    control_hz: float                        # rate the actions were trained at
    scene_prefix: str                        # fixed text prepended to every instruction
    future_frames: int = 0                   # frames in a decoded preview
    preview_size: list[int] = field(default_factory=lambda: [0, 0])  # [height, width]
    steps: list[int] = field(default_factory=lambda: [2, 10])        # [T_v, T_a]
    protocol_version: int = PROTOCOL_VERSION

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PolicyMetadata":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class Observation:
    images: dict[str, np.ndarray]            # camera -> HxWx3 uint8 RGB
    state: np.ndarray                        # (action_dim,) float32, measured joint positions
    instruction: str                         # without the scene prefix


@dataclass
class ActionChunk:
    actions: np.ndarray                      # (H, action_dim) float32 absolute joint targets
    chunk_id: int                            # server-assigned; used to ask for its preview
    timings_ms: dict[str, float] = field(default_factory=dict)  # e.g. {"inference": 80.1}


class PolicyRunner(abc.ABC):
    """A model ready to act. Implementations own their device and their caches."""

    @property
    @abc.abstractmethod
    def metadata(self) -> PolicyMetadata: ...

    @abc.abstractmethod
    def infer(self, obs: Observation) -> ActionChunk:
        """Sample one action chunk. Must not decode video: that is `preview`'s job."""

    @abc.abstractmethod
    def preview(self, chunk_id: int) -> np.ndarray:
        """Decode the imagined future of a recent chunk: (T, h, w, 3) uint8 RGB.

        Raises KeyError if the chunk is unknown or too old (runners keep the last few)."""
