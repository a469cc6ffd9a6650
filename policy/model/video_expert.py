"""The video expert: Wan2.2-style DiT blocks over condition + future latent tokens.

Module and parameter names follow the official Wan2.2 code (blocks.N.self_attn.q, norm3,
modulation, head.head, ...) so that policy.training.wan_transfer maps teacher weights by slicing alone.
The attention itself is run by policy.model.wam, which joins video and action tokens per layer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from policy.model.config import WAMConfig
from policy.model.layers import (
    FP32LayerNorm,
    RMSNorm,
    apply_rope,
    as_dtype,
    attention,
    ffn,
    LinearPack,
    fp32_island,
    gelu_tanh_,
    linear_t,
    mod_offset,
    modulate,
    norm_modulate,
    pack_linear,
    rope_3d,
    rope_complex,
    sincos_2d,
    sinusoid,
    time_mlp,
    time_projection,
    xavier_,
)


@dataclass
class AttnPack:
    """A self- (or cross-) attention laid out for inference (EfficientWAM.inference_pack)."""
    qkv: LinearPack              # [q; k; v] (cross-attention: q alone), transposed once
    norm: torch.Tensor           # q/k RMSNorm weights, (2, attn) float32 (cross: (attn,))
    o: LinearPack


def pack_ffn(ffn: nn.Sequential) -> tuple[LinearPack, LinearPack]:
    return pack_linear(ffn[0].weight, ffn[0].bias), pack_linear(ffn[2].weight, ffn[2].bias)


def ffn_packed(x: torch.Tensor, pack: tuple[LinearPack, LinearPack]) -> torch.Tensor:
    """Linear -> tanh-GELU (in place on the fresh hidden activation) -> Linear."""
    return linear_t(gelu_tanh_(linear_t(x, pack[0])), pack[1])


class SelfAttention(nn.Module):
    def __init__(self, dim: int, attn_dim: int, num_heads: int, eps: float):
        super().__init__()
        self.num_heads = num_heads
        self.q, self.k, self.v = (nn.Linear(dim, attn_dim) for _ in range(3))
        self.o = nn.Linear(attn_dim, dim)
        # q/k RMSNorm across all heads (Wan's "rms_norm_across_heads")
        self.norm_q, self.norm_k = RMSNorm(attn_dim, eps), RMSNorm(attn_dim, eps)
        self._fused_key, self._fused = None, None

    def fused_qkv(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """[q; k; v] weights and biases in one matrix and the q/k norm weights stacked (2, attn),
        for inference: one matmul and one q/k norm instead of three and two. Rebuilt whenever a
        weight changes (in-place updates bump its version) or moves."""
        params = (self.q.weight, self.k.weight, self.v.weight, self.q.bias, self.k.bias, self.v.bias,
                  self.norm_q.weight, self.norm_k.weight)
        if torch.compiler.is_compiling():   # traced: a graph of the concatenation (freezing folds it)
            return torch.cat(params[:3]), torch.cat(params[3:6]), torch.stack(params[6:]).float()
        key = tuple((p._version, p.data_ptr(), p.dtype, p.device) for p in params)
        if key != self._fused_key:
            with torch.no_grad():
                self._fused = (torch.cat(params[:3]), torch.cat(params[3:6]),
                               torch.stack(params[6:]).float())
            self._fused_key = key
        return self._fused

    def pack(self) -> AttnPack:
        w, b, norm_w = self.fused_qkv()
        return AttnPack(pack_linear(w, b), norm_w, pack_linear(self.o.weight, self.o.bias))

    def _unfused(self) -> bool:
        """Training (autograd through each Linear) or meta: the plain three-Linear path. A traced
        (torch.compile) pass takes the fused one: one matmul instead of three in the graph."""
        return (torch.is_grad_enabled() and self.q.weight.requires_grad) or self.q.weight.device.type == "meta"

    def qkv(self, x: torch.Tensor, rope: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None = None,
            pack: AttnPack | None = None):
        """x (B, L, dim) -> q, k, v (B, heads, L, head_dim); q/k normed and (optionally) rotated.
        rope: VideoExpert.rope's complex rotations (or a (cos, sin) pair). pack: this module's
        AttnPack (inference): the same numbers from weights laid out once."""
        if pack is not None:
            return self._qkv_packed(x, rope, pack)
        if not self._unfused():
            return self._qkv_fused(x, rope)
        q = self.norm_q(self.q(x)).unflatten(-1, (self.num_heads, -1))
        k = self.norm_k(self.k(x)).unflatten(-1, (self.num_heads, -1))
        v = self.v(x).unflatten(-1, (self.num_heads, -1))
        if rope is not None:
            rope = (rope,) if isinstance(rope, torch.Tensor) else rope
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)

    def _qkv_fused(self, x, rope):
        """The same numbers with fewer ops: one projection, q and k RMS-normed together (float32,
        like RMSNorm) and rotated together."""
        w, b, norm_w = self.fused_qkv()
        out = F.linear(x, w, b)
        a = out.shape[-1] // 3
        qk = out[..., :2 * a].unflatten(-1, (2, a)).float()                     # (B, L, 2, attn)
        inv = qk.square().mean(-1, keepdim=True).add_(self.norm_q.eps).rsqrt_()
        qk = (qk * inv).mul_(norm_w).to(out.dtype).unflatten(-1, (self.num_heads, -1))   # (B, L, 2, H, d)
        if rope is not None:
            if isinstance(rope, torch.Tensor):
                rotated = torch.view_as_complex(qk.float().unflatten(-1, (-1, 2))) * rope.unsqueeze(1)
                qk = torch.view_as_real(rotated).flatten(-2).to(out.dtype)
            else:
                qk = torch.stack([apply_rope(qk[:, :, 0], *rope), apply_rope(qk[:, :, 1], *rope)], dim=2)
        v = out[..., 2 * a:].unflatten(-1, (self.num_heads, -1))
        return qk[:, :, 0].transpose(1, 2), qk[:, :, 1].transpose(1, 2), v.transpose(1, 2)


    def _qkv_packed(self, x, rope, pack: AttnPack):
        """_qkv_fused with a transposed weight and torch's fused RMSNorm (float32, like RMSNorm)."""
        out = linear_t(x, pack.qkv)
        a = out.shape[-1] // 3
        qk = out[..., :2 * a].unflatten(-1, (2, a))                             # (B, L, 2, attn)
        qk = F.rms_norm(as_dtype(qk, torch.float32), (a,), None, self.norm_q.eps).mul_(pack.norm)
        if rope is not None and isinstance(rope, torch.Tensor):                  # rotate in float32
            rotated = torch.view_as_complex(qk.unflatten(-1, (self.num_heads, -1, 2))) * rope.unsqueeze(1)
            qk = as_dtype(torch.view_as_real(rotated).flatten(-2), out.dtype)  # (B, L, 2, H, d)
        else:
            qk = as_dtype(qk, out.dtype).unflatten(-1, (self.num_heads, -1))
            if rope is not None:
                qk = torch.stack([apply_rope(qk[:, :, 0], *rope), apply_rope(qk[:, :, 1], *rope)], dim=2)
        v = out[..., 2 * a:].unflatten(-1, (self.num_heads, -1))
        return qk[:, :, 0].transpose(1, 2), qk[:, :, 1].transpose(1, 2), v.transpose(1, 2)


