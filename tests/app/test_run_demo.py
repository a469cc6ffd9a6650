"""run_demo.py as a process: flag checks, start-up failures and a dying part, each with a clear message."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.tools.harness import REPO, DemoProcess, free_port

TESTING_POLICY = ["--policy-arg=--runner", "--policy-arg=testing"]


def run_demo(*args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "run_demo.py", "--no-browser", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def test_listening_off_loopback_requires_auth():
    result = run_demo("--host", "0.0.0.0")
    assert result.returncode == 2
    assert "--auth USER:PASS" in result.stderr and "ssh -L" in result.stderr


def test_auth_must_be_user_colon_password():
    result = run_demo("--auth", "justaname")
    assert result.returncode == 2 and "USER:PASS" in result.stderr


def test_policy_keys_go_to_the_client_of_a_remote_server():
    import run_demo as rd
    cfg = rd.parse_args(["--policy", "tcp://10.1.2.3:5555", "--policy-keys", "keys/"])
    assert cfg.policy_keys == "keys/"
    result = run_demo("--policy-keys", "keys/")     # the local child listens on loopback: no keys
    assert result.returncode == 2 and "--policy tcp://HOST:PORT" in result.stderr


def test_scenes_reach_the_sim_and_a_typo_is_refused():
    import run_demo as rd
    assert rd.parse_args([]).scenes == "classic"          # the shipped sim-tiny's scenes
    assert rd.parse_args(["--scenes", "varied"]).scenes == "varied"
    result = run_demo("--scenes", "varid")
    assert result.returncode == 2 and "classic" in result.stderr and "varied" in result.stderr


def test_compile_policy_asks_the_child_server_to_compile():
    import run_demo as rd
    from app.stack import DemoStack
    assert "--compile" in DemoStack(rd.parse_args(["--compile-policy"])).policy_server_args()
    assert "--compile" not in DemoStack(rd.parse_args([])).policy_server_args()


def test_an_unreachable_remote_policy_is_named(tmp_path):
    port = free_port()
    result = run_demo("--policy", f"tcp://127.0.0.1:{port}", "--dataset", str(tmp_path / "ds"), "--port",
                      str(free_port()))
    assert result.returncode == 1
    assert f"no handshake with the policy server at tcp://127.0.0.1:{port}" in result.stderr
    assert "stopped cleanly" in result.stderr


def test_an_unknown_sim_task_lists_the_tasks(tmp_path):
    result = run_demo("--task", "juggle", "--dataset", str(tmp_path / "ds"), "--port", str(free_port()),
                      "--policy-port", str(free_port()), *TESTING_POLICY)
    assert result.returncode == 1
    assert "unknown sim task 'juggle'" in result.stderr and "put_red_on_plate" in result.stderr


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(x) for x in text.split()]


@pytest.fixture(scope="module")
def guarded_demo(tmp_path_factory):
    """One stack (numpy test policy) behind a password; the last test kills its policy server."""
    demo = DemoProcess(["--dataset", str(tmp_path_factory.mktemp("ds") / "ds"), "--auth", "operator:s3cret-pass",
                        *TESTING_POLICY])
    yield demo
    demo.stop()


def test_with_auth_nothing_is_served_before_login(guarded_demo):
    import httpx
    url = guarded_demo.url
    with httpx.Client(base_url=url, timeout=30) as anonymous:
        assert anonymous.get("/config").status_code == 401
        # the teleop and status functions too, and the camera frames' own route
        denied = anonymous.post("/gradio_api/component_server/",
                                json={"data": [""], "fn_name": "status", "component_id": 1, "session_hash": "x"})
        assert denied.status_code == 401
        frame = anonymous.get("/ewam/live/head")
        assert frame.status_code == 401 and "log in" in frame.json()["error"]
        assert anonymous.post("/login", data={"username": "operator", "password": "wrong"}).status_code == 400
    with httpx.Client(base_url=url, timeout=30) as operator:
        assert operator.post("/login", data={"username": "operator", "password": "s3cret-pass"}).status_code == 200
        assert operator.get("/config").status_code == 200
        frame = operator.get("/ewam/live/head")
        assert frame.status_code == 200 and frame.headers["content-type"] == "image/jpeg"
        assert json.loads(frame.headers["x-ewam-frame"])["camera"] == "head" and frame.content[:2] == b"\xff\xd8"


def test_when_the_policy_server_dies_everything_shuts_down_with_the_reason(guarded_demo):
    (server_pid,) = [p for p in children(guarded_demo.proc.pid)
                     if b"policy.server" in Path(f"/proc/{p}/cmdline").read_bytes()]
    subprocess.run(["kill", "-9", str(server_pid)], check=True)
    code = guarded_demo.proc.wait(timeout=60)
    log = guarded_demo.log()
    assert code == 1
    assert f"the policy server (pid {server_pid}) was killed by signal 9" in log
    assert "stopped cleanly" in log
