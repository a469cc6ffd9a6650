"""Building blocks shared by the video and the action expert (Wan conventions, float32 math).

Hot-path rule: nothing here creates a tensor from Python data at call time (no torch.tensor(...,
device=...)): constants are buffers made once at construction, so a sampling loop issues no
host-to-device copy and no host sync and can be captured in a CUDA graph.
"""
from __future__ import annotations

import contextlib

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
        if x.dtype == torch.float32 and self.weight.dtype == torch.float32:     # no cast ops at all
            return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)
        return F.rms_norm(x.float(), (x.shape[-1],), self.weight.float(), self.eps).to(x.dtype)


class FP32LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 (Wan's norm1/norm2/norm3)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.weight, self.bias
        if x.dtype == torch.float32 and (w is None or w.dtype == torch.float32) \
                and (b is None or b.dtype == torch.float32):                     # no cast ops at all
            return F.layer_norm(x, self.normalized_shape, w, b, self.eps)
        w = w.float() if w is not None else None
        b = b.float() if b is not None else None
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


class GELUTanh(nn.GELU):
    """GELU, tanh approximation (Wan's FFN). At inference on the CPU, torch's tanh-GELU kernel is
    slower than the same function written as x * sigmoid(2u) (0.5 (1 + tanh u) = sigmoid 2u; equal
    to float rounding, ~5e-7) for video-sized activations; training and other devices use the kernel."""

    def __init__(self):
        super().__init__(approximate="tanh")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or torch.is_grad_enabled() or x.numel() < 16384 or x.dtype != torch.float32:
            return F.gelu(x, approximate="tanh")
        return gelu_tanh_cpu(x, inplace=False)


_GELU_C0 = 2.0 * 0.7978845608028654          # 2 sqrt(2/pi)
_GELU_C1 = _GELU_C0 * 0.044715


def gelu_tanh_cpu(x: torch.Tensor, inplace: bool) -> torch.Tensor:
    """tanh-GELU as x * sigmoid(2 sqrt(2/pi) (x + 0.044715 x^3)): 5 elementwise ops, one buffer.
    inplace=True overwrites x (a fresh activation nobody else holds)."""
    z = (x * x).mul_(_GELU_C1).add_(_GELU_C0).mul_(x).sigmoid_()
    return x.mul_(z) if inplace else z.mul_(x)


def gelu_tanh_(x: torch.Tensor) -> torch.Tensor:
    """Inference GELU (tanh) that may overwrite its input: the CPU float32 form above for large
    activations, torch's kernel elsewhere (one fused kernel on CUDA)."""
    if x.device.type == "cpu" and x.dtype == torch.float32 and x.numel() >= 16384:
        return gelu_tanh_cpu(x, inplace=True)
    return F.gelu(x, approximate="tanh")


def ffn(dim: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, hidden), GELUTanh(), nn.Linear(hidden, dim))


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: x * (1 + scale) + shift, one fused op."""
    return torch.addcmul(shift, x, 1 + scale)


MOD_OFFSET = (0.0, 1.0, 0.0, 0.0, 1.0, 0.0)


def mod_offset() -> torch.Tensor:
    """(6, 1) offsets turning adaLN (shift, scale, gate, shift, scale, gate) into (.., 1 + scale, ..)
    so that each block modulates with one fused addcmul. Made once, at construction, and kept as a
    non-persistent buffer (it moves with the module; it is not in any checkpoint)."""
    return torch.tensor(MOD_OFFSET)[:, None]


def fp32_island(x: torch.Tensor):
    """A float32 region inside bf16 autocast: Wan computes its time embeddings, time projection,
    modulation and output head in float32. A no-op when autocast is off."""
    kind = x.device.type
    if kind in ("cuda", "cpu") and torch.is_autocast_enabled(kind):
        return torch.autocast(kind, enabled=False)
    return contextlib.nullcontext()


def sincos_1d(n: int, dim: int) -> torch.Tensor:
    """Fixed 1-D sin-cos positions (n, dim) for the action tokens."""
    pos = torch.arange(n, dtype=torch.float32)
    half = dim // 2
    freqs = torch.pow(10000.0, -torch.arange(half, dtype=torch.float32) / half)
    args = pos[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


def sincos_2d(height: int, width: int, dim: int) -> torch.Tensor:
    """Fixed 2-D sin-cos positions (height * width, dim) of a row-major token grid: rows in the
    first half of the channels, columns in the second; centred over the grid, so a channel too
    slow to vary across it adds nothing rather than a constant."""
    rows = sincos_1d(height, dim // 2)[:, None].expand(height, width, -1)
    cols = sincos_1d(width, dim // 2)[None].expand(height, width, -1)
    table = torch.cat([rows, cols], dim=-1).reshape(height * width, dim)
    return table - table.mean(0)


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


def rope_complex(cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """rope_3d's (cos, sin) tables -> (L, 1, head_dim / 2) complex64 rotations (Wan's form)."""
    return torch.complex(cos[..., ::2].contiguous(), sin[..., 1::2].contiguous())


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor | None = None) -> torch.Tensor:
    """x (B, L, heads, head_dim): each adjacent channel pair (x1, x2) rotated like Wan's complex
    product, (x1 cos - x2 sin, x2 cos + x1 sin), in float32. `cos` complex (rope_complex): one
    complex multiply; else cos/sin tables, as x*cos + swap_pairs(x)*sin."""
    xf = x.float()
    if sin is None:
        rotated = torch.view_as_complex(xf.unflatten(-1, (-1, 2))) * cos
        return torch.view_as_real(rotated).flatten(-2).to(x.dtype)
    swapped = xf.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)
    return torch.addcmul(xf * cos, swapped, sin).to(x.dtype)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(B, heads, Lq, d) x (B, heads, Lk, d) -> (B, Lq, heads*d). Unmasked."""
    out = F.scaled_dot_product_attention(q, k, v)
    return out.transpose(1, 2).flatten(2)


