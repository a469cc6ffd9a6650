"""EfficientWAM: the video and the action expert joined layer by layer (mixture of transformers).

In every layer the video tokens (condition + future) and the action tokens (state, H actions,
registers) share one attention in the video head space. Video queries attend to video keys only
and action queries attend to [video keys ; action keys]: this is the paper's factorisation
p(video | obs, text) * p(actions | obs, text, state, video) - the video stream never sees the
robot state - and it is what makes the video K/V cache exact: an action-only step attending to
cached video K/V computes the same numbers as a full joint pass with the same video input.

Condition tokens carry timestep 0 and future tokens the video timestep (Wan2.2-TI2V's
per-token timesteps), so the condition frame is always treated as clean.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from policy.model.action_expert import ActionExpert, ActionExpertPack
from policy.model.config import WAMConfig
from policy.model.layers import attention
from policy.model.video_expert import VideoBlockPack, VideoExpert

TextKV = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class VideoKVCache:
    """Per-layer K/V buffers of the last joint pass of a chunk, preallocated and reused.

    keys[i] / values[i] are (B, heads, L_video + L_action, head_dim): the first `video_len`
    positions hold the video K/V (after q/k-norm and RoPE), the rest the action K/V of the pass
    that wrote last. Action-only steps overwrite the action part in place and attend to the whole
    buffer, so no step concatenates [video ; action] again. A cache is reused across chunks
    (buffers are reallocated only when shape, dtype or device change)."""
    keys: list[torch.Tensor] = field(default_factory=list)
    values: list[torch.Tensor] = field(default_factory=list)
    video_len: int = 0

    def layer(self, i: int, vk: torch.Tensor, vv: torch.Tensor, ak: torch.Tensor, av: torch.Tensor):
        """Write layer i's video and action K/V into its buffers -> (keys, values) buffers."""
        lv, la = vk.shape[2], ak.shape[2]
        shape = (*vk.shape[:2], lv + la, vk.shape[3])
        if i == 0:
            self.video_len = lv
        if i >= len(self.keys) or self.keys[i].shape != shape or self.keys[i].dtype != vk.dtype \
                or self.keys[i].device != vk.device:
            del self.keys[i:], self.values[i:]
            self.keys.append(vk.new_empty(shape)), self.values.append(vv.new_empty(shape))
        k, v = self.keys[i], self.values[i]
        k[:, :, :lv].copy_(vk), k[:, :, lv:].copy_(ak)
        v[:, :, :lv].copy_(vv), v[:, :, lv:].copy_(av)
        return k, v

    def clear(self) -> None:
        self.keys.clear(), self.values.clear()
        self.video_len = 0


@dataclass
class ActionPlan:
    fixed: tuple[torch.Tensor, torch.Tensor]     # state token (B, 1, D), register tokens (B, R, D)
    temb: torch.Tensor                           # (S, B, D) per-step time embedding (output head)
    mods: list                                   # [step][layer] -> 6 adaLN tensors (B, 1, D), float32
    head: list | None = None                     # [step] -> output head (shift, 1 + scale) (B, 1, D)


@dataclass
class InferencePack:
    """Every weight of the sampling loop laid out once for inference: [q; k; v] fused, small
    Linear weights stored column-major on the CPU (layers.pack_linear), norm weights in float32.
    Built from the parameters and rebuilt when any of them changes in place, moves or changes
    dtype (EfficientWAM.inference_pack), so it never serves stale weights; the modules' numbers,
    to float rounding (tests/policy/model/test_inference_pack.py)."""
    video: list[VideoBlockPack]
    action: ActionExpertPack
    key: tuple


