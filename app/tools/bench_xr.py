"""Benchmark WebXR teleop: how many controller poses per second reach the console while grip is held.

The real console (in this process, on the MuJoCo sim, no policy server) and headless chromium with
the IWER WebXR emulator (the test set-up's cache, ~/.cache/wam-test/iwer: run
tests/app/test_xr_teleop_browser.py once, or `npm install --prefix ~/.cache/wam-test/iwer iwer`).
Prints a few lines and, last, one JSON line: xr_fps (emulated XR frames per second, software
WebGL), poses_per_s (answered), rtt_ms (last round trip), server_ms_p50 / server_ms_max (the
console's handler: parse, gate, IK, command).

    MUJOCO_GL=osmesa python -m app.tools.bench_xr [--seconds 5]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from app.tools.harness import chromium_page, free_port

IWER_BUNDLE = Path.home() / ".cache" / "wam-test" / "iwer" / "node_modules" / "iwer" / "build" / "iwer.min.js"
INSTALL_IWER = ("const d = new IWER.XRDevice(IWER.metaQuest3); d.installRuntime({forceInstall: true}); "
                "window.iwerDevice = d;")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    if not IWER_BUNDLE.exists():
        print(f"IWER is not installed at {IWER_BUNDLE}: run `npm install --prefix {IWER_BUNDLE.parents[3]} iwer`",
              file=sys.stderr)
        return 2
    from app.console import Console
    from app.control.controller import Controller, ControllerConfig
    from app.live_view import LiveFeeds
    from hardware.safety import SafeArm
    from hardware.sim.env import SimConfig
    from hardware.sim.robot import SimRobot

    robot = SimRobot(SimConfig(), camera_fps=10)
    robot.start()
    controller = Controller(SafeArm(robot.arm), dict(robot.cameras), None, ControllerConfig(control_hz=10))
    controller.start()
    console = Console(controller, LiveFeeds(dict(robot.cameras)))
    handler, server_s = console.xr_command, []

    def timed(*a):
        t = time.perf_counter()
        try:
            return handler(*a)
        finally:
            server_s.append(time.perf_counter() - t)
    console.xr_command = timed
    port = free_port()
    console.launch(port=port)
    try:
        with chromium_page(viewport=(960, 720)) as page:
            page.add_init_script(path=str(IWER_BUNDLE))
            page.add_init_script(script=INSTALL_IWER)
            page.goto(f"http://127.0.0.1:{port}")
            page.wait_for_selector("#ewam-xr-panel .xr-enter:not([disabled])", timeout=60_000)
            page.click("#ewam-xr-panel .xr-enter")
            page.wait_for_function("() => window.ewamXR.frames > 30", timeout=60_000)
            page.evaluate("() => window.iwerDevice.controllers.right.updateButtonValue('squeeze', 1)")
            time.sleep(1.0)
            counts = "() => [window.ewamXR.frames, window.ewamXR.replies]"
            (f0, r0), t0 = page.evaluate(counts), time.monotonic()
            server_s.clear()
            time.sleep(args.seconds)
            (f1, r1), dt = page.evaluate(counts), time.monotonic() - t0
            result = {"xr_fps": round((f1 - f0) / dt, 1), "poses_per_s": round((r1 - r0) / dt, 1),
                      "rtt_ms": page.evaluate("() => window.ewamXR.rttMs"),
                      "server_ms_p50": round(float(np.median(server_s)) * 1000, 1) if server_s else None,
                      "server_ms_max": round(max(server_s) * 1000, 1) if server_s else None}
    finally:
        console.close()
        controller.close()
        robot.close()
    print(f"{result['poses_per_s']} poses/s answered at {result['xr_fps']} XR frames/s")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
