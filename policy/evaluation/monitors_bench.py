"""Does imagination surprise cost the action path anything? Infer round trips with and without it.

    python -m policy.evaluation.monitors_bench --checkpoint assets/checkpoints/sim-tiny --chunks 30
    python -m policy.evaluation.monitors_bench familiarity --checkpoint DIR   # = policy.evaluation.familiarity

A policy server child serves the checkpoint; a client asks for chunks from real sim observations.
In the "on" blocks a second thread (the console's surprise thread: its own socket) sends each
chunk's surprise request with its 8 frames. Two schedules (--schedule):
  worst     chunks back to back, each surprise sent the moment its chunk's actions arrive: the
            surprise is being computed exactly when the next infer comes in
  console   (default) the console's timing at 10 Hz: an infer every 10 ticks (the queue asks when
            6 of 16 actions are left), each chunk's surprise sent when its last imagined frame is
            in, 16 ticks after its observation (app/surprise.py, policy/wire/surprise.py)
Off and on blocks alternate, so drift of a shared machine hits both. Prints per-mode infer
round-trip and server inference p50 / p95 and the server's surprise compute time; JSON last line.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import threading
import time

os.environ.setdefault("MUJOCO_GL", "osmesa")

import numpy as np  # noqa: E402


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["familiarity"]:          # calibrate instruction familiarity instead
        from policy.evaluation import familiarity
        return familiarity.main(argv[1:])
    from hardware.sim.env import SimConfig, SimEnv
    from policy.serving.process import ServerProcess
    from policy.wire.client import PolicyClient
    from policy.wire.types import Observation

    p = argparse.ArgumentParser(prog="python -m policy.evaluation.monitors_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="assets/checkpoints/sim-tiny")
    p.add_argument("--chunks", type=int, default=30, help="chunks per mode")
    p.add_argument("--block", type=int, default=5, help="chunks per alternating block")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--schedule", choices=["console", "worst"], default="console")
    p.add_argument("--tick-s", type=float, default=0.1, help="--schedule console: the control period")
    args = p.parse_args(argv)

    server = ServerProcess(["--checkpoint", args.checkpoint, "--bind", "tcp://127.0.0.1:0", "--log-level", "WARNING"],
                           env={**os.environ, "OMP_NUM_THREADS": "1"}, ready_timeout_s=300)
    address = server.start()
    env = SimEnv(SimConfig())
    client = PolicyClient(address, timeout_s=60)
    jobs: queue.Queue = queue.Queue()
    surprise_ms: list[float] = []

    def side():          # the console's surprise thread: its own socket, off the control thread
        while (job := jobs.get()) is not None:
            due, job = job
            time.sleep(max(0.0, due - time.monotonic()))
            reply = client.surprise(*job)
            surprise_ms.append(reply["timings_ms"]["inference"])
            jobs.task_done()

    thread = threading.Thread(target=side, daemon=True)
    thread.start()
    try:
        client.hello()
        images = env.render()
        frames = {name: [image] * 8 for name, image in images.items()}
        obs = Observation(images, env.state(), env.task.instruction)
        for _ in range(args.warmup):
            client.surprise(client.infer(obs).chunk_id, list(range(2, 17, 2)), frames)
        rtt: dict[str, list[float]] = {"off": [], "on": []}
        inference: dict[str, list[float]] = {"off": [], "on": []}
        console = args.schedule == "console"
        mode = "off"
        while min(len(v) for v in rtt.values()) < args.chunks:
            for _ in range(args.block):
                taken = time.monotonic()                     # the observation's tick
                chunk = client.infer(obs)
                rtt[mode].append(chunk.timings_ms["round_trip"])
                inference[mode].append(chunk.timings_ms.get("inference", float("nan")))
                if mode == "on":
                    due = taken + 16 * args.tick_s if console else 0.0
                    jobs.put((due, (chunk.chunk_id, list(range(2, 17, 2)), frames)))
                if console:                                  # the next request, 10 ticks after this one
                    time.sleep(max(0.0, taken + 10 * args.tick_s - time.monotonic()))
            jobs.join()          # no surprise left running when an "off" block starts
            mode = "on" if mode == "off" else "off"
    finally:
        jobs.put(None)
        thread.join(timeout=30)
        client.close()
        env.close()
        server.stop()
    summary = {mode: {"round_trip_ms_p50": round(float(np.median(v)), 1),
                      "round_trip_ms_p95": round(float(np.percentile(v, 95)), 1),
                      "inference_ms_p50": round(float(np.nanmedian(inference[mode])), 1), "chunks": len(v)}
               for mode, v in rtt.items()}
    summary["schedule"] = args.schedule
    summary["round_trip_p50_change"] = round(summary["on"]["round_trip_ms_p50"] / summary["off"]["round_trip_ms_p50"] - 1, 4)
    summary["surprise_compute_ms_p50"] = round(float(np.median(surprise_ms)), 1) if surprise_ms else None
    summary["surprise_compute_ms_p95"] = round(float(np.percentile(surprise_ms, 95)), 1) if surprise_ms else None
    for mode in ("off", "on"):
        s = summary[mode]
        print(f"surprise {mode:3s} ({args.schedule} schedule): infer round trip p50 {s['round_trip_ms_p50']:.1f} ms, "
              f"p95 {s['round_trip_ms_p95']:.1f} ms, server inference p50 {s['inference_ms_p50']:.1f} ms "
              f"({s['chunks']} chunks)", file=sys.stderr)
    print(f"surprise compute on the server: p50 {summary['surprise_compute_ms_p50']} ms", file=sys.stderr)
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
