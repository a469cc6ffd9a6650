"""Model sizes and token layout: one dataclass, named presets.

Token arithmetic (per joint pass): condition grid = (H / s / p) x (W / s / p) tokens, where
s is the codec's spatial factor and p the patch size; future grid = `future_latent_frames` x
(H / s / p / f) x (W / s / p / f) with f = `future_downsample` (2 = the paper's low-res future);
action tokens = 1 state + H actions + registers.
  paper-1b : 384x320, s=16, p=2 -> 12x10 = 120 condition, 2 x 6x5 = 60 future, 21 action = 201.
  sim-tiny : 128x96,  s=8,  p=2 ->  8x6  =  48 condition, 2 x 4x3 = 24 future, 21 action =  93.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from hardware.aloha import CAMERA_NAMES as CAMERAS  # the aloha-agilex views every preset reads

SCENE_PREFIX = (
    "A dual-arm robot at a tabletop, seen from a head camera and two wrist cameras. Task: "
)


@dataclass(frozen=True)
class WAMConfig:
    name: str = "sim-tiny"
    # video expert (Wan-style blocks)
    video_layers: int = 4
    video_width: int = 128
    video_ffn: int = 512
    num_heads: int = 4                # shared attention space: num_heads x head_dim
    head_dim: int = 32
    # action expert (one block per video block)
    action_width: int = 128
    action_ffn: int = 512
    action_dim: int = 14              # [left 6, gripper, right 6, gripper]
    horizon: int = 16                 # H actions per chunk
    num_registers: int = 4
    # latents and tokens
    latent_channels: int = 16
    spatial_factor: int = 8           # codec pixels per latent cell
    temporal_factor: int = 4          # codec frames per latent frame (after the first)
    patch: tuple[int, int, int] = (1, 2, 2)
    condition_positions: bool = False  # a learned absolute position per condition token (VideoExpert)
    image_height: int = 128           # T-layout composite, HxW
    image_width: int = 96
    future_frames: int = 8            # every 2nd action of the chunk
    future_downsample: int = 2        # 2 = low-res future (paper), 1 = dense
    # text
    text_encoder: str = "minilm"      # "minilm" | "umt5"
    text_dim: int = 384
    text_len: int = 48                # tokens (scene prefix + instruction), zero-padded like Wan
    # conditioning / misc
    freq_dim: int = 256
    eps: float = 1e-6
    rope_theta: float = 10000.0
    codec: str = "tiny"               # "tiny" | "wan22"
    cameras: tuple[str, ...] = CAMERAS
    control_hz: float = 10.0
    scene_prefix: str = SCENE_PREFIX
    steps: tuple[int, int] = (2, 10)  # default [T_v, T_a]
    shift: float = 5.0

    def __post_init__(self):
        if self.video_width != self.num_heads * self.head_dim:
            raise ValueError(f"video_width ({self.video_width}) must equal num_heads*head_dim "
                             f"({self.num_heads}*{self.head_dim}): the action expert attends in that space")
        cell = self.spatial_factor * self.patch[1] * self.future_downsample
        if self.image_height % cell or self.image_width % cell:
            raise ValueError(
                f"image {self.image_height}x{self.image_width} must be divisible by "
                f"spatial_factor*patch*future_downsample = {cell}; pick another size in the preset")
        if self.future_frames % self.temporal_factor:
            raise ValueError(f"future_frames ({self.future_frames}) must be a multiple of "
                             f"temporal_factor ({self.temporal_factor})")

    # ---- derived sizes ------------------------------------------------------------
    @property
    def attn_dim(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def condition_grid(self) -> tuple[int, int, int]:
        s = self.spatial_factor * self.patch[1]
        return (1, self.image_height // s, self.image_width // s)

    @property
    def future_latent_frames(self) -> int:
        return self.future_frames // self.temporal_factor

    @property
    def future_image_size(self) -> tuple[int, int]:
        return (self.image_height // self.future_downsample, self.image_width // self.future_downsample)

    @property
    def future_latent_shape(self) -> tuple[int, int, int, int]:
        """(C, T, h, w) of the future latents the model denoises."""
        h, w = self.future_image_size
        return (self.latent_channels, self.future_latent_frames,
                h // self.spatial_factor, w // self.spatial_factor)

    @property
    def condition_latent_shape(self) -> tuple[int, int, int, int]:
        return (self.latent_channels, 1, self.image_height // self.spatial_factor,
                self.image_width // self.spatial_factor)

    @property
    def future_grid(self) -> tuple[int, int, int]:
        _, t, h, w = self.future_latent_shape
        return (t // self.patch[0], h // self.patch[1], w // self.patch[2])

    @property
    def num_action_tokens(self) -> int:
        return 1 + self.horizon + self.num_registers

    def token_counts(self) -> dict[str, int]:
        c, f = self.condition_grid, self.future_grid
        return {"condition": c[0] * c[1] * c[2], "future": f[0] * f[1] * f[2],
                "action": self.num_action_tokens}

    def replace(self, **changes) -> WAMConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> WAMConfig:
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(d) - set(known)
        if unknown:
            raise ValueError(f"unknown WAMConfig fields {sorted(unknown)}: checkpoint from a newer version?")
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**kw)


def _dense(c: WAMConfig) -> WAMConfig:
    """The paper's dense baseline: full-resolution future, [10, 10] steps."""
    return c.replace(name=c.name + "-dense", future_downsample=1, steps=(10, 10))


