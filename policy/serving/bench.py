"""The paper's latency ladder, measured in one process on the current device.

  python -m policy.bench --preset sim-tiny [--chunks 20] [--warmup 3] [--threads 1] [--device cpu]

Rungs: teacher dense [10,10] -> compact dense [10,10] -> + low-res future -> + [2,10] (RT).
Each rung is the median over `--chunks` policy calls after warm-up: T-layout composition,
condition encoding, sampling, actions to numpy; text embeddings cached (excluded, like the
paper). Weights are random: latency does not depend on their values. Prints a rich table and,
as the last line, JSON with rt_ms, rt_p95_ms, ladder_ratio, rungs and paper_1b_tflop_per_chunk (analytic).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass

# Cores here are shared: spinning OpenMP workers that lose their core turn a 20 ms pass into
# seconds. Passive waiting costs little when the machine is quiet. Must precede OpenMP's start.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from policy.model.codec import LatentCodec, TinyCodec  # noqa: E402
from policy.model.config import WAMConfig, get_preset  # noqa: E402
from policy.model.precision import cast_for_inference, parse_dtype  # noqa: E402
from policy.model.text import CachedText, TextEncoder  # noqa: E402
from policy.model.wam import EfficientWAM  # noqa: E402
from policy.wire.types import Observation  # noqa: E402
from policy.serving.wam_runner import NormStats, WAMRunner  # noqa: E402

# Wan2.2-TI2V-5B VAE (diffusers config of Wan-AI/Wan2.2-TI2V-5B-Diffusers/vae), for GPU timing
WAN22_VAE = dict(base_dim=160, decoder_base_dim=256, z_dim=48, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                 temperal_downsample=[False, True, True], is_residual=True, in_channels=12,
                 out_channels=12, patch_size=2, scale_factor_spatial=16, scale_factor_temporal=4,
                 latents_mean=[0.0] * 48, latents_std=[1.0] * 48)


@dataclass(frozen=True)
class Rung:
    name: str
    preset: str
    steps: tuple[int, int]


def ladder(preset: str) -> list[Rung]:
    return [Rung("teacher dense [10,10]", preset + "-teacher", (10, 10)),
            Rung("compact dense [10,10]", preset + "-dense", (10, 10)),
            Rung("+ low-res future", preset, (10, 10)),
            Rung("+ [2,10] (RT)", preset, (2, 10))]


# ---- analytic FLOPs (2 x multiply-accumulates of matmuls and attention) -------------------------
def pass_flops(cfg: WAMConfig, video: bool, attention: bool = True) -> dict[str, float]:
    tok = cfg.token_counts()
    lv, la, lt = tok["condition"] + tok["future"], tok["action"], cfg.text_len
    d, a, f, da, fa = cfg.video_width, cfg.attn_dim, cfg.video_ffn, cfg.action_width, cfg.action_ffn
    act = la * (3 * da * a + a * da + 2 * da * fa) + attention * 2 * la * (lv + la) * a
    h, ad, fq = cfg.horizon, cfg.action_dim, cfg.freq_dim
    # embeddings: state + action MLPs, timestep MLP + adaLN projection, output head
    emb = (h + 1) * (ad * da + 2 * da * da) + (fq * da + da * da + 6 * da * da) + h * da * ad
    out = {"action": 2.0 * (cfg.video_layers * act + emb), "video": 0.0}
    if video:
        lin = lv * (4 * d * a + 2 * d * a + 2 * d * f)                # self q/k/v/o, cross q/o, FFN
        att = attention * (2 * lv * lv * a + 2 * lv * lt * a)
        patch = lv * cfg.latent_channels * int(np.prod(cfg.patch)) * d
        head = tok["future"] * d * cfg.latent_channels * int(np.prod(cfg.patch))
        time = 2 * (fq * d + d * d + 6 * d * d)                      # condition (t=0) + future
        out["video"] = 2.0 * (cfg.video_layers * (lin + att) + patch + head + time)
    return out


def chunk_flops(cfg: WAMConfig, steps: tuple[int, int], attention: bool = True) -> float:
    """FLOPs of the transformer for one chunk (text K/V once per chunk; codec excluded).
    attention=False leaves out the softmax-attention matmuls (QK^T, AV)."""
    t_v, t_a = steps
    joint, action = pass_flops(cfg, True, attention), pass_flops(cfg, False, attention)
    text_kv = 2.0 * (cfg.text_len * (cfg.text_dim * cfg.video_width + cfg.video_width ** 2)
                     + cfg.video_layers * cfg.text_len * 2 * cfg.video_width * cfg.attn_dim)
    return text_kv + t_v * (joint["video"] + joint["action"]) + (t_a - t_v) * action["action"]


# ---- timing ---------------------------------------------------------------------------------
class RandomText(TextEncoder):
    """Fixed random token embeddings: text encoding is excluded from the ladder."""

    def __init__(self, cfg: WAMConfig):
        self.dim, self.max_tokens = cfg.text_dim, cfg.text_len

    def encode(self, texts):
        return torch.randn(len(texts), self.max_tokens, self.dim, generator=torch.Generator().manual_seed(0))


def build_codec(cfg: WAMConfig, device: str, dtype: torch.dtype | None = None) -> LatentCodec:
    if cfg.codec == "tiny":
        return TinyCodec(cfg.latent_channels, cfg.spatial_factor, cfg.temporal_factor).to(device).eval()
    from diffusers import AutoencoderKLWan

    from policy.model.codec import Wan22Codec
    dtype = dtype or parse_dtype(None, device)
    return Wan22Codec(AutoencoderKLWan(**WAN22_VAE).to(device, dtype))


def build_runner(cfg: WAMConfig, steps, device: str, compile: bool = False,
                 dtype: str | torch.dtype | None = None) -> WAMRunner:
    """Random weights, served as load_runner serves: weights cast once to `dtype` (auto: bf16 on
    CUDA) with Wan's float32 islands, codec on the device in the same dtype."""
    torch.manual_seed(0)
    dt = parse_dtype(dtype, device)
    with torch.device(device):          # initialised where it runs: seconds, not minutes, at 5B
        model = EfficientWAM(cfg)
    model = cast_for_inference(model.eval().requires_grad_(False), dt)
    return WAMRunner(model, build_codec(cfg, device, dt), CachedText(RandomText(cfg)),
                     NormStats.identity(cfg.action_dim), cfg.name, device, steps,
                     compile=compile, dtype=dt)


