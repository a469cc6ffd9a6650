"""app.control.episode: an operator's rollout on the wall clock through the real Controller, a real
SimRobot and a real policy server child; a rollout that does not succeed in time ends and holds."""
from __future__ import annotations

import numpy as np
import pytest

from app.control.controller import Controller, ControllerConfig, Mode
from app.control.episode import run_rollout
from app.tools.harness import free_port
from hardware.safety import SafeArm, SafetyConfig
from policy.serving.process import ServerProcess
from policy.wire.client import PolicyClient


@pytest.fixture(scope="module")
def stack(sim_robot):
    address = f"tcp://127.0.0.1:{free_port()}"
    server = ServerProcess(["--runner", "testing", "--bind", address, "--testing-delay-ms", "40",
                            "--log-level", "WARNING"], ready_timeout_s=60)
    server.start()
    client = PolicyClient(address, timeout_s=10)
    controller = Controller(SafeArm(sim_robot.arm, SafetyConfig()), dict(sim_robot.cameras), client,
                            ControllerConfig())
    controller.start()
    yield controller, sim_robot
    controller.close()
    client.close()
    server.stop()


def test_a_rollout_that_never_succeeds_ends_at_its_time_limit_and_holds(stack):
    controller, robot = stack
    r = run_rollout(controller, robot, "put_red_on_plate", 1_000_000, "put the red block on the plate",
                    max_steps=15)
    status = controller.status()
    assert r.outcome == "timed out" and not r.success
    assert status.mode == Mode.IDLE and status.holding
    assert "time limit" in status.notice
    assert 13 <= r.ticks <= 25                  # 1.5 s at 10 Hz, plus the stop that follows
    assert r.chunks and all(c.latency_ms > 0 for c in r.chunks)
    assert status.task_done is False            # the live "task check" badge: not yet
    assert r.robot_ticks is not None and 0.5 < r.realtime_factor < 1.5   # the sim's own clock kept pace
    held = robot.target()
    import time
    time.sleep(0.3)
    np.testing.assert_array_equal(robot.target(), held)    # nothing moves after the end


def test_the_time_limit_must_be_positive(stack):
    controller, _ = stack
    with pytest.raises(ValueError, match="time limit"):
        controller.set_time_limit(0)
