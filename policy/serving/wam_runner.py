"""WAMRunner: Efficient-WAM as a PolicyRunner (what policy.server serves).

infer() composes the T-layout image, encodes the condition latent, samples [T_v, T_a] and
returns the un-normalised action chunk; it never decodes video. The sampled future latents of
the last few chunks are kept, and preview(chunk_id) decodes them when someone wants to look.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch

from policy.model.checkpoint import load_checkpoint, split_state
from policy.model.codec import (
    LatentCodec,
    TinyCodec,
    build_codec,
    frames_to_tensor,
    tensor_to_frames,
)
from policy.model.config import WAMConfig, get_preset
from policy.model.flow import randn
from policy.model.observation import compose_t_layout
from policy.model.precision import cast_for_inference, parse_dtype
from policy.model.sampler import FlowSampler
from policy.model.text import CachedText, build_text_encoder
from policy.model.wam import EfficientWAM
from policy.serving.monitors import FamiliarityIndex, MonitorThresholds, surprise_state
from policy.serving.runner import PolicyRunner
from policy.wire.types import ActionChunk, Observation, PolicyMetadata

log = logging.getLogger(__name__)

DEFAULT_CAMERA_SIZE = [240, 320]      # [height, width] of the sim cameras


@dataclass
class NormStats:
    """Per-dimension mean/std of state and actions (identity for random weights)."""
    state_mean: np.ndarray
    state_std: np.ndarray
    action_mean: np.ndarray
    action_std: np.ndarray

    @classmethod
    def identity(cls, dim: int) -> NormStats:
        z, o = np.zeros(dim, np.float32), np.ones(dim, np.float32)
        return cls(z, o, z.copy(), o.copy())

    @classmethod
    def from_dict(cls, d: dict, dim: int) -> NormStats:
        def arr(part, key, default):
            v = np.asarray(d.get(part, {}).get(key, default), np.float32)
            if v.shape != (dim,):
                raise ValueError(f"norm_stats.{part}.{key} has shape {v.shape}, expected ({dim},)")
            return v
        return cls(arr("state", "mean", np.zeros(dim)), np.maximum(arr("state", "std", np.ones(dim)), 1e-6),
                   arr("action", "mean", np.zeros(dim)), np.maximum(arr("action", "std", np.ones(dim)), 1e-6))

    def to_dict(self) -> dict:
        return {"state": {"mean": self.state_mean.tolist(), "std": self.state_std.tolist()},
                "action": {"mean": self.action_mean.tolist(), "std": self.action_std.tolist()}}


class WAMRunner(PolicyRunner):
    def __init__(self, model: EfficientWAM, codec: LatentCodec, text: CachedText, norm: NormStats,
                 preset: str, device: str = "cpu", steps: tuple[int, int] = (2, 10), seed: int = 0,
                 keep_previews: int = 8, image_sizes: dict[str, list[int]] | None = None,
                 compile: bool = False, training_instructions: list[str] | None = None,
                 thresholds: MonitorThresholds | None = None, dtype: str | torch.dtype | None = None,
                 text_kv_capacity: int = 16):
        self.model, self.codec, self.text, self.norm = model, codec, text, norm
        self.thresholds = thresholds or MonitorThresholds()
        self.cfg: WAMConfig = model.cfg
        self.device = torch.device(device)
        self.dtype = parse_dtype(dtype, self.device)
        self.sampler = FlowSampler(model, tuple(steps), self.cfg.shift,
                                   compile=compile, dtype=self.dtype)
        # the generator lives where the noise is drawn (meta tensors have no generator)
        self.generator = (None if self.device.type == "meta"
                          else torch.Generator(self.device).manual_seed(seed))
        # per instruction: text tokens and their per-layer K/V, on the device (instructions rarely change)
        self._text_kv: OrderedDict[str, list] = OrderedDict()
        self.text_kv_capacity = text_kv_capacity
        self.keep_previews = keep_previews
        self._futures: OrderedDict[int, tuple[np.ndarray, torch.Tensor]] = OrderedDict()
        self._next_id = 0
        self._lock = threading.Lock()       # infer and preview may come from different threads
        fh, fw = self.cfg.future_image_size
        self._metadata = PolicyMetadata(
            preset=preset, action_dim=self.cfg.action_dim, chunk_length=self.cfg.horizon,
            camera_names=list(self.cfg.cameras),
            image_sizes=image_sizes or {c: list(DEFAULT_CAMERA_SIZE) for c in self.cfg.cameras},
            control_hz=self.cfg.control_hz, scene_prefix=self.cfg.scene_prefix,
            future_frames=self.cfg.future_frames if steps[0] > 0 else 0, preview_size=[fh, fw],
            steps=list(steps))
        self._familiarity_cache: OrderedDict[str, dict] = OrderedDict()
        self.familiarity_index = None
        if training_instructions:      # embedded once, at load
            self.familiarity_index = FamiliarityIndex(
                list(training_instructions), np.stack([self.instruction_embedding(i) for i in training_instructions]),
                self.thresholds.familiarity)

    @property
    def imagines_future(self) -> bool:
        return self.sampler.steps[0] > 0

    @property
    def metadata(self) -> PolicyMetadata:
        return self._metadata

    def _check(self, obs: Observation) -> np.ndarray:
        state = np.asarray(obs.state, np.float32)
        if state.shape != (self.cfg.action_dim,):
            raise ValueError(f"state has shape {state.shape}, expected ({self.cfg.action_dim},): "
                             "[left 6 joints, left gripper, right 6 joints, right gripper]")
        if not np.isfinite(state).all():
            raise ValueError("state contains NaN/inf: check the arm readout")
        if not isinstance(obs.instruction, str):
            raise TypeError(f"instruction must be a string, got {type(obs.instruction).__name__}")
        return state

    def text_kv(self, instruction: str) -> list:
        """Per-layer text K/V of an instruction, on the device, computed once per instruction
        (LRU): a chunk with a known instruction copies no text and projects no text K/V."""
        if instruction in self._text_kv:
            self._text_kv.move_to_end(instruction)
            return self._text_kv[instruction]
        text = self.text(instruction).to(self.device, non_blocking=True)
        kv = self.sampler.text_kv(text)
        self._text_kv[instruction] = kv
        while len(self._text_kv) > self.text_kv_capacity:
            self._text_kv.popitem(last=False)
        return kv

    @torch.no_grad()
    def sample(self, image: np.ndarray, state: np.ndarray, instruction: str):
        """T-layout image (H, W, 3) uint8, raw state (A,), instruction -> SampleResult on the
        device (normalised actions). Every tensor is made on (or moved once to) self.device."""
        text_kv = self.text_kv(instruction)
        cond = self.codec.encode(frames_to_tensor(image, self.device))
        s = torch.from_numpy((state - self.norm.state_mean) / self.norm.state_std).to(self.device)[None]
        return self.sampler.sample(cond, None, s, generator=self.generator, text_kv=text_kv)

    @torch.no_grad()
    def infer(self, obs: Observation) -> ActionChunk:
        t0 = time.perf_counter()
        state = self._check(obs)
        image = compose_t_layout(obs.images, self.cfg.image_height, self.cfg.image_width)
        with self._lock:
            t1 = time.perf_counter()
            text_kv = self.text_kv(obs.instruction)
            t2 = time.perf_counter()
            cond = self.codec.encode(frames_to_tensor(image, self.device))
            t_enc = time.perf_counter()
            s = torch.from_numpy((state - self.norm.state_mean) / self.norm.state_std).to(self.device)[None]
            prefix = None
            if obs.committed is not None and len(obs.committed):     # real-time chunking (sampler.sample)
                committed = np.asarray(obs.committed[:self.cfg.horizon], np.float32)
                prefix = torch.from_numpy(((committed - self.norm.action_mean) / self.norm.action_std)
                                          .astype(np.float32)).to(self.device)[None]
            res = self.sampler.sample(cond, None, s, generator=self.generator, text_kv=text_kv, prefix=prefix)
            actions = res.actions[0].float().cpu().numpy() * self.norm.action_std + self.norm.action_mean
            t3 = time.perf_counter()
            chunk_id = self._next_id
            self._next_id += 1
            self._futures[chunk_id] = (image, res.future.detach() if self.imagines_future else None)
            while len(self._futures) > self.keep_previews:
                self._futures.popitem(last=False)
        return ActionChunk(actions.astype(np.float32), chunk_id,
                           {"inference": _ms(t0, t3), "text": _ms(t1, t2), "encode": _ms(t2, t_enc),
                            "sample": _ms(t_enc, t3)})

    def warm_up(self) -> float:
        """Run one chunk on a blank observation and forget it (noise generator, chunk ids and
        previews as before): the first chunk of a compiled sampler builds its graphs, which should
        happen before anyone waits on it. -> seconds taken."""
        t0 = time.perf_counter()
        md = self._metadata
        images = {c: np.zeros((*md.image_sizes[c], 3), np.uint8) for c in md.camera_names}
        rng = None if self.generator is None else self.generator.get_state()
        next_id = self._next_id
        self.infer(Observation(images, np.zeros(self.cfg.action_dim, np.float32), "warm up"))
        with self._lock:
            if rng is not None:
                self.generator.set_state(rng)
            self._futures.pop(next_id, None)
            self._text_kv.pop("warm up", None)
            self._next_id = next_id
        return time.perf_counter() - t0

    @torch.no_grad()
    def infer_batch(self, observations: list[Observation]) -> list[ActionChunk]:
        """Several robots' observations in one sampler pass (policy.server --batch): chunk i equals
        infer(observations[i]) run alone, one after another, to float tolerance: each sample gets
        the noise it would have drawn alone, in order, and the chunk ids infer() would have given.
        Requests whose committed prefixes differ in length go in separate passes (inpainting
        shares one prefix length). infer()'s own single-request path is untouched."""
        if len(observations) <= 1:
            return [self.infer(obs) for obs in observations]
        t0 = time.perf_counter()
        states = [self._check(obs) for obs in observations]
        images = [compose_t_layout(obs.images, self.cfg.image_height, self.cfg.image_width) for obs in observations]
        h, a = self.cfg.horizon, self.cfg.action_dim
        with self._lock:
            t1 = time.perf_counter()
            text_kvs = [self.text_kv(obs.instruction) for obs in observations]
            t2 = time.perf_counter()
            conds = [self.codec.encode(frames_to_tensor(image, self.device)) for image in images]
            t_enc = time.perf_counter()
            noises = [(randn((1, *self.cfg.future_latent_shape), self.device, self.generator),
                       randn((1, h, a), self.device, self.generator)) for _ in observations]
            prefixes: list[np.ndarray | None] = []
            for obs in observations:
                committed = None if obs.committed is None or not len(obs.committed) else \
                    ((np.asarray(obs.committed[:h], np.float32) - self.norm.action_mean) / self.norm.action_std)
                prefixes.append(None if committed is None else committed.astype(np.float32))
            groups: dict[int, list[int]] = {}
            for i, prefix in enumerate(prefixes):
                groups.setdefault(0 if prefix is None else len(prefix), []).append(i)
            actions: list[np.ndarray | None] = [None] * len(observations)
            futures: list[torch.Tensor | None] = [None] * len(observations)
            for k, members in groups.items():
                text_kv = [(torch.cat([text_kvs[i][layer][0] for i in members]),
                            torch.cat([text_kvs[i][layer][1] for i in members])) for layer in range(len(text_kvs[0]))]
                s = torch.from_numpy(np.stack([(states[i] - self.norm.state_mean) / self.norm.state_std
                                               for i in members]).astype(np.float32)).to(self.device)
                prefix = None if k == 0 else torch.from_numpy(np.stack([prefixes[i] for i in members])).to(self.device)
                noise = (torch.cat([noises[i][0] for i in members]), torch.cat([noises[i][1] for i in members]))
                res = self.sampler.sample(torch.cat([conds[i] for i in members]), None, s, noise=noise,
                                          text_kv=text_kv, prefix=prefix)
                out = res.actions.float().cpu().numpy() * self.norm.action_std + self.norm.action_mean
                for j, i in enumerate(members):
                    actions[i] = out[j]
                    futures[i] = res.future[j:j + 1].detach() if self.imagines_future else None
            t3 = time.perf_counter()
            chunks = []
            for i, image in enumerate(images):
                chunk_id = self._next_id
                self._next_id += 1
                self._futures[chunk_id] = (image, futures[i])
                chunks.append(ActionChunk(actions[i].astype(np.float32), chunk_id,
                                          {"inference": _ms(t0, t3), "text": _ms(t1, t2), "encode": _ms(t2, t_enc),
                                           "sample": _ms(t_enc, t3), "batch": len(observations)}))
            while len(self._futures) > self.keep_previews:
                self._futures.popitem(last=False)
        return chunks

    @torch.no_grad()
    def preview(self, chunk_id: int) -> np.ndarray:
        """(T, h, w, 3) uint8 decoded future; T = 0 for a video-free ([0, T_a]) runner."""
        with self._lock:
            if chunk_id not in self._futures:
                raise KeyError(f"chunk {chunk_id} is unknown or older than the last "
                               f"{self.keep_previews} chunks")
            image, future = self._futures[chunk_id]
            fh, fw = self.cfg.future_image_size
            if future is None:              # video-free [0, T_a]: nothing was imagined
                return np.zeros((0, fh, fw, 3), np.uint8)
            small = frames_to_tensor(_resize(image, fh, fw), self.device)
            current = self.codec.encode(small)                        # (1, C, 1, h, w)
            frames = self.codec.decode_future(current, future)        # (1, 3, T, fh, fw)
        return tensor_to_frames(frames[0])


    @torch.no_grad()
    def instruction_embedding(self, instruction: str) -> np.ndarray:
        """The instruction alone (no scene prefix) through the policy's text encoder, mean-pooled
        over its own tokens (the encoder zeroes padding) -> (dim,) float64."""
        tokens = self.text.encoder.encode([instruction])[0].double()           # (L, dim)
        real = tokens.abs().amax(dim=-1) > 0
        return tokens[real].mean(dim=0).numpy() if real.any() else np.zeros(tokens.shape[-1])

    def familiarity(self, instruction: str) -> dict:
        if self.familiarity_index is None:
            raise NotImplementedError("this checkpoint lists no training instructions (config.json "
                                      "training.instructions), so familiarity cannot be judged")
        if not isinstance(instruction, str) or not instruction.strip():
            raise ValueError("familiarity needs a non-empty instruction")
        key = instruction.strip()
        with self._lock:
            if key not in self._familiarity_cache:
                self._familiarity_cache[key] = self.familiarity_index.score(key, self.instruction_embedding(key))
                while len(self._familiarity_cache) > 256:
                    self._familiarity_cache.popitem(last=False)
            self._familiarity_cache.move_to_end(key)
            return dict(self._familiarity_cache[key])

    @torch.no_grad()
    def surprise(self, chunk_id: int, steps: list[int], frames: dict[str, np.ndarray]) -> dict:
        """Latent MSE between the chunk's imagined future and the codec's encoding of the frames
        seen at the imagined steps (every `stride`-th tick after the observation). Only whole
        latent groups from the start are compared (the codec encodes 4 frames per latent)."""
        with self._lock:
            if chunk_id not in self._futures:
                raise KeyError(f"chunk {chunk_id} is unknown or older than the last {self.keep_previews} chunks")
            image, future = self._futures[chunk_id]
        if future is None:
            raise NotImplementedError("this runner imagines no future ([0, T_a] steps): nothing to compare")
        stride = max(1, self.cfg.horizon // self.cfg.future_frames)
        tf = self.codec.temporal_factor
        index = {int(s): i for i, s in enumerate(steps)}
        wanted = [stride * (k + 1) for k in range(self.cfg.future_frames)]
        have = 0
        while have < len(wanted) and wanted[have] in index:
            have += 1
        groups = min(have // tf, future.shape[2])
        if groups == 0:
            raise ValueError(f"surprise needs the frames of steps {wanted[:tf]} at least (one latent's worth); "
                             f"got steps {sorted(index)}")
        missing = [c for c in self.cfg.cameras if c not in frames]
        if missing:
            raise ValueError(f"surprise frames lack cameras {missing}")
        fh, fw = self.cfg.future_image_size
        seen = np.stack([_resize(compose_t_layout({c: frames[c][index[s]] for c in self.cfg.cameras},
                                                  self.cfg.image_height, self.cfg.image_width), fh, fw)
                         for s in wanted[:groups * tf]])
        with self._lock:
            current = frames_to_tensor(_resize(image, fh, fw), self.device)[:, :, 0]
            observed = self.codec.encode_future(current, frames_to_tensor(seen, self.device))
        imagined = future[:, :, :groups].to(observed.device, observed.dtype)
        per_latent = ((imagined - observed) ** 2).mean(dim=(0, 1, 3, 4)).cpu().tolist()
        value = float(np.mean(per_latent))
        return {"chunk_id": chunk_id, "surprise": value, "per_latent": [float(v) for v in per_latent],
                "frames_used": groups * tf, "steps_used": wanted[:groups * tf],
                "thresholds": {"surprised": self.thresholds.surprised, "lost": self.thresholds.lost},
                "state": surprise_state(value, self.thresholds)}


def _ms(start: float, end: float) -> float:
    return (end - start) * 1000.0


def _resize(image: np.ndarray, h: int, w: int) -> np.ndarray:
    import cv2
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)


def load_runner(checkpoint: str | None = None, preset: str = "sim-tiny", device: str = "cpu",
                steps: tuple[int, int] = (2, 10), seed: int = 0, text_dir: str | None = None,
                vae_dir: str | None = None, compile: bool = False,
                threads: int | None = None, dtype: str | torch.dtype | None = None) -> WAMRunner:
    """A ready runner. checkpoint=None -> random weights, identity normalisation (for tests).

    Everything lands on `device` once, here: the model (weights cast once to `dtype`, float32
    islands kept; auto = bf16 on CUDA), every codec (the Wan2.2 VAE through diffusers in the
    same dtype), the text encoder. paper-1b needs text_dir (umT5) and vae_dir (Wan2.2 VAE).

    threads: torch intra-op threads for this process (None: leave as is). sim-tiny on CPU is
    bound by per-op overhead, and on shared cores extra OpenMP threads make it much slower:
    1 is the measured best on the 2-core machine (policy/bench.py)."""
    if threads is not None:
        torch.set_num_threads(threads)
    state, meta = ({}, {}) if checkpoint is None else load_checkpoint(checkpoint)
    cfg = WAMConfig.from_dict(meta["wam_config"]) if "wam_config" in meta else get_preset(preset)
    preset = meta.get("preset", cfg.name if checkpoint else preset)
    torch.manual_seed(seed)
    dt = parse_dtype(dtype, device)
    if cfg.text_encoder == "umt5" and text_dir is None:
        raise ValueError(f"preset {cfg.name} encodes text with umT5: pass text_dir (--text-dir DIR, a local "
                         "umT5 encoder directory with config.json, weights and tokenizer)")
    if cfg.codec == "wan22" and vae_dir is None:
        raise ValueError(f"preset {cfg.name} uses the Wan2.2 VAE: pass vae_dir (--vae-dir DIR, the 'vae' folder "
                         "of Wan-AI/Wan2.2-TI2V-5B-Diffusers)")
    with torch.device(device):          # built where it runs (a 1B model initialises in seconds there)
        model = EfficientWAM(cfg)
    codec = build_codec(cfg.codec, cfg.latent_channels, cfg.spatial_factor, cfg.temporal_factor, vae_dir,
                        device=device, dtype=dt)
    if checkpoint is not None:
        model.load_state_dict(split_state(state, "wam"))
        codec_state = split_state(state, "codec")
        if isinstance(codec, TinyCodec):
            if not codec_state:
                raise ValueError(f"{checkpoint} has no codec.* weights: the sim-tiny codec is trained "
                                 "with the model and saved in the same checkpoint")
            codec.load_state_dict(codec_state)
    model = cast_for_inference(model.to(device).eval().requires_grad_(False), dt)
    if isinstance(codec, TinyCodec):
        codec = codec.to(device).eval()
    norm = (NormStats.from_dict(meta["norm_stats"], cfg.action_dim) if "norm_stats" in meta
            else NormStats.identity(cfg.action_dim))
    text_dtype = dt if cfg.text_encoder == "umt5" else torch.float32
    text = CachedText(build_text_encoder(cfg.text_encoder, cfg.text_len, device, text_dir, dtype=text_dtype),
                      meta.get("scene_prefix", cfg.scene_prefix))
    runner = WAMRunner(model, codec, text, norm, preset, device, steps, seed, dtype=dt,
                       image_sizes=meta.get("image_sizes"), compile=compile,
                       training_instructions=(meta.get("training", {}).get("phrasings")      # every text trained on
                                              or meta.get("training", {}).get("instructions")),
                       thresholds=MonitorThresholds.load(checkpoint))
    if compile:     # the graphs are built now, not on the first robot's first chunk
        log.info("compiling the sampler's graphs (torch.compile; about a minute the first time on a 2-core CPU, "
                 "seconds once inductor's on-disk cache holds them)")
        log.info("compiled in %.1f s", runner.warm_up())
    return runner
