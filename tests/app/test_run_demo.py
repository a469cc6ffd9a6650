"""run_demo.py as a process: flag checks, start-up failures and a dying part, each with a clear message."""
import subprocess
import sys
from pathlib import Path

from app.harness import REPO, DemoProcess, free_port

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


def test_when_the_policy_server_dies_everything_shuts_down_with_the_reason(tmp_path):
    demo = DemoProcess(["--dataset", str(tmp_path / "ds"), *TESTING_POLICY])
    try:
        (server_pid,) = [p for p in children(demo.proc.pid)
                         if b"policy.server" in Path(f"/proc/{p}/cmdline").read_bytes()]
        subprocess.run(["kill", "-9", str(server_pid)], check=True)
        code = demo.proc.wait(timeout=60)
    finally:
        demo.stop()
    log = demo.log()
    assert code == 1
    assert f"the policy server (pid {server_pid}) was killed by signal 9" in log
    assert "stopped cleanly" in log