class CrossAttention(SelfAttention):
    def text_kv(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.norm_k(self.k(context)).unflatten(-1, (self.num_heads, -1)).transpose(1, 2)
        v = self.v(context).unflatten(-1, (self.num_heads, -1)).transpose(1, 2)
        return k, v

    def pack(self) -> AttnPack:
        return AttnPack(pack_linear(self.q.weight, self.q.bias), self.norm_q.weight.detach().float(),
                        pack_linear(self.o.weight, self.o.bias))

    def forward(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor],
                pack: AttnPack | None = None) -> torch.Tensor:
        if pack is not None:
            q = linear_t(x, pack.qkv)
            q = as_dtype(F.rms_norm(as_dtype(q, torch.float32), (q.shape[-1],), pack.norm, self.norm_q.eps), q.dtype)
            return linear_t(attention(q.unflatten(-1, (self.num_heads, -1)).transpose(1, 2), *kv), pack.o)
        q = self.norm_q(self.q(x)).unflatten(-1, (self.num_heads, -1)).transpose(1, 2)
        return self.o(attention(q, *kv))


@dataclass
class VideoBlockPack:
    self_attn: AttnPack
    cross_attn: AttnPack
    norm3: tuple[torch.Tensor, torch.Tensor]       # weight, bias (float32)
    ffn: tuple[LinearPack, LinearPack]