def time_rung(runner: WAMRunner, chunks: int, warmup: int) -> list[float]:
    rng = np.random.default_rng(0)
    images = {c: rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for c in runner.cfg.cameras}
    obs = Observation(images, np.zeros(runner.cfg.action_dim, np.float32), "put the red block on the plate")
    sync = torch.cuda.synchronize if runner.device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        runner.infer(obs)
    out = []
    for _ in range(chunks):
        sync()
        t0 = time.perf_counter()
        runner.infer(obs)          # returns numpy actions: the device work is done
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def run(preset: str, chunks: int, warmup: int, device: str, compile: bool = False,
        rungs: list[Rung] | None = None, dtype: str | None = None) -> dict:
    results = []
    for rung in rungs or ladder(preset):
        cfg = get_preset(rung.preset)
        runner = build_runner(cfg, rung.steps, device, compile, dtype)
        ms = time_rung(runner, chunks, warmup)
        print(f"{rung.name}: median {statistics.median(ms):.1f} ms", file=sys.stderr, flush=True)
        results.append({"name": rung.name, "preset": rung.preset, "steps": list(rung.steps),
                        "tokens": sum(cfg.token_counts().values()), "median_ms": statistics.median(ms),
                        "p90_ms": float(np.percentile(ms, 90)), "p95_ms": float(np.percentile(ms, 95)),
                        "gflop": chunk_flops(cfg, rung.steps) / 1e9})
        del runner
    teacher, rt = results[0]["median_ms"], results[-1]["median_ms"]
    paper = get_preset("paper-1b")
    rt_tflops = results[-1]["gflop"] / 1e3 / (rt / 1e3)          # achieved, transformer FLOPs only
    return {
        "preset": preset, "device": device, "threads": torch.get_num_threads(), "chunks": chunks,
        "dtype": str(parse_dtype(dtype, device)).removeprefix("torch."),
        "rt_ms": rt, "rt_p95_ms": results[-1]["p95_ms"], "ladder_ratio": teacher / rt, "rt_tflop_per_s": rt_tflops,
        "rungs": {r["name"]: round(r["median_ms"], 2) for r in results},
        "details": results,
        "paper_1b_tflop_per_chunk": chunk_flops(paper, (2, 10)) / 1e12,
        "paper_1b_tflop_by_rung": {r.name: round(chunk_flops(get_preset(r.preset.replace(preset, "paper-1b")),
                                                             r.steps) / 1e12, 3) for r in ladder(preset)},
    }


def print_table(res: dict) -> None:
    from rich.console import Console
    from rich.table import Table
    t = Table(title=f"Efficient-WAM latency ladder: {res['preset']} on {res['device']} "
                    f"({res['threads']} threads, median of {res['chunks']} chunks)")
    for col in ("rung", "preset", "[T_v,T_a]", "tokens/pass", "GFLOP", "median ms", "p90 ms",
                "vs teacher", "vs previous"):
        t.add_column(col, justify="left" if col in ("rung", "preset") else "right")
    prev = None
    teacher = res["details"][0]["median_ms"]
    for r in res["details"]:
        t.add_row(r["name"], r["preset"], str(r["steps"]), str(r["tokens"]), f"{r['gflop']:.2f}",
                  f"{r['median_ms']:.1f}", f"{r['p90_ms']:.1f}", f"{teacher / r['median_ms']:.1f}x",
                  "" if prev is None else f"{prev / r['median_ms']:.2f}x")
        prev = r["median_ms"]
    c = Console(width=140)
    c.print(t)
    paper = ", ".join(f"{k}: {v:.3f}" for k, v in res["paper_1b_tflop_by_rung"].items())
    c.print(f"paper-1b analytic TFLOP per chunk (transformer, codec excluded): {paper}")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description="Efficient-WAM latency ladder")
    ap.add_argument("--preset", default="sim-tiny", choices=["sim-tiny", "paper-1b"])
    ap.add_argument("--chunks", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    # 1 thread: the small per-step ops do not split well, and on the shared 2-core machine two
    # OpenMP threads measured 2-4x slower (RT 336 ms vs 86 ms at load ~6)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the joint passes and the action-only steps (CPU: inductor with weight freezing)")
    ap.add_argument("--dtype", choices=["auto", "bf16", "fp32"], default="auto",
                    help="inference weights (auto: bf16 on cuda, fp32 on cpu)")
    ap.add_argument("--rungs", choices=["all", "rt"], default="all",
                    help="rt: only the [2,10] low-res rung (quick checks)")
    a = ap.parse_args(argv)
    if a.chunks < 1 or a.warmup < 0:
        ap.error("--chunks must be >= 1 and --warmup >= 0")
    torch.set_num_threads(a.threads)
    rungs = ladder(a.preset) if a.rungs == "all" else ladder(a.preset)[-1:]
    res = run(a.preset, a.chunks, a.warmup, a.device, a.compile, rungs=rungs, dtype=a.dtype)
    print_table(res)
    print(json.dumps({k: v for k, v in res.items() if k != "details"}))
    return res


if __name__ == "__main__":
    main()
