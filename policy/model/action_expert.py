"""The action expert: 1 state + H noisy actions + registers, one block per video block.

Same block structure as the video expert minus text cross-attention and RoPE. Its Q/K/V are
projected into the video expert's head space (num_heads x head_dim) so both streams share one
attention per layer; it has its own q/k RMSNorm, output projection, FFN, timestep embedding.
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
    LinearPack,
    as_dtype,
    ffn,
    fp32_island,
    linear_t,
    mlp3,
    mod_offset,
    modulate,
    norm_modulate,
    pack_linear,
    sincos_1d,
    sinusoid,
    time_mlp,
    time_projection,
    xavier_,
)
from policy.model.video_expert import AttnPack, SelfAttention, ffn_packed, pack_ffn


@dataclass
class ActionBlockPack:
    self_attn: AttnPack
    ffn: tuple[LinearPack, LinearPack]


@dataclass
class ActionExpertPack:
    """The action expert's hot-loop weights laid out once (EfficientWAM.inference_pack)."""
    blocks: list[ActionBlockPack]
    embedding: tuple[LinearPack, LinearPack, LinearPack]      # action_embedding's 3 Linears
    positions: torch.Tensor                                   # (1, H, dim) of the action tokens
    head: LinearPack


class ActionBlock(nn.Module):
    def __init__(self, cfg: WAMConfig):
        super().__init__()
        d = cfg.action_width
        self.norm1 = FP32LayerNorm(d, cfg.eps, elementwise_affine=False)
        self.self_attn = SelfAttention(d, cfg.attn_dim, cfg.num_heads, cfg.eps)
        self.norm2 = FP32LayerNorm(d, cfg.eps, elementwise_affine=False)
        self.ffn = ffn(d, cfg.action_ffn)
        self.modulation = nn.Parameter(torch.randn(1, 6, d) / math.sqrt(d))
        self.register_buffer("mod_offset", mod_offset(), persistent=False)

    def mod(self, e: torch.Tensor) -> list[torch.Tensor]:
        """e (B, 6, dim) -> 6 tensors (B, 1, dim): shift, 1 + scale, gate (x2), float32."""
        with fp32_island(e):
            return list((self.modulation + e + self.mod_offset).float().unsqueeze(2).unbind(1))

    def pack(self) -> ActionBlockPack:
        return ActionBlockPack(self.self_attn.pack(), pack_ffn(self.ffn))

    def qkv(self, x, m, pack: ActionBlockPack | None = None):
        if pack is not None:        # B = 1: adaLN folded into the LayerNorm (norm_modulate)
            return self.self_attn.qkv(norm_modulate(x, m[0], m[1], self.norm1.eps), None, pack.self_attn)
        return self.self_attn.qkv(torch.addcmul(m[0], self.norm1(x), m[1]))

    def finish(self, x, attn_out, m, pack: ActionBlockPack | None = None):
        if pack is not None:
            x = torch.addcmul(x, linear_t(attn_out, pack.self_attn.o), m[2])
            return torch.addcmul(x, ffn_packed(norm_modulate(x, m[3], m[4], self.norm2.eps), pack.ffn), m[5])
        x = torch.addcmul(x, self.self_attn.o(attn_out), m[2])
        return torch.addcmul(x, self.ffn(torch.addcmul(m[3], self.norm2(x), m[4])), m[5])


