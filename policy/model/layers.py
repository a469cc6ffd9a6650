"""Building blocks shared by the video and the action expert (Wan conventions, float32 math)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    """Wan's RMSNorm: statistics in float32, result cast back to the input dtype."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x.float(), (x.shape[-1],), self.weight.float(), self.eps).to(x.dtype)


class FP32LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 (Wan's norm1/norm2/norm3)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.float() if self.weight is not None else None
        b = self.bias.float() if self.bias is not None else None
        return F.layer_norm(x.float(), self.normalized_shape, w, b, self.eps).to(x.dtype)


def sinusoid(t: torch.Tensor, dim: int) -> torch.Tensor:
    """(N,) timesteps (already scaled to [0, 1000]) -> (N, dim) [cos | sin], float32 like Wan."""
    half = dim // 2
    freqs = torch.pow(10000.0, -torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def time_mlp(freq_dim: int, dim: int) -> nn.Sequential:
    """Wan's time_embedding: sinusoid(freq_dim) -> Linear, SiLU, Linear."""
    return nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))


def time_projection(dim: int, n_mod: int) -> nn.Sequential:
    """Wan's time_projection: SiLU, Linear(dim, n_mod * dim) -> adaLN inputs of every block."""
    return nn.Sequential(nn.SiLU(), nn.Linear(dim, n_mod * dim))


def mlp3(d_in: int, dim: int) -> nn.Sequential:
    """The paper's state/action embedding: a 3-layer SiLU MLP."""
    return nn.Sequential(nn.Linear(d_in, dim), nn.SiLU(), nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))


def ffn(dim: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: x * (1 + scale) + shift, one fused op."""
    return torch.addcmul(shift, x, 1 + scale)


def scale_offset(e: torch.Tensor) -> torch.Tensor:
    """(6, 1) offsets turning adaLN (shift, scale, gate, shift, scale, gate) into (.., 1 + scale, ..)
    so that each block modulates with one fused addcmul."""
    return torch.tensor([0.0, 1.0, 0.0, 0.0, 1.0, 0.0], device=e.device, dtype=e.dtype)[:, None]


def sincos_1d(n: int, dim: int) -> torch.Tensor:
    """Fixed 1-D sin-cos positions (n, dim) for the action tokens."""
    pos = torch.arange(n, dtype=torch.float32)
    half = dim // 2
    freqs = torch.pow(10000.0, -torch.arange(half, dtype=torch.float32) / half)
    args = pos[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


# ---- 3-D RoPE (Wan: head_dim split into t / h / w parts) -------------------------------------
def rope_split(head_dim: int) -> tuple[int, int, int]:
    s = head_dim // 6
    return head_dim - 4 * s, 2 * s, 2 * s


def rope_3d(grid: tuple[int, int, int], head_dim: int, theta: float = 10000.0,
            device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Tables (L, 1, head_dim) in float32 for a (t, h, w) grid indexed from 0: cos of each pair's
    angle repeated twice, and sin signed (-, +) per pair, ready for apply_rope."""
    parts = rope_split(head_dim)
    axes = []
    for n, d in zip(grid, parts):
        inv = 1.0 / theta ** (torch.arange(0, d, 2, device=device, dtype=torch.float32) / d)
        axes.append(torch.arange(n, device=device, dtype=torch.float32)[:, None] * inv[None])
    t, h, w = grid
    ang = torch.cat([
        axes[0][:, None, None, :].expand(t, h, w, -1),
        axes[1][None, :, None, :].expand(t, h, w, -1),
        axes[2][None, None, :, :].expand(t, h, w, -1),
    ], dim=-1).reshape(t * h * w, 1, head_dim // 2)
    sign = torch.tensor([-1.0, 1.0], device=device)
    cos = torch.cos(ang).repeat_interleave(2, dim=-1)
    sin = (torch.sin(ang)[..., None] * sign).flatten(-2)
    return cos, sin


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, L, heads, head_dim): each adjacent channel pair (x1, x2) rotated like Wan's complex
    product, (x1 cos - x2 sin, x2 cos + x1 sin), in float32, as x*cos + swap_pairs(x)*sin."""
    xf = x.float()
    swapped = xf.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)
    return torch.addcmul(xf * cos, swapped, sin).to(x.dtype)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(B, heads, Lq, d) x (B, heads, Lk, d) -> (B, Lq, heads*d). Unmasked."""
    out = F.scaled_dot_product_attention(q, k, v)
    return out.transpose(1, 2).flatten(2)


def xavier_(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

