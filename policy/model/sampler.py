"""Asymmetric video-action denoising (paper: inference only, training-free).

[T_v, T_a] flow-matching Euler steps (T_v = 0: video-free, the action expert attends to the
observation's tokens only and no future is imagined). Action steps 0..T_v-1 are joint passes that also advance
the video and, in the last one, leave a per-layer video K/V cache; action steps T_v..T_a-1 run
the action stream alone against that cache. Text K/V are projected once per chunk, or passed in
(`text_kv=`, what WAMRunner caches per instruction).
`dtype`: torch.bfloat16 runs under bf16 autocast (weights best cast once with
policy.model.precision.cast_for_inference), float32 islands as Wan; None = bf16 on CUDA only.
Nothing in the loop creates tensors from host data or syncs with the host.
`use_cache=False` recomputes the video stream at every action-only step instead (same video
input, same numbers): the reference the cache is tested against.
`compile=True` runs the joint passes and the action-only steps as torch.compile graphs: on CUDA
with CUDA graphs (mode "reduce-overhead"); on the CPU with inductor's weight freezing and C++
wrapper (the weights become constants of the graph: compile after loading them). Graphs are
built at the first chunk (tens of seconds on a CPU; inductor caches them on disk for the next
process) and then at every new batch size.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from policy.model.flow import check_generator, euler_step, randn, sampling_times
from policy.model.wam import EfficientWAM, TextKV, VideoKVCache


@dataclass
class SampleResult:
    actions: torch.Tensor          # (B, H, A) normalised action chunk
    future: torch.Tensor           # (B, C, T, h, w) sampled future latents
    joint_passes: int              # passes that ran the video stream (and advanced it)
    action_passes: int             # action-only passes against the cache
    video_recomputes: int = 0      # uncached reference: video passes repeated for action steps


class FlowSampler:
    def __init__(self, model: EfficientWAM, steps: tuple[int, int] = (2, 10), shift: float = 5.0,
                 use_cache: bool = True, compile: bool = False,
                 compile_backend: str = "inductor", dtype: torch.dtype | None = None):
        t_v, t_a = steps
        if not (0 <= t_v <= t_a and t_a >= 1):
            raise ValueError(f"steps [T_v, T_a] = {list(steps)}: need 0 <= T_v <= T_a, T_a >= 1 "
                             "(video steps ride on the first action steps; T_v = 0 is video-free)")
        self.model, self.steps, self.shift, self.use_cache = model, (t_v, t_a), shift, use_cache
        self.dtype = dtype
        self._cache = VideoKVCache()            # K/V buffers, reused chunk after chunk
        self._schedule, self._schedule_key = None, None     # the action steps' time embeddings
        self._action_step, self._joint_kv = model.action_step, None     # compiled graphs when compile
        if compile:
            model.prepare_layout()      # RoPE tables and segments exist before tracing: constants
            on_cuda = next(model.parameters()).is_cuda
            self._action_step = compiled(model.action_step, compile_backend, on_cuda)
            self._joint_kv = compiled(model.joint_kv, compile_backend, on_cuda)

    @torch.inference_mode()     # no autograd bookkeeping at all: fewer per-op costs than no_grad
    def text_kv(self, text: torch.Tensor) -> TextKV:
        """Per-layer text K/V under this sampler's precision (cache it per instruction)."""
        with self._autocast(text.device):
            return self.model.text_kv(text)

    @torch.inference_mode()     # no autograd bookkeeping at all: fewer per-op costs than no_grad
    def sample(self, cond: torch.Tensor, text: torch.Tensor | None, state: torch.Tensor,
               generator: torch.Generator | None = None,
               noise: tuple[torch.Tensor, torch.Tensor] | None = None,
               text_kv: TextKV | None = None, prefix: torch.Tensor | None = None) -> SampleResult:
        """cond (B, C, 1, H', W') clean condition latents, text (B, L, text_dim), state (B, A)
        normalised -> SampleResult. `noise` = (future_noise, action_noise) overrides sampling;
        `text_kv` (from text_kv()) replaces `text`. Every input must be on cond's device.
        `prefix` (B, k, A) normalised: real-time chunking by hard inpainting. Before every action
        step at time t the first k actions are set to where the flow would carry the prefix,
        (1 - t) prefix + t noise, and at the end to the prefix itself; the model denoises the rest
        conditioned on them, so the new chunk continues from what the arm is doing."""
        m, cfg = self.model, self.model.cfg
        dev, b = cond.device, cond.shape[0]
        check_generator(generator, dev)
        if noise is None:
            noise = (randn((b, *cfg.future_latent_shape), dev, generator),
                     randn((b, cfg.horizon, cfg.action_dim), dev, generator))
        x_v, x_a = noise[0].clone(), noise[1].clone()
        k = 0 if prefix is None else min(int(prefix.shape[1]), x_a.shape[1])
        if k:
            prefix, prefix_noise = prefix[:, :k].to(x_a.dtype), noise[1][:, :k]
        t_v, t_a = self.steps
        tv = sampling_times(t_v, self.shift, dev) if t_v else None
        ta = sampling_times(t_a, self.shift, dev)
        ones = torch.ones(b, device=dev)
        res = SampleResult(x_a, x_v, 0, 0)
        with self._autocast(dev):
            if text_kv is None:
                text_kv = m.text_kv(text)                   # once per chunk
            cache = self._cache
            last_video = None
            pack = m.inference_pack()                   # weights laid out for inference, once
            step_pack = None if self._joint_kv is not None else pack    # a compiled step traces the modules
            if self.use_cache and t_a > t_v:        # constants of the action-only steps, once
                times = ta[t_v:t_a, None] * ones
                # the step times never change: their embeddings are reused while the weights,
                # the batch and the precision stay (a pack exists only for inference weights)
                key = None if pack is None else (pack.key, b, dev, torch.is_autocast_enabled(dev.type))
                reuse = key is not None and key == self._schedule_key
                plan = m.plan_action_steps(state, times, self._schedule if reuse else None)
                self._schedule, self._schedule_key = plan, key
            for i in range(t_a):
                if k:
                    x_a[:, :k] = (1 - ta[i]) * prefix + ta[i] * prefix_noise
                if i < t_v:
                    vel_v, vel_a = self._joint(x_v, tv[i] * ones, cond, text_kv, x_a, ta[i] * ones,
                                               state, pack)
                    last_video = (x_v, tv[i] * ones)
                    x_v = euler_step(x_v, vel_v, tv[i], tv[i + 1])
                    res.joint_passes += 1
                elif t_v == 0 and i == 0:
                    # Video-free: one pass over the observation's tokens only (no future tokens)
                    # builds the cache; the future is never imagined.
                    _, vel_a = self._joint(None, None, cond, text_kv, x_a, ta[i] * ones, state, pack)
                    last_video = (None, None)
                    res.joint_passes += 1
                elif self.use_cache:
                    j = i - t_v
                    if step_pack is None:
                        vel_a = self._action_step(cache, x_a, plan.fixed, plan.temb[j], plan.mods[j])
                    else:
                        vel_a = self._action_step(cache, x_a, plan.fixed, plan.temb[j], plan.mods[j],
                                                  step_pack, plan.head[j])
                    res.action_passes += 1
                else:
                    _, vel_a = m.joint(*last_video, cond, text_kv, x_a, ta[i] * ones, state, None, pack)
                    res.video_recomputes += 1
                x_a = euler_step(x_a, vel_a, ta[i], ta[i + 1])
        if k:
            x_a[:, :k] = prefix
        res.actions, res.future = x_a, x_v
        return res

    def _joint(self, future, t_video, cond, text_kv, actions, t_action, state, pack):
        """One joint pass; with the cache on, its K/V land in self._cache for the action steps."""
        cache = self._cache if self.use_cache else None
        if self._joint_kv is None or cache is None:
            return self.model.joint(future, t_video, cond, text_kv, actions, t_action, state, cache, pack)
        vel_v, vel_a, kv = self._joint_kv(future, t_video, cond, text_kv, actions, t_action, state)
        lv = kv[0][0].shape[2] - self.model.cfg.num_action_tokens
        for i, (k, v) in enumerate(kv):      # graph outputs copied into the cache's own buffers
            cache.layer(i, k[:, :, :lv], v[:, :, :lv], k[:, :, lv:], v[:, :, lv:])
        return vel_v, vel_a

    def _autocast(self, device: torch.device):
        dtype = self.dtype
        if dtype is None:
            dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        if dtype != torch.float32 and device.type in ("cuda", "cpu"):
            return torch.autocast(device.type, dtype=dtype)
        return contextlib.nullcontext()


def compiled(fn, backend: str = "inductor", on_cuda: bool = False):
    """torch.compile for the sampling loop's static shapes. CUDA: CUDA graphs (reduce-overhead).
    CPU inductor: weight freezing (weights become constants of the graph, [q; k; v] folded into
    one matrix) and the C++ wrapper (no Python between kernels): on this project's 2-core CPU
    sim-tiny's RT chunk went 27.1 -> 23.0 ms with both (policy.bench, one thread); without them
    compiling gained nothing over eager."""
    if backend != "inductor":
        return torch.compile(fn, backend=backend, dynamic=False)
    if on_cuda:
        return torch.compile(fn, dynamic=False, mode="reduce-overhead")
    return torch.compile(fn, dynamic=False, options={"freezing": True, "cpp_wrapper": True})