# ---- inference packs: weights laid out once for the sampling loop ----------------------------
LinearPack = tuple[torch.Tensor, torch.Tensor | None]      # (weight (out, in), bias)


RELAYOUT_MAX_NUMEL = 1 << 20     # larger weights keep their layout: no second copy of a big model


def pack_linear(weight: torch.Tensor, bias: torch.Tensor | None) -> LinearPack:
    """A Linear's weight for the sampling loop. On the CPU a small weight is stored column-major
    once (the same (out, in) tensor, laid out as its transpose): F.linear then hands MKL a
    row-major (in, out) matrix, and the small-row matmuls of the sampling loop run up to 2x
    faster (21 x 512 x 128: 42 -> 21 us). Elsewhere, and for weights above RELAYOUT_MAX_NUMEL, the
    weight itself (no extra memory: a GPU, or paper-1b on a CPU)."""
    w = weight.detach()
    if w.device.type == "cpu" and w.numel() <= RELAYOUT_MAX_NUMEL:
        w = w.t().contiguous().t()
    return w, (None if bias is None else bias.detach())


def as_dtype(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """x.to(dtype) without a dispatcher call when it already is (the CPU loop is op-bound)."""
    return x if x.dtype == dtype else x.to(dtype)


def linear_t(x: torch.Tensor, pack: LinearPack) -> torch.Tensor:
    """x (..., in) -> (..., out) with a pack_linear weight."""
    return F.linear(x, pack[0], pack[1])


def norm_modulate(x: torch.Tensor, shift: torch.Tensor, scale1: torch.Tensor, eps: float) -> torch.Tensor:
    """adaLN after an affine-free float32 LayerNorm: LN(x) * scale1 + shift (scale1 = 1 + scale).
    When shift/scale are one row (B = 1, one per channel) they are the LayerNorm's own affine:
    one op instead of two, the same numbers to float rounding."""
    d = x.shape[-1]
    if x.dtype == torch.float32 and shift.numel() == d and scale1.numel() == d \
            and shift.dtype == torch.float32 and scale1.dtype == torch.float32:
        return F.layer_norm(x, (d,), scale1.reshape(d), shift.reshape(d), eps)
    return torch.addcmul(shift, as_dtype(F.layer_norm(as_dtype(x, torch.float32), (d,), None, None, eps), x.dtype),
                         scale1)


def xavier_(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

