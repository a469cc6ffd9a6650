"""Knowing when the policy is lost: the scores a runner answers `familiarity` and `surprise` with.

- Instruction familiarity (before START), two tests, both against the instructions the
  checkpoint was trained on (its config.json `training.instructions`):
  1. similarity: the instruction's embedding in the policy's own text space (its text encoder,
     mean-pooled over the instruction's own tokens, no scene prefix), cosine to the nearest
     training instruction, at least `familiarity_threshold`;
  2. slots (policy.serving.instruction_slots): every colour and object it names was taught, in
     that colour-object pair and in that role ("The policy was never taught the colour "orange"").
  Familiar = an exact training instruction, or both tests pass. The reply carries the reasons in
  words and the parsed mentions, so the console can add the scene test (policy.wire.familiarity:
  "There is no orange block on the table") and ask for a second click.
- Imagination surprise (while running): mean squared difference, in the codec's normalised latent
  space (~N(0, 1) per channel), between the future latents the policy imagined for a chunk and the
  codec's encoding of the frames the cameras then delivered at the imagined steps. A state in plain
  words: "on track" below `surprised`, "surprised" below `lost`, else "lost".

Thresholds are calibrated per checkpoint by `python -m policy.evaluation.monitors --calibrate`
and stored in the checkpoint directory as monitors.json; without one the defaults below (measured
on the shipped sim-tiny checkpoint) apply. numpy only: both runners use it.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from policy.serving.instruction_slots import SlotIndex

MONITORS_FILE = "monitors.json"
FAMILIARITY_METHOD = ("nearest training instruction, cosine of mean-pooled text-encoder tokens; "
                      "taught colours, objects, pairs and roles")


@dataclass
class MonitorThresholds:
    familiarity: float = 0.76          # cosine to the nearest training instruction
    surprised: float = 0.15            # latent MSE of one chunk
    lost: float = 0.30

    @classmethod
    def load(cls, checkpoint_dir: str | Path | None) -> "MonitorThresholds":
        if checkpoint_dir is None or not (Path(checkpoint_dir) / MONITORS_FILE).exists():
            return cls()
        d = json.loads((Path(checkpoint_dir) / MONITORS_FILE).read_text()).get("thresholds", {})
        return cls(**{k: float(d[k]) for k in cls.__dataclass_fields__ if k in d})

    def to_dict(self) -> dict:
        return asdict(self)


def surprise_state(value: float, thresholds: MonitorThresholds) -> str:
    if not np.isfinite(value):
        return "unknown"
    if value >= thresholds.lost:
        return "lost"
    return "surprised" if value >= thresholds.surprised else "on track"


def normalise(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


class FamiliarityIndex:
    """The training instructions' embeddings (unit rows), what they name (SlotIndex), and the
    threshold to judge a new instruction by."""

    def __init__(self, instructions: list[str], embeddings: np.ndarray, threshold: float,
                 method: str = FAMILIARITY_METHOD, nearest: int = 2):
        if len(instructions) != len(embeddings) or not len(instructions):
            raise ValueError("FamiliarityIndex needs one embedding per training instruction, and at least one")
        self.instructions, self.embeddings = list(instructions), normalise(embeddings)
        self.threshold, self.method, self.nearest = float(threshold), method, nearest
        self.slots = SlotIndex(self.instructions)
        self._exact = {i.strip().lower() for i in self.instructions}

    def score(self, instruction: str, embedding: np.ndarray) -> dict:
        """{"score", "cosine", "threshold", "similar", "familiar", "reason" (None when familiar),
        "reasons", "mentions", "typos", "nearest", "method"}."""
        sims = self.embeddings @ normalise(embedding)
        order = np.argsort(-sims)[:self.nearest]
        cosine = float(sims[order[0]])
        exact = instruction.strip().lower() in self._exact
        similar = bool(exact or cosine >= self.threshold)
        check = self.slots.check(instruction)
        reasons = [] if exact else list(check.reasons)
        if not similar:
            reasons.append(f"Not like anything the policy was taught (similarity {cosine:.2f} < {self.threshold:.2f}).")
        return {"instruction": instruction, "score": float(np.clip(cosine, 0.0, 1.0)), "cosine": cosine,
                "threshold": self.threshold, "similar": similar, "familiar": not reasons,
                "reason": reasons[0] if reasons else None, "reasons": reasons,
                "mentions": [m.to_dict() for m in check.mentions], "typos": check.words,
                "nearest": [{"instruction": self.instructions[i], "similarity": round(float(sims[i]), 4)}
                            for i in order],
                "method": self.method}


def bag_of_words(text: str, dim: int = 256) -> np.ndarray:
    """A deterministic stand-in embedding (hashed word counts), for the numpy testing runner."""
    import zlib
    v = np.zeros(dim)
    for word in text.lower().replace(",", " ").split():
        v[zlib.crc32(word.encode()) % dim] += 1.0
    return v
