"""Train Efficient-WAM: codec (sim-tiny), then the paper's three stages. Resumable; runs under torchrun.

    python -m policy.train --data data/demos --out runs/sim-tiny
    torchrun --nproc-per-node 2 -m policy.train --data data/demos --out runs/sim-tiny   # DDP (gloo on CPU)

Stages (policy/training/stages.py): codec -> video (stage 1) -> action (stage 2, video frozen) ->
joint (stage 3). OUT holds the checkpoint (model.safetensors + config.json, what
policy.serving.wam_runner.load_runner reads), train_state.json / optimizer.safetensors for resuming
(re-running the same command continues where it stopped), train_log.jsonl, and caches of the
decoded frames and latents.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from policy.model.checkpoint import load_checkpoint, prefixed, save_checkpoint, split_state
from policy.model.codec import TinyCodec, build_codec
from policy.model.config import WAMConfig, get_preset
from policy.model.text import build_text_encoder
from policy.model.wam import EfficientWAM
from policy.training.data import PreparedDataset, dataset_roots, load_or_prepare
from policy.training.latents import (LatentCache, embed_instructions, encode_dataset, encode_sharded,
                                     fit_latent_stats, instruction_groups)
from policy.training.distill import distill_weight
from policy.training.stages import (BatchSource, CodecObjective, Normaliser, StageConfig, default_lr,
                                    default_stages, flow_losses, lr_factor, param_groups)
from policy.training.state import OPTIMIZER, load_optimizer, load_state, save_optimizer, save_state


@dataclass
class TrainConfig:
    data: str
    out: str
    preset: str = "sim-tiny"
    model_overrides: dict = field(default_factory=dict)   # WAMConfig fields to change (sizes)
    codec_steps: int = 300
    video_steps: int = 300
    action_steps: int = 400
    joint_steps: int = 800
    lr: float | None = None          # peak action LR (None: the preset's, stages.default_lr: paper
                                     # 5e-5, sim-tiny 1e-3); the video LR follows default_stages
    joint_video_ratio: float = 0.2   # stage 3: video LR = this x action LR (the paper's 1/5)
    batch_size: int = 32             # global, split over ranks
    codec_batch_size: int = 16
    codec_foreground: float = 20.0   # extra loss weight on pixels unlike the mean frame (0: plain loss)
    weight_decay: float = 1e-3
    grad_clip: float = 1.0
    state_noise: float = 0.05        # normalised units: robustness to the policy's own drift
    start_weight: float = 1.0        # frames of an episode's first chunk drawn this many times as often
    video_free_prob: float = 0.1     # action/joint steps without future tokens (the [0, T_a] mode)
    seed: int = 0
    save_every: int = 200
    log_every: int = 10
    bf16: str = "auto"               # "auto": on CUDA only (this CPU has no fast bf16), "on", "off"
    device: str = "auto"
    rank_weights: bool = False       # each rank writes its final weights (to check DDP sync)
    fsdp: bool = False               # torchrun: shard parameters, gradients and AdamW state over the ranks
                                     # (FSDP2 fully_shard) instead of replicating them (DDP)
    init_codec: str | None = None    # take the codec from this checkpoint (then --codec-steps 0)
    init: str | None = None          # fine-tune: start the whole model (sizes, weights, codec) from this
                                     # checkpoint; stages then continue from its weights
    teacher: str | None = None       # a larger trained checkpoint: slice it into the video expert and
                                     # distil it in stage 1 (policy/training/distill.py)
    distill: bool = True             # False: slice the teacher only (the paper's "sliced" ablation)
    threads: int = 0                 # torch CPU threads per process (0: torch's default); on a
                                     # machine shared with other jobs 1 avoids OpenMP spin-waiting
    text_dir: str | None = None      # local umT5 encoder directory (paper presets)
    vae_dir: str | None = None       # local Wan2.2 VAE directory (paper presets)


# ---- distributed ----------------------------------------------------------------------------
@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def init_distributed(device: str) -> Dist:
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist(0, 1, dev)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank, world, dev)


def wrap(module: nn.Module, d: Dist) -> nn.Module:
    if d.world == 1:
        return module
    from torch.nn.parallel import DistributedDataParallel as DDP
    # find_unused_parameters: video-free steps leave the video head without a gradient
    return DDP(module, device_ids=[d.device.index] if d.device.type == "cuda" else None,
               find_unused_parameters=True)


# WAMConfig fields --model may switch on over an --init checkpoint, with the weights each adds:
# those keep their own initialisation while every other weight comes from the checkpoint.
INIT_ADDABLE = {"condition_positions": "video.condition_positions"}


# ---- the trainer ----------------------------------------------------------------------------
class Trainer:
    def __init__(self, tc: TrainConfig):
        if tc.threads > 0:
            torch.set_num_threads(tc.threads)
        self.tc, self.d = tc, init_distributed(tc.device)
        self.out = Path(tc.out)
        self.out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(tc.seed)
        if tc.init:        # the checkpoint's own sizes: its weights must fit
            if tc.init_codec or tc.teacher:
                raise SystemExit("--init takes the whole model (codec included) from its checkpoint: drop "
                                 "--init-codec / --teacher")
            self.cfg: WAMConfig = WAMConfig.from_dict(load_checkpoint(tc.init)[1]["wam_config"])
            changed = {k for k, v in tc.model_overrides.items() if getattr(self.cfg, k) != v} - INIT_ADDABLE.keys()
            if changed:
                raise SystemExit(f"--init {tc.init} keeps the checkpoint's sizes: --model may only add "
                                 f"{sorted(INIT_ADDABLE)}, not change {sorted(changed)}")
            self.cfg = self.cfg.replace(**tc.model_overrides)
        else:
            self.cfg = get_preset(tc.preset).replace(**tc.model_overrides)
        self.model = EfficientWAM(self.cfg).to(self.d.device)
        if self.cfg.codec == "wan22" and not tc.vae_dir:
            raise SystemExit(f"preset {self.cfg.name} encodes video with the Wan2.2 VAE: pass --vae-dir DIR")
        if self.cfg.text_encoder == "umt5" and not tc.text_dir:
            raise SystemExit(f"preset {self.cfg.name} encodes text with umT5: pass --text-dir DIR")
        # the frozen codec on the training device (the Wan2.2 VAE in bf16 when training in bf16)
        self.codec = build_codec(self.cfg.codec, self.cfg.latent_channels, self.cfg.spatial_factor,
                                 self.cfg.temporal_factor, tc.vae_dir, device=self.d.device,
                                 dtype=torch.bfloat16 if self._bf16() else torch.float32)
        self.lr = tc.lr if tc.lr is not None else default_lr(self.cfg.name)
        self.stages = default_stages(tc.codec_steps, tc.video_steps, tc.action_steps, tc.joint_steps, self.lr,
                                     tc.joint_video_ratio)
        self.state = load_state(self.out) or {"stage": None, "step": 0, "finished": [], "seconds": 0.0}
        self.teacher = None                  # policy.training.distill.TeacherDistillation with --teacher
        self._sharded = False                # --fsdp: the model is sharded (in place) at the first flow stage
        if tc.fsdp and tc.teacher:
            raise SystemExit("--fsdp with --teacher: the distillation forward runs outside the sharded model's "
                             "forward; use DDP (drop --fsdp) for stage 1 with a teacher")
        if tc.teacher:
            self._load_teacher(tc.teacher)
        if self.state["finished"] or self.state["stage"]:
            self._load_weights()
        elif tc.teacher:
            self._slice_teacher(tc.teacher)
        elif tc.init:
            self._init_model(tc.init)
        elif tc.init_codec:
            self._init_codec(tc.init_codec)
        self.data = self._prepare_data()
        self.norm_stats = self.data.norm_stats()
        self.source = BatchSource(self.data, self.cfg, Normaliser.from_stats(self.norm_stats),
                                  state_noise=tc.state_noise, start_weight=tc.start_weight,
                                  device=self.d.device)
        self._t_start = time.perf_counter()
        self.log_file = self.out / "train_log.jsonl"

    def log(self, msg: str) -> None:
        if self.d.main:
            from rich.console import Console
            Console(stderr=True).print(msg)

    # ---- data ------------------------------------------------------------------------------
    def _prepare_data(self) -> PreparedDataset:
        cache = self.out / "cache" / "frames"
        if self.d.main:
            data = load_or_prepare(self.tc.data, self.cfg, cache, progress=True)
        self.d.barrier()
        if not self.d.main:
            data = PreparedDataset.load(cache)
        self.log(f"dataset: {data.num_episodes} episodes, {len(data)} frames, "
                 f"{len(data.instructions)} instructions, images {data.images.shape[1:]}")
        return data

    def _prepare_flow_inputs(self) -> None:
        """Latent cache (after the codec is final) and the text embeddings."""
        codec = self.codec.eval() if isinstance(self.codec, nn.Module) else self.codec
        key = f"codec@{_checksum(self.codec)}|{len(self.data)}"
        cache_dir = self.out / "cache" / "latents"
        latents = LatentCache.load(cache_dir, key)
        if latents is None and self.d.world == 1:
            latents = encode_dataset(codec, self.data, self.cfg, progress=True)
            latents.save(cache_dir, key)
        elif latents is None:           # torchrun: each rank encodes its shard (the Wan VAE is the slow part)
            latents = encode_sharded(codec, self.data, self.cfg, cache_dir, key, self.d.rank, self.d.world,
                                     self.d.barrier, progress=self.d.main)
        encoder = build_text_encoder(self.cfg.text_encoder, self.cfg.text_len, self.d.device, self.tc.text_dir,
                                     dtype=torch.bfloat16 if self._bf16() and self.cfg.text_encoder == "umt5"
                                     else torch.float32)
        groups = instruction_groups(self.data.instructions)
        self.phrasings = sorted({t for g in groups for t in g})      # every text trained on (checkpoint)
        text, rows = embed_instructions(encoder, self.cfg.scene_prefix, groups)
        dev = self.d.device      # moved once; every batch is then gathered on the device
        self.source.latents = LatentCache(latents.cond.to(dev), latents.future.to(dev))
        self.source.text, self.source.text_rows = text.to(dev), rows
        del encoder
        self.log(f"latents: condition {tuple(latents.cond.shape[1:])}, future {tuple(latents.future.shape[1:])}, "
                 f"{text.shape[0]} instruction texts")

    # ---- checkpoints -----------------------------------------------------------------------
    def _init_codec(self, checkpoint: str) -> None:
        state, meta = load_checkpoint(checkpoint)
        codec_state = split_state(state, "codec")
        if not isinstance(self.codec, TinyCodec) or not codec_state:
            raise SystemExit(f"--init-codec {checkpoint}: no codec.* weights there (or this preset's codec "
                             "is not trained here)")
        theirs = WAMConfig.from_dict(meta["wam_config"])
        for f in ("latent_channels", "spatial_factor", "temporal_factor"):
            if getattr(theirs, f) != getattr(self.cfg, f):
                raise SystemExit(f"--init-codec {checkpoint}: its {f} is {getattr(theirs, f)}, this model "
                                 f"needs {getattr(self.cfg, f)}")
        self.codec.load_state_dict(codec_state)
        self.log(f"codec taken from {checkpoint}")

    def _init_model(self, checkpoint: str) -> None:
        """Fine-tuning: every weight (and the codec with its latent statistics) from checkpoint."""
        state, _ = load_checkpoint(checkpoint)
        missing, unexpected = self.model.load_state_dict(split_state(state, "wam"), strict=False)
        new = {weights for field, weights in INIT_ADDABLE.items() if getattr(self.cfg, field)}
        if unexpected or set(missing) - new:
            raise SystemExit(f"--init {checkpoint}: its weights do not fit this model (missing "
                             f"{sorted(set(missing) - new)}, unexpected {sorted(unexpected)})")
        if isinstance(self.codec, TinyCodec):
            self.codec.load_state_dict(split_state(state, "codec"))
        self.log(f"model and codec taken from {checkpoint} (fine-tuning)"
                 + (f"; new, at their initial values: {sorted(missing)}" if missing else ""))

    def _load_teacher(self, checkpoint: str) -> None:
        from policy.training.distill import TeacherDistillation
        if self.tc.codec_steps > 0 and isinstance(self.codec, TinyCodec):
            raise SystemExit("--teacher: the student must read the teacher's latents; use --codec-steps 0 "
                             "(the codec comes from the teacher)")
        # Under torchrun every rank holds the frozen teacher; the student's distillation forward
        # adds to the same parameter gradients DDP all-reduces, and the distiller (not under DDP)
        # starts identical on every rank and has its gradients averaged explicitly.
        try:
            self.teacher = TeacherDistillation(checkpoint, self.cfg, self.d.device)
        except ValueError as e:
            raise SystemExit(f"--teacher {checkpoint}: {e}") from e

    def _slice_teacher(self, checkpoint: str) -> None:
        """Fresh run: the video expert starts as the sliced teacher, the codec is the teacher's."""
        self.model.video.load_state_dict(self.teacher.sliced_video_state())
        if isinstance(self.codec, TinyCodec):      # the Wan2.2 VAE comes from --vae-dir instead
            self._init_codec(checkpoint)
        plan = self.teacher.slice_plan
        self.log(f"video expert sliced from {checkpoint}: teacher layers {list(plan.layers)}, "
                 f"{len(plan.heads)} heads, {len(plan.ffn)} FFN channels")

    def _load_weights(self) -> None:
        state, _ = load_checkpoint(self.out)
        self.model.load_state_dict(split_state(state, "wam"))
        if isinstance(self.codec, TinyCodec):
            self.codec.load_state_dict(split_state(state, "codec"))

    def full_model_state(self) -> dict[str, torch.Tensor]:
        """The model's state dict with whole tensors; under --fsdp a collective (every rank calls it)."""
        from torch.distributed.tensor import DTensor
        return {k: v.full_tensor() if isinstance(v, DTensor) else v for k, v in self.model.state_dict().items()}

    def save(self, optimizer=None, names=None) -> None:
        self.state["seconds"] = self.state.get("seconds_before", 0.0) + time.perf_counter() - self._t_start
        model_state = self.full_model_state() if self._sharded else None      # all ranks gather
        if not self.d.main:
            return
        weights = prefixed(model_state if model_state is not None else self.model.state_dict(), "wam")
        if isinstance(self.codec, TinyCodec):
            weights.update(prefixed(self.codec.state_dict(), "codec"))
        reader_sizes = _camera_sizes(self.tc.data)
        save_checkpoint(self.out, weights, {
            "preset": self.cfg.name, "wam_config": self.cfg.to_dict(), "norm_stats": self.norm_stats,
            "cameras": list(self.cfg.cameras), "scene_prefix": self.cfg.scene_prefix,
            "image_sizes": reader_sizes,
            "training": {"dataset": ",".join(str(r.resolve()) for r in dataset_roots(self.tc.data)),
                         "episodes": self.data.num_episodes,
                         "frames": len(self.data), "instructions": self.data.instructions,
                         "phrasings": getattr(self, "phrasings", None) or self.data.instructions,
                         "stages": {s.name: dataclasses.asdict(s) for s in self.stages},
                         "finished": self.state["finished"], "seconds": round(self.state["seconds"], 1),
                         "world_size": self.d.world, "train_config": dataclasses.asdict(self.tc)}})
        if optimizer is not None and not self._sharded:    # sharded moments restart on resume
            save_optimizer(self.out / OPTIMIZER, optimizer, names)
        save_state(self.out, self.state)

    # ---- stages ----------------------------------------------------------------------------
    def run(self) -> None:
        self.state["seconds_before"] = self.state.get("seconds", 0.0)
        done = self.state.setdefault("done_steps", {})
        for i, stage in enumerate(self.stages):
            if stage.name in self.state["finished"]:
                if done.get(stage.name, stage.steps) >= stage.steps:
                    continue
                later = [s.name for s in self.stages[i + 1:] if s.name in self.state["finished"]]
                if later:
                    raise SystemExit(f"stage {stage.name} finished after {done[stage.name]} steps and stages "
                                     f"{later} ran on it: it cannot be extended to {stage.steps}; use a new --out")
                # Extend a finished last stage: continue from its step count with the new total.
                self.state["finished"].remove(stage.name)
                self.state.update(stage=stage.name, step=done[stage.name])
            if stage.name == "codec" and not isinstance(self.codec, TinyCodec):
                self._finish(stage)
                continue
            if stage.name != "codec" and self.source.latents is None:
                self._prepare_flow_inputs()
            start = self.state["step"] if self.state["stage"] == stage.name else 0
            self.state.update(stage=stage.name, step=start)
            self._run_stage(i, stage, start)
            if stage.name == "codec":
                self._fit_codec_stats()
            self._finish(stage)
        if self.tc.rank_weights:
            from safetensors.torch import save_file
            save_file({k: v.detach().cpu().contiguous() for k, v in self.full_model_state().items()},
                      str(self.out / f"rank{self.d.rank}_weights.safetensors"))
        self.log(f"[bold green]done[/] in {self.state['seconds']:.0f} s: checkpoint in {self.out}")

    def _finish(self, stage: StageConfig) -> None:
        self.state["finished"].append(stage.name)
        self.state.setdefault("done_steps", {})[stage.name] = stage.steps
        self.state.update(stage=None, step=0)
        self.save()
        (self.out / OPTIMIZER).unlink(missing_ok=True) if self.d.main else None

    @torch.no_grad()
    def _fit_codec_stats(self) -> None:
        self.codec.eval()
        mean, std = fit_latent_stats(self.codec, self.data, self.cfg, seed=self.tc.seed)
        self.codec.set_latent_stats(mean.to(self.d.device), std.to(self.d.device))

    def _bf16(self) -> bool:
        return self.tc.bf16 == "on" or (self.tc.bf16 == "auto" and self.d.device.type == "cuda")

    def _autocast(self):
        return torch.autocast(self.d.device.type, dtype=torch.bfloat16) if self._bf16() else contextlib.nullcontext()

    def _run_stage(self, index: int, stage: StageConfig, start: int) -> None:
        tc, d = self.tc, self.d
        if stage.name == "codec":
            self.codec.train()
            cond_bg, clip_bg = self.source.mean_frames()
            module = CodecObjective(self.codec, cond_bg, clip_bg, tc.codec_foreground).to(d.device)
            groups = [{"params": list(self.codec.parameters()), "lr": stage.lr_video, "base_lr": stage.lr_video}]
            named = dict(self.codec.named_parameters())
            per_rank = max(1, tc.codec_batch_size // d.world)
        else:
            self.codec.eval() if isinstance(self.codec, nn.Module) else None
            self.model.train()
            if tc.fsdp and d.world > 1 and not self._sharded:
                from torch.distributed.fsdp import fully_shard
                # sharded as one unit: the experts' blocks are driven by EfficientWAM.joint, not by
                # their own forward, so the whole model is gathered per step while parameters,
                # gradients and optimizer moments stay sharded between steps
                fully_shard(self.model)
                self._sharded = True
            groups = param_groups(self.model, stage)
            module, named = self.model, dict(self.model.named_parameters())
            per_rank = max(1, tc.batch_size // d.world)
        names = {p: n for n, p in named.items()}
        ddp = module if (self._sharded and module is self.model) else wrap(module, d)
        rng = np.random.default_rng([tc.seed, d.rank, index, start])
        gen = torch.Generator(d.device).manual_seed(int(rng.integers(2 ** 62)))
        distiller = None
        if stage.name == "video" and self.teacher is not None and tc.distill:
            # the PCA is fitted on global-size batches (rank 0's are broadcast under torchrun)
            distiller = self.teacher.make_distiller([self.source.flow_batch(rng, tc.batch_size) for _ in range(8)], gen)
            plan = self.teacher.plan
            self.log(f"distillation: hidden pairs {list(plan.hidden)}, motion pairs {list(plan.motion)} "
                     f"(student, teacher; 1-indexed), {plan.proj_dim}-d")
            groups = groups + [{"params": list(distiller.parameters()), "lr": stage.lr_video,
                                "base_lr": stage.lr_video}]
        optimizer = torch.optim.AdamW(groups, weight_decay=tc.weight_decay, betas=(0.9, 0.95))
        if start > 0 and (self.out / OPTIMIZER).exists():
            load_optimizer(self.out / OPTIMIZER, optimizer, names)
        params = [p for g in groups for p in g["params"]]
        t_last, samples_since = time.perf_counter(), 0
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
        columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeRemainingColumn(), TextColumn("{task.fields[info]}"))
        with Progress(*columns, disable=not d.main, transient=False) as progress:
            bar = progress.add_task(f"stage {stage.name}", total=stage.steps, completed=start, info="")
            for step in range(start, stage.steps):
                for g in optimizer.param_groups:
                    g["lr"] = g["base_lr"] * lr_factor(step, stage.steps)
                with self._autocast():
                    if stage.name == "codec":
                        cond, clip = self.source.codec_batch(rng, per_rank)
                        loss = ddp(cond, clip)          # already on the device (BatchSource)
                        parts = {"rec": loss.item()}
                    else:
                        batch = self.source.flow_batch(rng, per_rank)
                        free = stage.action_weight > 0 and rng.random() < tc.video_free_prob
                        lv, la = flow_losses(ddp, batch, self.cfg.shift, gen, video_free=free)
                        loss = stage.video_weight * lv + stage.action_weight * la
                        parts = {"video": lv.item(), "action": la.item()}
                        if distiller is not None and (w := distill_weight(step, stage.steps)) > 0:
                            align, motion = self.teacher.losses(distiller, self.model.video, batch, gen)
                            loss = loss + w * (align + motion)
                            parts.update(align=align.item(), motion=motion.item())
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if distiller is not None and d.world > 1:
                    from policy.training.distill import all_reduce_grads
                    all_reduce_grads(distiller)
                grad_norm = torch.nn.utils.clip_grad_norm_(params, tc.grad_clip)
                grad_norm = float(grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm)
                optimizer.step()
                samples_since += per_rank * d.world
                self.state["step"] = step + 1
                if (step + 1) % tc.log_every == 0 or step + 1 == stage.steps:
                    now = time.perf_counter()
                    rate = samples_since / max(now - t_last, 1e-9)
                    t_last, samples_since = now, 0
                    info = " ".join(f"{k} {v:.4f}" for k, v in parts.items()) + f" | {rate:.1f} samples/s"
                    progress.update(bar, completed=step + 1, info=info)
                    if d.main:
                        with open(self.log_file, "a") as f:
                            f.write(json.dumps({"stage": stage.name, "step": step + 1, **parts,
                                                "grad_norm": round(grad_norm, 4), "lr": optimizer.param_groups[0]["lr"],
                                                "samples_per_s": round(rate, 2),
                                                "elapsed_s": round(time.perf_counter() - self._t_start, 1)}) + "\n")
                else:
                    progress.update(bar, completed=step + 1)
                if (step + 1) % tc.save_every == 0 and step + 1 < stage.steps:
                    self.save(optimizer, names)


def _checksum(codec) -> str:
    """Identifies the codec's weights (the latent cache is valid for these only)."""
    if not isinstance(codec, nn.Module):
        return type(codec).__name__
    return "%.9e" % sum(float(t.double().abs().sum()) for t in codec.state_dict().values())


def _camera_sizes(data: str) -> dict[str, list[int]]:
    """The recorded camera sizes (what the runner resizes live images to); combined datasets must agree."""
    from policy.episodes.reader import DatasetReader
    sizes = [{cam: list(hw) for cam, hw in DatasetReader(r).spec.cameras.items()} for r in dataset_roots(data)]
    if any(s != sizes[0] for s in sizes[1:]):
        raise SystemExit(f"--data {data}: the datasets' cameras differ ({sizes}); combine recordings of one rig")
    return sizes[0]


FLOAT_HELP = {
    "lr": "peak action LR; default the preset's (paper-1b 5e-5: stage 1-2 5e-5, stage 3 video 1e-5 / "
          "action 5e-5; sim-tiny 1e-3)",
    "joint_video_ratio": "stage 3 (joint): the video expert's LR as a fraction of the action LR (default "
                         "0.2, the paper's); 1 trains both alike (the video stream is where the text meets "
                         "the picture)",
    "start_weight": "draw the frames of each episode's first chunk (its first horizon frames) this many "
                    "times as often as the rest (default 1: uniform); the first chunk is the one only the "
                    "picture decides",
}


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="dataset directory (LeRobot v3 layout, policy.episodes); "
                   "DIR1,DIR2 combines several")
    p.add_argument("--out", required=True, help="run directory: checkpoint, state, logs, caches")
    p.add_argument("--preset", default="sim-tiny")
    p.add_argument("--model", default="{}", help='JSON WAMConfig overrides, e.g. \'{"video_layers": 4}\'')
    defaults = TrainConfig(data="", out="")
    for name in ("codec_steps", "video_steps", "action_steps", "joint_steps", "batch_size", "codec_batch_size",
                 "seed", "save_every", "log_every", "threads"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(defaults, name))
    for name in ("lr", "joint_video_ratio", "weight_decay", "grad_clip", "state_noise", "video_free_prob",
                 "codec_foreground", "start_weight"):
        p.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(defaults, name),
                       help=FLOAT_HELP.get(name))
    p.add_argument("--bf16", choices=("auto", "on", "off"), default="auto")
    p.add_argument("--text-dir", help="local umT5 encoder directory (config.json, weights, tokenizer): paper presets")
    p.add_argument("--vae-dir", help="local Wan2.2 VAE directory (diffusers AutoencoderKLWan): paper presets")
    p.add_argument("--device", default="auto")
    p.add_argument("--init-codec", help="checkpoint whose trained codec to start from (with --codec-steps 0 "
                   "it is used as is)")
    p.add_argument("--init", help="fine-tune: start the whole model (its sizes, weights and codec) from this "
                   "checkpoint; --model may only add condition_positions")
    p.add_argument("--teacher", help="a larger checkpoint trained here (same token layout and head_dim): the "
                   "video expert starts as its slice and stage 1 adds the paper's distillation losses; "
                   "needs --codec-steps 0")
    p.add_argument("--no-distill", dest="distill", action="store_false",
                   help="with --teacher: start from the slice but train stage 1 without the alignment losses")
    p.add_argument("--fsdp", action="store_true",
                   help="under torchrun: shard parameters, gradients and optimizer state (FSDP2) instead of DDP "
                        "(paper-1b on several GPUs; not with --teacher; optimizer moments restart on resume)")
    p.add_argument("--rank-weights", action="store_true",
                   help="each rank also writes rankN_weights.safetensors (to verify DDP kept them equal)")
    a = p.parse_args(argv)
    try:
        overrides = json.loads(a.model)
    except json.JSONDecodeError as e:
        p.error(f"--model must be a JSON object of WAMConfig fields: {e}")
    unknown = set(overrides) - {f.name for f in dataclasses.fields(WAMConfig)}
    if unknown:
        p.error(f"--model: unknown WAMConfig fields {sorted(unknown)}")
    kw = {k: v for k, v in vars(a).items() if k not in ("model",)}
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in kw.items()}
    return TrainConfig(model_overrides={k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}, **kw)


def main(argv: list[str] | None = None) -> None:
    tc = parse_args(argv)
    for root in dataset_roots(tc.data):
        if not root.exists():
            raise SystemExit(f"--data {root} does not exist: generate demonstrations first with "
                             f"`python -m policy.episodes.generate --out {root} --tasks all --episodes-per-task 50`")
    trainer = Trainer(tc)
    try:
        trainer.run()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