class VideoBlock(nn.Module):
    def __init__(self, cfg: WAMConfig):
        super().__init__()
        d = cfg.video_width
        self.norm1 = FP32LayerNorm(d, cfg.eps, elementwise_affine=False)
        self.self_attn = SelfAttention(d, cfg.attn_dim, cfg.num_heads, cfg.eps)
        self.norm3 = FP32LayerNorm(d, cfg.eps, elementwise_affine=True)   # cross-attention norm
        self.cross_attn = CrossAttention(d, cfg.attn_dim, cfg.num_heads, cfg.eps)
        self.norm2 = FP32LayerNorm(d, cfg.eps, elementwise_affine=False)
        self.ffn = ffn(d, cfg.video_ffn)
        self.modulation = nn.Parameter(torch.randn(1, 6, d) / math.sqrt(d))
        self.register_buffer("mod_offset", mod_offset(), persistent=False)

    def mod(self, e: torch.Tensor, segments: torch.Tensor) -> list[torch.Tensor]:
        """e (B, S, 6, dim): time projection per token segment (condition, future); `segments`
        (L,) the segment of each token (VideoExpert.segments) -> 6 per-token tensors (B, L, dim):
        shift, scale+1, gate (x2). VideoExpert.layer_mods does this for all layers at once."""
        with fp32_island(e):
            m = (self.modulation.unsqueeze(0) + e + self.mod_offset).float()
            return list(m.index_select(1, segments).unbind(2))

    def pack(self) -> VideoBlockPack:
        n3 = (self.norm3.weight.detach().float(), self.norm3.bias.detach().float())
        return VideoBlockPack(self.self_attn.pack(), self.cross_attn.pack(), n3, pack_ffn(self.ffn))

    def qkv(self, x, m, rope, pack: VideoBlockPack | None = None):
        if pack is not None:
            return self.self_attn.qkv(norm_modulate(x, m[0], m[1], self.norm1.eps), rope, pack.self_attn)
        return self.self_attn.qkv(torch.addcmul(m[0], self.norm1(x), m[1]), rope)

    def finish(self, x, attn_out, m, text_kv, pack: VideoBlockPack | None = None):
        """Everything after the joint self-attention: gate, text cross-attention, FFN."""
        if pack is not None:
            x = torch.addcmul(x, linear_t(attn_out, pack.self_attn.o), m[2])
            d = x.shape[-1]
            y = as_dtype(F.layer_norm(as_dtype(x, torch.float32), (d,), *pack.norm3, self.norm3.eps), x.dtype)
            x = x + self.cross_attn(y, text_kv, pack.cross_attn)
            return torch.addcmul(x, ffn_packed(norm_modulate(x, m[3], m[4], self.norm2.eps), pack.ffn), m[5])
        x = torch.addcmul(x, self.self_attn.o(attn_out), m[2])
        x = x + self.cross_attn(self.norm3(x), text_kv)
        return torch.addcmul(x, self.ffn(torch.addcmul(m[3], self.norm2(x), m[4])), m[5])


