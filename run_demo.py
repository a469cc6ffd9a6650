"""Run the Efficient-WAM demo: policy server, simulated robot and the operator console.

    python run_demo.py                       # everything on this machine, http://127.0.0.1:7860
    python run_demo.py --policy tcp://gpu-box:5555 --dataset data/demos
    python run_demo.py --policy ws://gpu-box:8000 --policy-protocol openpi --policy-embodiment aloha
    python run_demo.py --rig rig.toml --host 0.0.0.0 --auth operator:secret

Starts the policy server as a child process (the shipped sim-tiny checkpoint; random weights
with a warning if none is there), waits for its handshake, starts the robot, the control loop
and the console, and prints the address. Ctrl-C / SIGTERM, or any part dying, shuts
everything down in order; the message says which part and why.
"""
from __future__ import annotations

from app.process_env import apply_defaults

apply_defaults()        # offscreen rendering, no network calls, pyarrow on glibc: before mujoco / gradio / pyarrow

import argparse  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402

from policy.wire.netutil import is_loopback_host  # noqa: E402
from app.control.action_queue import DEFAULT_MERGE, MERGE_RULES  # noqa: E402
from app.stack import DemoStack, StackConfig, StackError  # noqa: E402

log = logging.getLogger("run_demo")


def parse_args(argv: list[str] | None = None) -> StackConfig:
    p = argparse.ArgumentParser(prog="python run_demo.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--robot", default="sim", help="robot adapter (default: sim, the embedded MuJoCo scene)")
    p.add_argument("--rig", help="rig file (TOML/JSON): camera adapters and serials, arm, safety settings")
    p.add_argument("--policy", help="tcp://HOST:PORT of a running policy server (then none is started here); "
                                    "ws://HOST:PORT with --policy-protocol openpi")
    p.add_argument("--policy-protocol", choices=["zmq", "openpi"], default="zmq",
                   help="zmq: our policy server; openpi: an openpi websocket policy server (openpi's "
                        "serve_policy.py, or python -m policy.server --openpi-port PORT); a server that wants "
                        "an API key gets $POLICY_API_KEY as 'Authorization: Api-Key KEY'")
    p.add_argument("--policy-embodiment", default="aloha",
                   help="observation layout sent to an openpi server (default aloha: state 14, cam_high, "
                        "cam_left_wrist, cam_right_wrist, prompt)")
    p.add_argument("--policy-actions-per-chunk", type=int,
                   help="openpi: actions run per chunk when the server's metadata has no action_horizon "
                        "(default 10, as openpi's examples)")
    p.add_argument("--policy-keys", metavar="DIR",
                   help="CurveZMQ keys (python -m policy.keys generate DIR) for a --policy server off loopback")
    p.add_argument("--policy-port", type=int, default=5555, help="port of the child policy server (default 5555)")
    p.add_argument("--checkpoint", help="checkpoint for the child policy server (default assets/checkpoints/sim-tiny)")
    p.add_argument("--policy-arg", action="append", default=[], metavar="ARG",
                   help="extra flag for the child policy server, repeatable (e.g. --policy-arg=--runner "
                        "--policy-arg=testing); replaces the checkpoint choice")
    p.add_argument("--compile-policy", action="store_true",
                   help="the child policy server runs its sampler as torch.compile graphs (server --compile): "
                        "sim-tiny's chunk 27 -> 23 ms on one CPU thread; compiling adds about a minute to the "
                        "first start, seconds later (inductor's cache)")
    p.add_argument("--policy-nice", type=int, default=10,
                   help="niceness of the child policy server: >0 lets the cameras and the control loop come first "
                        "on a CPU-only machine (the policy runs asynchronously, a chunk lasts 1.6 s); 0 on a GPU "
                        "box (default 10: measured 13.8 -> 16 fps per live camera on 2 cores)")
    p.add_argument("--policy-timeout", type=float, default=30.0,
                   help="seconds to wait for one action chunk before retrying (default 30)")
    p.add_argument("--dataset", default="data/demos", help="where episodes are recorded (default data/demos)")
    p.add_argument("--no-record", action="store_true", help="disable recording")
    p.add_argument("--quality-limit", action="append", default=[], metavar="NAME=VALUE",
                   help="recording quality limit, repeatable, e.g. --quality-limit max_frozen_s=0.5 "
                        "(names: policy/episodes/quality.py QualityLimits); an episode breaking one is flagged")
    p.add_argument("--merge", choices=MERGE_RULES, default=DEFAULT_MERGE,
                   help="how a new chunk joins the actions still queued (app/control/action_queue.py)")
    p.add_argument("--auto-hold", type=int, default=0, metavar="K",
                   help="PAUSE when imagination surprise is 'lost' for K chunks in a row (default 0: off)")
    p.add_argument("--host", default="127.0.0.1", help="interface the console listens on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860, help="console port (default 7860)")
    p.add_argument("--auth", help="USER:PASS required to open the console (mandatory off loopback)")
    p.add_argument("--task", help="sim task to start with")
    p.add_argument("--seed", type=int, default=0, help="sim seed of the first scene")
    from hardware.sim.tasks import SCENES
    p.add_argument("--scenes", choices=SCENES, default="classic",
                   help="sim scenes: classic (objects a few cm around fixed slots; the shipped sim-tiny) or varied "
                        "(anywhere in table regions, turned, with distractors; use --checkpoint "
                        "assets/checkpoints/sim-tiny-varied) or crowded (varied, plus a look-alike block "
                        "beside the one to pick)")
    p.add_argument("--camera-fps", type=int, default=30, help="sim camera rate (default 30)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    args = p.parse_args(argv)

    auth = None
    if args.auth:
        user, sep, password = args.auth.partition(":")
        if not sep or not user or not password:
            p.error("--auth must be USER:PASS, e.g. --auth operator:a-long-secret")
        auth = (user, password)
    if not is_loopback_host(args.host) and auth is None:
        p.error(f"--host {args.host} exposes the robot's controls to the network: add --auth USER:PASS "
                "(or keep the default --host 127.0.0.1 and tunnel, e.g. ssh -L 7860:127.0.0.1:7860)")
    quality_limits = {}
    for item in args.quality_limit:
        name, sep, value = item.partition("=")
        if not sep:
            p.error(f"--quality-limit {item!r} must be NAME=VALUE, e.g. --quality-limit max_frozen_s=0.5")
        quality_limits[name.strip()] = value.strip()
    try:
        from policy.episodes.quality import QualityLimits
        QualityLimits.from_dict(quality_limits)
    except (ValueError, TypeError) as exc:
        p.error(f"--quality-limit: {exc}")
    api_key = None
    if args.policy_protocol == "openpi":
        from policy.wire.openpi import EMBODIMENTS
        if not args.policy or not args.policy.startswith(("ws://", "wss://")):
            p.error("--policy-protocol openpi needs --policy ws://HOST:PORT of a running openpi server "
                    "(e.g. python -m policy.server --checkpoint DIR --openpi-port 8000)")
        if args.policy_embodiment not in EMBODIMENTS:
            p.error(f"--policy-embodiment {args.policy_embodiment!r}: known layouts are {', '.join(sorted(EMBODIMENTS))}")
        api_key = os.environ.get("POLICY_API_KEY") or None      # sent as 'Authorization: Api-Key KEY'
    elif args.policy and not args.policy.startswith(("tcp://", "ipc://")):
        hint = " (an openpi server? add --policy-protocol openpi)" if args.policy.startswith("ws") else ""
        p.error(f"--policy {args.policy!r} must look like tcp://HOST:PORT{hint}")
    if args.policy_keys and not args.policy:
        p.error("--policy-keys goes with --policy tcp://HOST:PORT (the local child server listens on loopback)")
    return StackConfig(robot=args.robot, rig=args.rig, policy=args.policy, policy_keys=args.policy_keys,
                       policy_protocol=args.policy_protocol, policy_embodiment=args.policy_embodiment,
                       policy_api_key=api_key, policy_actions_per_chunk=args.policy_actions_per_chunk,
                       policy_port=args.policy_port,
                       checkpoint=args.checkpoint, policy_args=args.policy_arg, policy_compile=args.compile_policy,
                       policy_timeout_s=args.policy_timeout, policy_nice=args.policy_nice,
                       dataset=None if args.no_record else args.dataset, quality_limits=quality_limits,
                       host=args.host, port=args.port,
                       auth=auth, task=args.task, seed=args.seed, scenes=args.scenes, camera_fps=args.camera_fps,
                       open_browser=not args.no_browser, merge=args.merge, auto_hold=args.auto_hold > 0,
                       auto_hold_chunks=max(args.auto_hold, 1))


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("httpx", "OpenGL.acceleratesupport", "matplotlib.font_manager"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    config = parse_args(argv)
    stack = DemoStack(config)
    stop = threading.Event()
    reason = {"text": None}

    def on_signal(signum, _frame):
        reason["text"] = reason["text"] or f"received {signal.Signals(signum).name}"
        stop.set()
        stack.interrupt()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    code = 0
    try:
        stack.start()
        print(f"\nEfficient-WAM console running on {stack.url}  (Ctrl-C to stop)\n", flush=True)
        while not stop.wait(0.5):
            why = stack.check()
            if why:
                reason["text"], code = why, 1
                break
    except StackError as exc:
        reason["text"], code = str(exc), (0 if stop.is_set() else 1)
    except Exception as exc:  # anything else at start-up: say what, then shut down
        log.exception("start-up failed")
        reason["text"], code = f"start-up failed: {type(exc).__name__}: {exc}", 1
    finally:
        print(f"shutting down: {reason['text'] or 'done'}", file=sys.stderr, flush=True)
        stack.close()
        print("stopped cleanly", file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    exit_code = main()
    # Everything is closed explicitly above (policy child, robot, cameras, recorder, console). Leave
    # without interpreter finalisation: a native library's thread object destroyed there (seen with
    # replay cameras beside the sim) aborts with "terminate called without an active exception".
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)