# sim-tiny: the sizes of the shipped checkpoint (assets/checkpoints/sim-tiny, trained on two CPU
# cores; a test keeps them equal), so that `--preset sim-tiny` and the benchmarks run the model the
# demo serves: 4 layers x 128 (4 heads x 32), FFN 512, action expert 128 wide, 2.3M params. At
# this size a pass is bound by per-op overhead, not FLOPs: the earlier 4 x 192 preset (3 heads x
# 64) ran RT 33-35 ms against 27-29 here (one thread, 2026-12-06).
SIM_TINY = WAMConfig()
# Teacher, dense: the paper's proportions (Wan 5B vs compact: 2.5x deeper, 1.5x the heads, FFN
# 4.7x its width, ~6x the video params): 10 x 192 (6 heads x 32), FFN 896.
# The action expert keeps its width but follows the teacher's depth and head space, as in the
# paper's "full Wan 5B in the same design" baseline.
SIM_TINY_TEACHER = SIM_TINY.replace(
    name="sim-tiny-teacher", video_layers=10, video_width=192, video_ffn=896, num_heads=6,
    future_downsample=1, steps=(10, 10))

PAPER_1B = WAMConfig(
    name="paper-1b", video_layers=12, video_width=2048, video_ffn=8192, num_heads=16, head_dim=128,
    action_width=768, action_ffn=3072, action_dim=14, horizon=16, num_registers=4,
    latent_channels=48, spatial_factor=16, temporal_factor=4, patch=(1, 2, 2),
    image_height=384, image_width=320, future_frames=8, future_downsample=2,
    text_encoder="umt5", text_dim=4096, text_len=512, codec="wan22")
# Wan2.2-TI2V-5B as the video expert: 30 x 3072, FFN 14336, 24 x 128 heads.
PAPER_1B_TEACHER = PAPER_1B.replace(
    name="paper-1b-teacher", video_layers=30, video_width=3072, video_ffn=14336, num_heads=24,
    future_downsample=1, steps=(10, 10))

PRESETS: dict[str, WAMConfig] = {
    "sim-tiny": SIM_TINY,
    "sim-tiny-dense": _dense(SIM_TINY),
    "sim-tiny-teacher": SIM_TINY_TEACHER,
    "paper-1b": PAPER_1B,
    "paper-1b-dense": _dense(PAPER_1B),
    "paper-1b-teacher": PAPER_1B_TEACHER,
}


def get_preset(name: str) -> WAMConfig:
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]