class Head(nn.Module):
    def __init__(self, dim: int, out_dim: int, eps: float):
        super().__init__()
        self.norm = FP32LayerNorm(dim, eps, elementwise_affine=False)
        self.head = nn.Linear(dim, out_dim)
        self.modulation = nn.Parameter(torch.randn(1, 2, dim) / math.sqrt(dim))

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        """In float32 (Wan keeps its head there); weights cast to bf16 as a whole are followed."""
        with fp32_island(x):
            shift, scale = (self.modulation.unsqueeze(0) + temb.unsqueeze(2)).unbind(2)
            dt = self.head.weight.dtype
            return self.head(modulate(self.norm(x.float()), shift, scale).to(dt))


class VideoExpert(nn.Module):
    def __init__(self, cfg: WAMConfig):
        super().__init__()
        self.cfg = cfg
        d, c = cfg.video_width, cfg.latent_channels
        self.patch_embedding = nn.Conv3d(c, d, kernel_size=cfg.patch, stride=cfg.patch)
        # RoPE makes attention *scores* depend on where a token is, but no *value* carries it: a
        # query can ask "what is at p" and not "where is the red block". The action expert needs
        # the second to reach a block anywhere on the table, where every token looks alike
        # (CoordConv's finding for CNNs), so the condition tokens may carry a learned absolute
        # position. It starts as a 2-D sin-cos table x 0.5 (its fastest channels swing +-0.5
        # across the grid; the sim-tiny checkpoint's patch embeddings vary by 0.6 between
        # positions): learned from zero instead, it moved 0.005 in 1000 fine-tuning steps.
        _, gh, gw = cfg.condition_grid
        self.condition_positions = (nn.Parameter(0.5 * sincos_2d(gh, gw, d)[None])
                                    if cfg.condition_positions else None)
        self.text_embedding = nn.Sequential(nn.Linear(cfg.text_dim, d), nn.GELU(approximate="tanh"),
                                            nn.Linear(d, d))
        self.time_embedding = time_mlp(cfg.freq_dim, d)
        self.time_projection = time_projection(d, 6)
        self.blocks = nn.ModuleList(VideoBlock(cfg) for _ in range(cfg.video_layers))
        self.head = Head(d, c * math.prod(cfg.patch), cfg.eps)
        self._rope: dict = {}
        self._segments: dict = {}
        self.reset_parameters()

    def reset_parameters(self) -> None:
        xavier_(self)
        nn.init.xavier_uniform_(self.patch_embedding.weight.flatten(1))
        nn.init.zeros_(self.head.head.weight)        # a fresh model predicts zero velocity

    # ---- inputs ---------------------------------------------------------------------------
    def patchify(self, latents: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
        """(B, C, T, h, w) -> tokens (B, L, dim), grid (t, h, w)."""
        x = self.patch_embedding(latents.to(self.patch_embedding.weight.dtype))
        return x.flatten(2).transpose(1, 2), tuple(x.shape[2:])

    def condition_tokens(self, cond: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
        """Condition latents (B, C, 1, h, w) -> tokens (B, L, dim) with their absolute positions
        (when the config has them), grid."""
        x, grid = self.patchify(cond)
        if self.condition_positions is not None:
            x = x + self.condition_positions.to(x.dtype)
        return x, grid

    def unpatchify(self, x: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        """(B, L, p_t*p_h*p_w*C) -> (B, C, T, h, w), Wan's channel order (p, q, r, c)."""
        (t, h, w), (pt, ph, pw) = grid, self.cfg.patch
        x = x.reshape(x.shape[0], t, h, w, pt, ph, pw, -1)
        x = torch.einsum("bfhwpqrc->bcfphqwr", x)
        return x.reshape(x.shape[0], x.shape[1], t * pt, h * ph, w * pw)

    def rope(self, grids: tuple[tuple[int, int, int], ...], device,
             real: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """(L, 1, head_dim / 2) complex rotations for consecutive token grids, each indexed from 0
        (separate 3-D RoPE per grid); made once per layout and device (no copy per pass).
        real=True: the same rotation as (cos, sin) tables (L, 1, head_dim), for torch.compile,
        whose inductor generates no code for complex operators."""
        key = (grids, str(device), real)
        if key not in self._rope:   # a handful of grid shapes per model: tiny memoisation
            tables = [rope_3d(g, self.cfg.head_dim, self.cfg.rope_theta) for g in grids]
            cos, sin = torch.cat([c for c, _ in tables]), torch.cat([s for _, s in tables])
            self._rope[key] = (cos.to(device), sin.to(device)) if real else rope_complex(cos, sin).to(device)
        return self._rope[key]

    def segments(self, counts: tuple[int, ...], device) -> torch.Tensor:
        """(L,) int64: the segment (0 condition, 1 future) of each token; made once per layout."""
        key = (tuple(counts), str(device))
        if key not in self._segments:
            self._segments[key] = torch.repeat_interleave(
                torch.arange(len(counts)), torch.tensor(counts)).to(device)
        return self._segments[key]

    def layer_mods(self, proj: torch.Tensor, counts: tuple[int, ...]) -> list[list[torch.Tensor]]:
        """proj (B, S, 6, dim) -> [layer] -> 6 per-token adaLN tensors (B, L, dim), contiguous:
        every block's modulation in one batched op (float32, like Wan)."""
        with fp32_island(proj):
            table = torch.stack([blk.modulation for blk in self.blocks]).float()   # (N, 1, 6, d)
            m = table.unsqueeze(1) + proj.float().unsqueeze(0) + self.blocks[0].mod_offset
            m = m.permute(0, 3, 1, 2, 4)                                          # (N, 6, B, S, d)
            m = m.index_select(3, self.segments(counts, proj.device))           # (N, 6, B, L, d)
        return [list(layer.unbind(0)) for layer in m.unbind(0)]

    def time(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """t (B, S) in [0,1] -> temb (B, S, dim), projection (B, S, 6, dim), in float32 like Wan
        (also under bf16 autocast)."""
        with fp32_island(t):
            emb = self.time_embedding(sinusoid(t.flatten() * 1000.0, self.cfg.freq_dim)
                                      .to(self.time_embedding[0].weight.dtype))
            proj = self.time_projection(emb).unflatten(-1, (6, -1)).float()
        return emb.float().unflatten(0, t.shape), proj.unflatten(0, t.shape)

    def text_kv(self, text: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per-layer cross-attention K/V of the text tokens: computed once per chunk."""
        ctx = self.text_embedding(text.to(self.text_embedding[0].weight.dtype))
        return [blk.cross_attn.text_kv(ctx) for blk in self.blocks]

    def forward(self, latents: torch.Tensor, t: torch.Tensor, text: torch.Tensor,
                return_hidden: tuple[int, ...] = ()):
        """Video-only Wan forward over one latent grid (teacher / distillation / transfer checks).

        latents (B, C, T, h, w), t (B,) in [0, 1], text (B, L, text_dim) -> velocity like latents;
        with `return_hidden` (0-indexed layers), also those layers' output hidden states.
        """
        x, grid = self.patchify(latents)
        rope = self.rope((grid,), x.device)
        temb, proj = self.time(t[:, None])
        mods = self.layer_mods(proj, (x.shape[1],))
        hidden = []
        for i, (blk, kv, m) in enumerate(zip(self.blocks, self.text_kv(text), mods)):
            x = blk.finish(x, attention(*blk.qkv(x, m, rope)), m, kv)
            if i in return_hidden:
                hidden.append(x)
        out = self.unpatchify(self.head(x, temb.expand(-1, x.shape[1], -1)), grid).float()
        return (out, hidden) if return_hidden else out