class ActionExpert(nn.Module):
    def __init__(self, cfg: WAMConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.action_width
        self.state_embedding = mlp3(cfg.action_dim, d)
        self.action_embedding = mlp3(cfg.action_dim, d)
        self.registers = nn.Parameter(torch.randn(1, cfg.num_registers, d) * 0.02)
        self.register_buffer("positions", sincos_1d(cfg.num_action_tokens, d)[None], persistent=False)
        self.time_embedding = time_mlp(cfg.freq_dim, d)
        self.time_projection = time_projection(d, 6)
        self.blocks = nn.ModuleList(ActionBlock(cfg) for _ in range(cfg.video_layers))
        self.norm_out = FP32LayerNorm(d, cfg.eps, elementwise_affine=False)
        self.head_modulation = nn.Parameter(torch.randn(1, 2, d) / math.sqrt(d))
        self.head = nn.Linear(d, cfg.action_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        xavier_(self)
        nn.init.zeros_(self.head.weight)             # zero-initialised output (paper)
        nn.init.zeros_(self.head.bias)

    def embed_fixed(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The tokens that do not change during a chunk: state (B, 1, dim), registers (B, R, dim),
        with their positions added."""
        dt, h = self.head.weight.dtype, self.cfg.horizon
        s = self.state_embedding(state.to(dt))[:, None] + self.positions[:, :1].to(dt)
        r = self.registers.expand(state.shape[0], -1, -1) + self.positions[:, 1 + h:].to(dt)
        return s, r

    def pack(self) -> ActionExpertPack:
        emb = self.action_embedding
        dt, h = self.head.weight.dtype, self.cfg.horizon
        return ActionExpertPack([blk.pack() for blk in self.blocks],
                                tuple(pack_linear(emb[i].weight, emb[i].bias) for i in (0, 2, 4)),
                                self.positions[:, 1:1 + h].to(dt), pack_linear(self.head.weight, self.head.bias))

    def embed(self, actions: torch.Tensor, state: torch.Tensor,
              fixed: tuple[torch.Tensor, torch.Tensor] | None = None,
              pack: ActionExpertPack | None = None) -> torch.Tensor:
        """actions (B, H, A), state (B, A) -> tokens (B, 1 + H + R, dim)."""
        s, r = self.embed_fixed(state) if fixed is None else fixed
        if pack is not None:
            e = pack.embedding
            x = F.silu(linear_t(as_dtype(actions, pack.positions.dtype), e[0]), inplace=True)
            x = linear_t(F.silu(linear_t(x, e[1]), inplace=True), e[2])
            return torch.cat([s, x + pack.positions, r], dim=1)     # promotes like embed()
        dt, h = self.head.weight.dtype, self.cfg.horizon
        a = self.action_embedding(actions.to(dt)) + self.positions[:, 1:1 + h].to(dt)
        return torch.cat([s, a, r], dim=1)

    def layer_mods(self, proj: torch.Tensor) -> torch.Tensor:
        """proj (..., B, 6, dim) -> (..., N, 6, B, 1, dim): every block's adaLN inputs in one
        batched op, float32; index [..., layer] gives the 6 tensors ActionBlock.mod returns."""
        with fp32_island(proj):
            table = torch.stack([blk.modulation for blk in self.blocks]).float()   # (N, 1, 6, d)
            m = proj.float().unsqueeze(-4) + table + self.blocks[0].mod_offset    # (..., N, B, 6, d)
            return m.movedim(-2, -3).unsqueeze(-2).contiguous()                   # (..., N, 6, B, 1, d)

    def time(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """t (B,) -> temb (B, dim), projection (B, 6, dim), float32 (also under autocast)."""
        with fp32_island(t):
            emb = self.time_embedding(sinusoid(t * 1000.0, self.cfg.freq_dim)
                                      .to(self.time_embedding[0].weight.dtype))
            return emb.float(), self.time_projection(emb).unflatten(-1, (6, -1)).float()

    def head_mods(self, temb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """temb (..., B, dim) -> the output head's adaLN (shift, 1 + scale), each (..., B, 1, dim)."""
        with fp32_island(temb):
            shift, scale = (self.head_modulation + temb.unsqueeze(-2)).float().unsqueeze(-2).unbind(-3)
            return shift, scale + 1

    def output(self, x: torch.Tensor, temb: torch.Tensor,
               pack: ActionExpertPack | None = None,
               mods: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Action tokens -> velocity for the H actions (B, H, A), in float32 like Wan's head.
        With a pack (and optionally head_mods(temb) made ahead): the same numbers, fewer ops."""
        with fp32_island(x):
            if pack is not None:
                shift, scale1 = self.head_mods(temb) if mods is None else mods
                x = norm_modulate(as_dtype(x[:, 1:1 + self.cfg.horizon], torch.float32), shift, scale1,
                                  self.norm_out.eps)
                return linear_t(as_dtype(x, pack.head[0].dtype), pack.head)
            shift, scale = (self.head_modulation + temb[:, None]).float().unsqueeze(2).unbind(1)
            x = x[:, 1:1 + self.cfg.horizon].float()
            return self.head(modulate(self.norm_out(x), shift, scale).to(self.head.weight.dtype))
