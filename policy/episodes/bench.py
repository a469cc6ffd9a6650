"""Recording benchmark: add_frame latency while encoding runs, and how long save takes.

    python -m policy.episodes.bench [--seconds 30] [--sizes 320x240,640x480] [--burst] [--encoders]

Paced (default): frames arrive at the dataset's fps, as from a control loop, 3 cameras; the
encoder streams in the background, so save only flushes the tail. --burst adds the frames as
fast as possible instead (worst case: all encoding happens after save). --encoders compares
raw H.264 encoding speed of PyAV in-process and the ffmpeg pipe this package uses.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from policy.episodes.synthetic import SyntheticFrames, synthetic_spec, synthetic_state
from policy.episodes.writer import DatasetWriter


def bench_episode(width: int, height: int, seconds: float, fps: int = 30, paced: bool = True) -> dict:
    spec = synthetic_spec(height, width, fps=fps)
    gen = SyntheticFrames(height, width, len(spec.cameras))
    n = int(seconds * fps)
    # Pre-render a second of frames so that frame generation is not what we time.
    pool = [{cam: gen.frame(t, i) for i, cam in enumerate(spec.cameras)} for t in range(fps)]
    lat, cpu, base = np.zeros(n), np.zeros(n), np.zeros(n)
    with tempfile.TemporaryDirectory(prefix="wam-bench-") as tmp, DatasetWriter(Path(tmp) / "ds", spec) as w:
        w.start_episode("benchmark")
        t0 = time.perf_counter()
        for t in range(n):
            if paced:
                delay = t0 + t / fps - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            s, c = time.perf_counter(), time.thread_time()
            w.add_frame(pool[t % fps], synthetic_state(t), synthetic_state(t + 1))
            lat[t], cpu[t] = time.perf_counter() - s, time.thread_time() - c
            # Baseline: only copying the same images, under the same load (scheduler noise).
            s = time.perf_counter()
            _ = [img.copy() for img in pool[t % fps].values()]
            base[t] = time.perf_counter() - s
        backlog = w.status.encoder_backlog
        s = time.perf_counter()
        w.save_episode()
        returned = time.perf_counter() - s
        w.wait()
        saved = time.perf_counter() - s
        size = sum(p.stat().st_size for p in (Path(tmp) / "ds").rglob("*.mp4"))
    return {"size": f"{width}x{height}", "frames": n, "paced": paced,
            "add_frame_ms_p50": 1e3 * np.median(lat), "add_frame_ms_p99": 1e3 * np.quantile(lat, 0.99),
            "add_frame_ms_max": 1e3 * lat.max(), "cpu_ms_p50": 1e3 * np.median(cpu),
            "cpu_ms_p99": 1e3 * np.quantile(cpu, 0.99), "copy_only_ms_p50": 1e3 * np.median(base),
            "copy_only_ms_p99": 1e3 * np.quantile(base, 0.99), "backlog_at_save": backlog,
            "save_returns_ms": 1e3 * returned, "save_done_s": saved, "video_mb": size / 2**20}


def bench_encoders(width: int, height: int, frames: int = 150) -> dict:
    import av

    from policy.episodes.video import VideoEncoder
    gen = SyntheticFrames(height, width, 1)
    data = [gen.frame(t) for t in range(frames)]
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        s = time.perf_counter()
        c = av.open(f"{tmp}/a.mp4", "w")
        st = c.add_stream("libx264", rate=30)
        st.width, st.height, st.pix_fmt, st.options = width, height, "yuv420p", {"preset": "ultrafast", "crf": "23"}
        for f in data:
            c.mux(st.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(st.encode())
        c.close()
        out["pyav_fps"] = frames / (time.perf_counter() - s)
        s = time.perf_counter()
        enc = VideoEncoder(Path(tmp) / "b.mp4", height, width, 30)
        for f in data:
            enc.push(f)
        enc.finish()
        enc.join()
        out["ffmpeg_pipe_fps"] = frames / (time.perf_counter() - s)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--sizes", default="320x240,640x480", help="comma-separated WIDTHxHEIGHT")
    p.add_argument("--burst", action="store_true", help="also add frames unpaced (worst case)")
    p.add_argument("--encoders", action="store_true", help="also compare PyAV and the ffmpeg pipe")
    a = p.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in a.sizes.split(",")]
    print(f"3 cameras, 30 fps, {a.seconds:g} s episodes (libx264 ultrafast crf 23, streamed while recording); "
          f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for w, h in sizes:
        for paced in [True] + ([False] if a.burst else []):
            r = bench_episode(w, h, a.seconds, paced=paced)
            print(f"{r['size']:>8} {'paced' if paced else 'burst'}: add_frame wall p50 {r['add_frame_ms_p50']:.3f} "
                  f"p99 {r['add_frame_ms_p99']:.2f} max {r['add_frame_ms_max']:.1f} ms, its own CPU p50 "
                  f"{r['cpu_ms_p50']:.3f} p99 {r['cpu_ms_p99']:.3f} ms (copying the images alone: wall p50 "
                  f"{r['copy_only_ms_p50']:.3f} p99 {r['copy_only_ms_p99']:.2f} ms) | backlog at save "
                  f"{r['backlog_at_save']} frames | save returns in {r['save_returns_ms']:.2f} ms, on disk after "
                  f"{r['save_done_s']:.2f} s | {r['video_mb']:.1f} MB video", flush=True)
        if a.encoders:
            e = bench_encoders(w, h)
            print(f"{w}x{h} raw H.264 encode: PyAV {e['pyav_fps']:.0f} fps, ffmpeg pipe {e['ffmpeg_pipe_fps']:.0f} fps")


if __name__ == "__main__":
    main()
