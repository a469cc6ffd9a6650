"""Benchmark the sim: offscreen render rate and the live SimRobot's achieved rates.

    python -m hardware.sim.bench [--seconds 5]

Prints one JSON line: for each view size, `render_hz` (sets of three views rendered per
second by SimEnv.render, one thread) and, for a running SimRobot with camera_fps=30 while
an arm moves, `live_camera_fps` (new frames per second per camera), `live_control_hz`
(physics ticks per second; should equal control_hz) and `frame_age_ms` (mean age of the
frame read_latest returns).
"""
from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("MUJOCO_GL", "osmesa")

import numpy as np  # noqa: E402

from hardware.sim.env import ALOHA_SPEC, SimConfig, SimEnv  # noqa: E402
from hardware.sim.robot import SimRobot  # noqa: E402

SIZES = ((320, 240), (160, 120))


def render_hz(width: int, height: int, repeats: int = 30) -> float:
    with SimEnv(SimConfig(width=width, height=height)) as env:
        env.render()
        start = time.perf_counter()
        for _ in range(repeats):
            env.render()
        return repeats / (time.perf_counter() - start)


def live_rates(width: int, height: int, seconds: float, camera_fps: int = 30) -> dict:
    robot = SimRobot(SimConfig(width=width, height=height), camera_fps=camera_fps)
    robot.start()
    try:
        camera = robot.cameras["head"]
        home = np.asarray(ALOHA_SPEC.home, dtype=np.float32)
        seq0, ticks0, t0 = camera.latest().seq, robot.ticks, time.monotonic()
        ages = []
        while time.monotonic() - t0 < seconds:
            phase = (time.monotonic() - t0) * 2 * np.pi / 2.0
            target = home.copy()
            target[0] = target[7] = 0.3 * np.sin(phase)   # keep the waists moving
            robot.arm.command(target)
            ages.append(camera.read_latest(max_age_s=5.0).age_s)
            time.sleep(1.0 / ALOHA_SPEC.control_hz)
        elapsed = time.monotonic() - t0
        return {"live_camera_fps": round((camera.latest().seq - seq0) / elapsed, 1),
                "live_control_hz": round((robot.ticks - ticks0) / elapsed, 2),
                "frame_age_ms": round(1000 * float(np.mean(ages)), 1)}
    finally:
        robot.close()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each live measurement")
    args = parser.parse_args(argv)
    report = {}
    for width, height in SIZES:
        entry = {"render_hz": round(render_hz(width, height), 1)}
        entry.update(live_rates(width, height, args.seconds))
        report[f"{width}x{height}"] = entry
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