class EfficientWAM(nn.Module):
    def __init__(self, cfg: WAMConfig):
        super().__init__()
        self.cfg = cfg
        self.video = VideoExpert(cfg)
        self.action = ActionExpert(cfg)
        self._pack: InferencePack | None = None
        self._pack_params: list[nn.Parameter] | None = None

    def num_params(self) -> dict[str, int]:
        v = sum(p.numel() for p in self.video.parameters())
        a = sum(p.numel() for p in self.action.parameters())
        return {"video": v, "action": a, "total": v + a}

    def text_kv(self, text: torch.Tensor) -> TextKV:
        """text (B, L_text, text_dim) -> per-layer cross-attention K/V (once per chunk)."""
        return self.video.text_kv(text)

    # ---- inference weights ----------------------------------------------------------------
    def inference_pack(self) -> InferencePack | None:
        """The InferencePack for the current weights, or None where the plain modules must run:
        autograd through the weights (training), tracing (torch.compile), the meta device.
        Validated against every parameter's version and storage (about 0.1 ms at sim-tiny): a
        sampler fetches it once per chunk and passes it to joint() / action_step()."""
        if self._pack_params is None:
            self._pack_params = list(self.parameters())
        # Any trainable weight counts: stage 2 freezes the video expert and trains the action
        # expert, whose packed path overwrites activations in place (autograd would fail).
        if (torch.is_grad_enabled() and any(p.requires_grad for p in self._pack_params)) \
                or torch.compiler.is_compiling() or self._pack_params[0].device.type == "meta":
            return None
        key = tuple((p._version, p.data_ptr(), p.dtype) for p in self._pack_params)
        if self._pack is None or self._pack.key != key:
            with torch.no_grad():
                self._pack = InferencePack([blk.pack() for blk in self.video.blocks], self.action.pack(), key)
        return self._pack

    def _apply(self, fn, recurse=True):
        self._pack, self._pack_params = None, None      # .to() / .float() / ...: rebuilt on next use
        return super()._apply(fn, recurse)

    # ---- one joint pass -----------------------------------------------------------------
    def joint(self, future: torch.Tensor, t_video: torch.Tensor, cond: torch.Tensor,
              text_kv: TextKV, actions: torch.Tensor, t_action: torch.Tensor, state: torch.Tensor,
              cache: VideoKVCache | None = None,
              pack: InferencePack | None = None, kv_out: TextKV | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Velocities for the future latents (B, C, T, h, w) and the actions (B, H, A).

        future=None (t_video ignored): a video-free pass over the condition tokens only; the
        video velocity is then None.

        If `cache` is given, its buffers receive this pass's per-layer video (and action) K/V.
        `kv_out` (a list): receives each layer's [video ; action] (K, V) instead, as new tensors
        (what a compiled graph returns: joint_kv). `pack`: inference_pack() (fetched here when
        not given; None while training).
        """
        pack = pack or self.inference_pack()
        vpk = pack.video if pack is not None else [None] * len(self.video.blocks)
        apk = pack.action.blocks if pack is not None else [None] * len(self.action.blocks)
        vx, v_rope, n_cond, f_grid = self._video_tokens(cond, future)
        if t_video is None:
            t_video = torch.zeros_like(t_action)
        t_pair = torch.stack([torch.zeros_like(t_video), t_video], dim=1)      # (B, 2)
        v_temb, v_proj = self.video.time(t_pair)
        counts = (n_cond, vx.shape[1] - n_cond)
        ax = self.action.embed(actions, state, None, pack.action if pack is not None else None)
        a_temb, a_proj = self.action.time(t_action)
        v_mods = self.video.layer_mods(v_proj, counts)
        a_mods = [list(layer.unbind(0)) for layer in self.action.layer_mods(a_proj).unbind(0)]
        for i, (vblk, ablk, tkv) in enumerate(zip(self.video.blocks, self.action.blocks, text_kv)):
            vm, am = v_mods[i], a_mods[i]
            vq, vk, vv = vblk.qkv(vx, vm, v_rope, vpk[i])
            aq, ak, av = ablk.qkv(ax, am, apk[i])
            v_out = attention(vq, vk, vv)
            if cache is not None:       # inference: K/V into the preallocated buffers, no concat
                kb, vb = cache.layer(i, vk, vv, ak, av)
                a_out = attention(aq, kb, vb)
            else:
                kb, vb = torch.cat([vk, ak], 2), torch.cat([vv, av], 2)
                a_out = attention(aq, kb, vb)
                if kv_out is not None:
                    kv_out.append((kb, vb))
            vx = vblk.finish(vx, v_out, vm, tkv, vpk[i])
            ax = ablk.finish(ax, a_out, am, apk[i])
        a_vel = self.action.output(ax, a_temb, pack.action if pack is not None else None).float()
        if f_grid is None:
            return None, a_vel
        fut_temb = v_temb[:, 1:2].expand(-1, counts[1], -1)
        v_vel = self.video.unpatchify(self.video.head(vx[:, n_cond:], fut_temb), f_grid)
        return v_vel.float(), a_vel

    def joint_kv(self, future: torch.Tensor | None, t_video: torch.Tensor | None, cond: torch.Tensor,
                 text_kv: TextKV, actions: torch.Tensor, t_action: torch.Tensor, state: torch.Tensor):
        """joint() that returns its per-layer [video ; action] K/V instead of writing a cache:
        -> (video velocity, action velocity, [(K, V)] per layer). Pure tensors in, tensors out:
        what torch.compile traces (FlowSampler(compile=True)); a graph must not mutate its
        inputs, or CUDA graphs are skipped, so the caller copies the K/V into its cache."""
        kv: TextKV = []
        v_vel, a_vel = self.joint(future, t_video, cond, text_kv, actions, t_action, state, kv_out=kv)
        return v_vel, a_vel, kv

    def prepare_layout(self) -> None:
        """Make the memoised RoPE tables and token segments of this config's layouts (with and
        without future tokens) now, so that a traced pass reads them as constants instead of
        building them inside the graph (and retracing once they exist)."""
        cfg, dev = self.cfg, self.video.patch_embedding.weight.device     # as the passes name it
        counts = cfg.token_counts()
        for real in (False, True):
            self.video.rope((cfg.condition_grid, cfg.future_grid), dev, real)
            self.video.rope((cfg.condition_grid,), dev, real)
        self.video.segments((counts["condition"], counts["future"]), dev)
        self.video.segments((counts["condition"], 0), dev)

    def action_only(self, cache: VideoKVCache, actions: torch.Tensor, t_action: torch.Tensor,
                    state: torch.Tensor) -> torch.Tensor:
        """An action step against cached video K/V: the video stream does not run."""
        plan = self.plan_action_steps(state, t_action[None])
        return self.action_step(cache, actions, plan.fixed, plan.temb[0], plan.mods[0],
                                self.inference_pack(), plan.head[0])

    def plan_action_steps(self, state: torch.Tensor, times: torch.Tensor,
                          schedule: ActionPlan | None = None) -> ActionPlan:
        """Per-chunk constants of the action-only steps, computed once: the embedded state and
        register tokens and, for every step time (S, B), the head and per-layer adaLN inputs.
        `schedule`: an earlier plan for the same times and weights (FlowSampler keeps one: its
        step times never change), whose time-dependent parts are reused; only the state is new."""
        if schedule is not None:
            return ActionPlan(self.action.embed_fixed(state), schedule.temb, schedule.mods, schedule.head)
        s, b = times.shape
        temb, proj = self.action.time(times.flatten())
        temb, proj = temb.unflatten(0, (s, b)), proj.unflatten(0, (s, b))
        mods = self.action.layer_mods(proj)                      # (S, layers, 6, B, 1, D), one op
        # unbound once per chunk into views, so the hot loop indexes Python lists, not tensors
        mods = [[list(layer.unbind(0)) for layer in step.unbind(0)] for step in mods.unbind(0)]
        shift, scale1 = self.action.head_mods(temb)                # (S, B, 1, D) each
        return ActionPlan(self.action.embed_fixed(state), temb, mods, list(zip(shift.unbind(0), scale1.unbind(0))))

    def action_step(self, cache: VideoKVCache, actions: torch.Tensor,
                    fixed: tuple[torch.Tensor, torch.Tensor], temb: torch.Tensor,
                    mods: torch.Tensor, pack: InferencePack | None = None,
                    head: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """The hot loop of [T_v, T_a] sampling: tensors in, tensors out (torch.compile-able).
        mods [layer] -> 6 tensors (B, 1, D) (ActionPlan.mods[step]); pack: inference_pack() (None:
        the plain modules); head: ActionPlan.head[step]. Each layer writes its action K/V into the
        tail of the cached buffer and attends to the whole buffer: no concatenation, no
        allocation of K/V."""
        traced = torch.compiler.is_compiling()
        if traced:
            pack = None
        ax = self.action.embed(actions, None, fixed, pack.action if pack is not None else None)
        apk = pack.action.blocks if pack is not None else [None] * len(self.action.blocks)
        lv = cache.video_len
        for ablk, am, kb, vb, pk in zip(self.action.blocks, mods, cache.keys, cache.values, apk):
            aq, ak, av = ablk.qkv(ax, am, pk)
            if traced:      # a compiled graph must not mutate its inputs (CUDA graphs would be skipped)
                kb, vb = torch.cat([kb[:, :, :lv], ak], 2), torch.cat([vb[:, :, :lv], av], 2)
            else:
                kb[:, :, lv:].copy_(ak), vb[:, :, lv:].copy_(av)
            ax = ablk.finish(ax, attention(aq, kb, vb), am, pk)
        if pack is None:
            return self.action.output(ax, temb).float()
        return self.action.output(ax, temb, pack.action, head).float()

    def forward(self, future: torch.Tensor, actions: torch.Tensor, t_video: torch.Tensor,
                t_action: torch.Tensor, cond: torch.Tensor, text: torch.Tensor,
                state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training forward: noisy future latents (B, C, T, h, w), noisy actions (B, H, A),
        independent timesteps t_video, t_action (B,) in [0, 1], clean condition latents
        (B, C, 1, H', W'), text tokens (B, L, text_dim), state (B, A) -> (v_future, v_actions)."""
        return self.joint(future, t_video, cond, self.text_kv(text), actions, t_action, state)

    # ---- helpers ------------------------------------------------------------------------
    def _video_tokens(self, cond, future):
        cx, c_grid = self.video.condition_tokens(cond)
        real = torch.compiler.is_compiling()        # inductor has no complex kernels: (cos, sin)
        if future is None:      # video-free: the observation's tokens only, no future tokens
            return cx, self.video.rope((c_grid,), cx.device, real), cx.shape[1], None
        fx, f_grid = self.video.patchify(future)
        rope = self.video.rope((c_grid, f_grid), cx.device, real)
        return torch.cat([cx, fx], dim=1), rope, cx.shape[1], f_grid

