"""Closed-loop evaluation in the sim, through the policy server the console uses.

    python -m policy.evaluate --checkpoint assets/checkpoints/sim-tiny --episodes-per-task 50

For each variant a policy server is started as a child process (`python -m policy.server
--checkpoint DIR --steps T_v,T_a`) and driven by a PolicyClient, exactly like the console:
  rt         [2, 10]  low-res future (the shipped configuration)
  dense      [10, 10] same checkpoint, every action step also denoises the video
  video_free [0, 10]  no imagined future: the video stream encodes the observation only
Every variant runs the same episodes: seeds EVAL_SEED_BASE + i (never used for demonstrations,
which use seeds below it) and an instruction drawn from the task's paraphrases with that seed, or,
with --instructions FILE (JSON {task: [phrasing, ...]}, e.g. assets/instructions/held_out.json),
episode i of a task told phrasings[i % len]: only the file's tasks run (--tasks narrows them).
Clocks (--clock; the JSON says which one each number used):
  real      the console's control core (app/control: ActionQueue, ZmqPolicyLink, SafeArm) on the
            wall clock against a SimRobot ticking in its own threads, the server child at the
            console's niceness: what an operator gets. The headline number.
  sim       the same control core on a simulated clock: a chunk reaches the queue after the ticks
            a latency drawn from --latency-ms P50,P95 covers (policy/evaluation/closed_loop.py).
  lockstep  model only: the world waits for every chunk and `--execute` actions of each chunk
            run, each through the same safety layer; rollout videos are written on this clock.
An episode succeeds when the task's check holds (it then ends); otherwise it fails at the
task's max_steps. Prints a rich table and, on its last line, JSON:
  {"rt": {"success": {"TASK": 0.9, ...}, "mean_success": 0.85, "chunk_ms_p50": 80,
          "success_by_phrasing": {"TASK": {"PHRASING": 1.0, ...}}, "episodes_by_phrasing": ...,
          "failures": {"TASK": {"never_lifted": 3, "lifted": 2, "held": 0, "released_near": 1,
                                "released_away": 1}}, ...}, ...}
(failures: the lockstep and sim clocks follow the object each task moves; a failed episode whose
object never rose 5 cm missed its grasp, one whose object did failed later: still held at the end,
let go within 5 cm of its destination but not placed, or let go elsewhere.)
A few rollout videos (real head + wrist views next to the imagined future) go to --videos-dir.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "osmesa")

import numpy as np  # noqa: E402

from app.control.action_queue import MERGE_RULES  # noqa: E402
from app.control.controller import ControllerConfig  # noqa: E402
from policy.evaluation.closed_loop import LatencyModel, real_clock_robot, run_real_episode, run_sim_clock_episode  # noqa: E402
from policy.evaluation.rollout import LIFTED_M, NEAR_M, EpisodeOutcome, RolloutConfig, instruction_for, run_episode  # noqa: E402

from hardware.sim.env import SimConfig  # noqa: E402
from hardware.sim.tasks import EVAL_SEED_BASE, SCENES  # noqa: E402  (EVAL_SEED_BASE re-exported: the held-out seeds)
CLOCKS = {
    "real": "the console's control core, wall clock, server at the console's niceness",
    "sim": "the console's control core, simulated clock with modelled latency",
    "lockstep": "model only: the world waits for every chunk",
}
VARIANTS: dict[str, tuple[int, int]] = {"rt": (2, 10), "dense": (10, 10), "video_free": (0, 10)}


@dataclass
class VariantResult:
    name: str
    steps: tuple[int, int]
    outcomes: dict[str, list[EpisodeOutcome]] = field(default_factory=dict)
    error: str | None = None
    object_jitter: float = 1.0           # layout randomisation, x the training range
    scenes: str = SimConfig.scenes       # hardware.sim.tasks.SCENES
    instructions: str | None = None      # the --instructions file, if any
    clock: str = "real"                  # real / sim / lockstep, see CLOCKS
    latency_ms: str | None = None        # --clock sim: the latency modelled

    def summary(self) -> dict:
        if self.error is not None:
            return {"error": self.error, "steps": list(self.steps), "object_jitter": self.object_jitter,
                    "instructions": self.instructions}
        success = {t: round(float(np.mean([o.success for o in eps])), 4) for t, eps in self.outcomes.items()}
        by_phrasing: dict[str, dict[str, list[bool]]] = {}
        for t, eps in self.outcomes.items():
            for o in eps:
                by_phrasing.setdefault(t, {}).setdefault(o.instruction, []).append(o.success)
        chunk_ms = [ms for eps in self.outcomes.values() for o in eps for ms in o.chunk_ms]
        server_ms = [ms for eps in self.outcomes.values() for o in eps for ms in o.server_ms]
        return {
            "success": success,
            "mean_success": round(float(np.mean(list(success.values()))), 4) if success else 0.0,
            "min_success": round(float(min(success.values())), 4) if success else 0.0,
            "mean_steps": {t: round(float(np.mean([o.steps for o in eps])), 1) for t, eps in self.outcomes.items()},
            "chunk_ms_p50": round(float(np.median(chunk_ms)), 1) if chunk_ms else None,
            "chunk_ms_p90": round(float(np.percentile(chunk_ms, 90)), 1) if chunk_ms else None,
            "server_ms_p50": round(float(np.median(server_ms)), 1) if server_ms else None,
            "episodes_per_task": {t: len(eps) for t, eps in self.outcomes.items()},
            "steps": list(self.steps),
            "object_jitter": self.object_jitter,
            "scenes": self.scenes,
            "instructions": self.instructions,
            "clock": self.clock,
            "clock_means": CLOCKS[self.clock],
            "latency_ms_model": self.latency_ms,
            "success_by_phrasing": {t: {p: round(float(np.mean(r)), 4) for p, r in ps.items()}
                                    for t, ps in by_phrasing.items()},
            "episodes_by_phrasing": {t: {p: len(r) for p, r in ps.items()} for t, ps in by_phrasing.items()},
            "failures": failures(self.outcomes),
        }


def failures(outcomes: dict[str, list[EpisodeOutcome]]) -> dict[str, dict[str, int]]:
    """Failed episodes per task by how far they got (where the clock tracks the moved object; the
    real clock does not): never_lifted (the object never rose LIFTED_M: the grasp missed or never
    came) and lifted (it was grasped and lifted; what came after failed). Where the task has a
    destination, the lifted ones split by how they ended: held (still in a gripper), released_near
    (let go within NEAR_M of the destination's centre, but not placed as the check wants: toppled,
    off-centre) and released_away (let go elsewhere: carried to the wrong place, or dropped)."""
    out: dict[str, dict[str, int]] = {}
    for task, eps in outcomes.items():
        tracked = [o for o in eps if not o.success and o.lifted_m is not None]
        if not tracked:
            continue
        lifted = [o for o in tracked if o.lifted_m >= LIFTED_M]
        out[task] = {"never_lifted": len(tracked) - len(lifted), "lifted": len(lifted)}
        ends = [o for o in lifted if o.held_at_end is not None and o.from_destination_m is not None]
        if ends:
            released = [o for o in ends if not o.held_at_end]
            out[task] |= {"held": len(ends) - len(released),
                          "released_near": sum(o.from_destination_m < NEAR_M for o in released),
                          "released_away": sum(o.from_destination_m >= NEAR_M for o in released)}
    return out


def eval_seeds(episodes: int, first: int = 0) -> list[int]:
    return [EVAL_SEED_BASE + first + i for i in range(episodes)]


def run_variant(name: str, steps: tuple[int, int], args, tasks: list[str], console) -> VariantResult:
    from policy.wire.client import PolicyClient
    from policy.serving.process import ServerProcess

    result = VariantResult(name, steps, object_jitter=args.object_jitter, scenes=args.scenes,
                           instructions=args.instructions,
                           clock=args.clock, latency_ms=args.latency_ms if args.clock == "sim" else None)
    server_args = ["--checkpoint", args.checkpoint, "--steps", f"{steps[0]},{steps[1]}",
                   "--bind", "tcp://127.0.0.1:0" if args.port == 0 else f"tcp://127.0.0.1:{args.port}",
                   "--log-level", "WARNING"]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.server_threads)} if args.server_threads else None
    # The real clock runs the server as the console does: niceness included (run_demo's default).
    server = ServerProcess(server_args, env=env, ready_timeout_s=args.server_timeout,
                           nice=args.server_nice if args.clock == "real" else 0)
    try:
        address = server.start()
    except RuntimeError as e:
        result.error = f"server did not start: {e}"
        console.print(f"[red]{name}: {result.error}")
        return result
    try:
        client = PolicyClient(address, timeout_s=args.infer_timeout)
        try:
            run_episodes(result, client, args, tasks, console)
        finally:
            client.close()
    except Exception as e:   # a variant that breaks must not cost the others their numbers
        result.error = f"{type(e).__name__}: {e}"
        console.print(f"[red]{name} failed: {result.error}")
    finally:
        server.stop()
    return result


class _Episodes:
    """Runs one episode on the chosen clock; owns the sim (and, on the real clock, the SimRobot
    and a running Controller with its ZmqPolicyLink, as run_demo builds them)."""

    def __init__(self, client, args, first_task: str):
        from hardware.sim.env import SimEnv
        self.client, self.args = client, args
        sim = SimConfig(task=first_task, width=args.camera_width, height=args.camera_height,
                        object_jitter=args.object_jitter, scenes=args.scenes)
        self.controller_config = ControllerConfig(merge=args.merge, request_threshold=args.request_threshold)
        self.env = self.robot = self.controller = None
        if args.clock == "real":
            self.robot, self.controller = real_clock_robot(sim, client, self.controller_config)
            self.controller.start()
        else:
            self.env = SimEnv(sim)
        self.latency = LatencyModel.parse(args.latency_ms) if args.clock == "sim" else None

    def run(self, task: str, seed: int, instruction: str, video) -> EpisodeOutcome:
        a = self.args
        if a.clock == "real":
            return run_real_episode(self.controller, self.robot, task, seed, instruction, max_steps=a.max_steps)
        if a.clock == "sim":
            return run_sim_clock_episode(self.env, self.client, task, seed, instruction, self.latency,
                                         self.controller_config, max_steps=a.max_steps)
        cfg = RolloutConfig(execute=a.execute, rate_limit=not a.no_rate_limit, max_steps=a.max_steps)
        return run_episode(self.env, self.client, task, seed, cfg, video_path=video, instruction=instruction)

    def close(self) -> None:
        if self.controller is not None:
            self.controller.close()
        for part in (self.robot, self.env):
            if part is not None:
                part.close()


def run_episodes(result: VariantResult, client, args, tasks: list[str], console) -> None:
    from rich.progress import Progress

    n = args.episodes_per_task if result.name == "rt" else args.baseline_episodes_per_task or args.episodes_per_task
    videos_dir = Path(args.videos_dir) if args.videos and args.clock == "lockstep" else None
    episodes = _Episodes(client, args, tasks[0])
    try:
        with Progress(console=console, transient=True) as progress:
            bar = progress.add_task(result.name, total=n * len(tasks))
            for task in tasks:
                outcomes = result.outcomes.setdefault(task, [])
                for i, seed in enumerate(eval_seeds(n, args.first_seed)):
                    video = None
                    if videos_dir is not None and i < args.videos:
                        video = videos_dir / f"{result.name}_{task}_seed{seed}.mp4"
                    instruction = instruction_for(task, seed, getattr(args, "phrasings", {}).get(task), episode=i)
                    outcomes.append(episodes.run(task, seed, instruction, video))
                    wins = sum(o.success for o in outcomes)
                    progress.update(bar, advance=1, description=f"{result.name} {task} {wins}/{len(outcomes)}")
    finally:
        episodes.close()


def print_table(summary: dict[str, dict], tasks: list[str], console) -> None:
    from rich.table import Table

    clocks = sorted({s.get("clock", "") for s in summary.values()})
    table = Table(title="closed-loop success (held-out seeds); clock: " +
                  "; ".join(f"{c} = {CLOCKS[c]}" for c in clocks if c in CLOCKS))
    table.add_column("variant")
    table.add_column("[T_v, T_a]")
    for t in tasks:
        table.add_column(t, justify="right")
    for col in ("mean", "mean steps", "chunk ms p50", "server ms p50"):
        table.add_column(col, justify="right")
    for name, s in summary.items():
        if "error" in s:
            table.add_row(name, str(s["steps"]), *["-"] * len(tasks), "error", "", "", "")
            continue
        steps = np.mean(list(s["mean_steps"].values()))
        table.add_row(name, str(s["steps"]),
                      *[f"{s['success'][t]:.0%} ({s['episodes_per_task'][t]})" for t in tasks],
                      f"{s['mean_success']:.1%}", f"{steps:.0f}", f"{s['chunk_ms_p50']:.0f}",
                      f"{s['server_ms_p50']:.0f}")
    console.print(table)


def print_phrasings(summary: dict[str, dict], console) -> None:
    """Per variant and task, the phrasings the policy followed least often (--instructions)."""
    for name, s in summary.items():
        for task, rates in s.get("success_by_phrasing", {}).items():
            worst = sorted(rates.items(), key=lambda kv: kv[1])[:5]
            console.print(f"{name} {task}: {len(rates)} phrasings; lowest: "
                          + "; ".join(f"{r:.0%} {p!r}" for p, r in worst))


def print_failures(summary: dict[str, dict], console) -> None:
    """Per variant, how the failed episodes failed (where the clock tracks the moved object)."""
    for name, s in summary.items():
        if s.get("failures"):
            console.print(f"{name} failures (object never lifted / lifted, then failed [still held, let go "
                          f"within {NEAR_M * 100:.0f} cm of the destination, let go elsewhere]): " + "; ".join(
                              f"{t} {f['never_lifted']}/{f['lifted']}"
                              + (f" [{f['held']}, {f['released_near']}, {f['released_away']}]" if "held" in f else "")
                              for t, f in s["failures"].items()))


def run_in_children(argv: list[str], names: list[str], jobs: int, console) -> dict[str, dict]:
    """One `python -m policy.evaluate --variants NAME` child per variant, `jobs` at a time; each
    writes its summary as JSON (no pickle between processes)."""
    import subprocess
    import tempfile

    summary: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        pending, running = list(names), {}
        while pending or running:
            while pending and len(running) < jobs:
                name = pending.pop(0)
                out = Path(tmp) / f"{name}.json"
                cmd = [sys.executable, "-m", "policy.evaluate", *argv, "--variants", name, "--jobs", "1",
                       "--json-out", str(out)]
                running[name] = (subprocess.Popen(cmd, stdout=subprocess.DEVNULL), out, time.perf_counter())
            time.sleep(0.5)
            for name, (proc, out, start) in list(running.items()):
                if proc.poll() is None:
                    continue
                del running[name]
                if out.exists():
                    summary[name] = json.loads(out.read_text())[name]
                else:
                    summary[name] = {"error": f"evaluation child exited with code {proc.returncode}",
                                     "steps": list(VARIANTS[name])}
                console.print(f"{name}: {summary[name].get('mean_success', summary[name].get('error'))} "
                              f"in {time.perf_counter() - start:.0f} s")
    return {n: summary[n] for n in names}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m policy.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--episodes-per-task", type=int, default=50)
    p.add_argument("--baseline-episodes-per-task", type=int, default=None,
                   help="episodes per task for dense / video_free (default: same as rt)")
    p.add_argument("--first-seed", type=int, default=0, help="offset into the held-out seeds")
    p.add_argument("--tasks", default="all", help="comma-separated task names, or all")
    p.add_argument("--instructions", default=None, metavar="FILE",
                   help="JSON {task: [phrasing, ...]} (e.g. assets/instructions/held_out.json): evaluate these "
                        "phrasings, each task's episodes cycling through its list; success is also reported "
                        "per phrasing. Default: the tasks' own paraphrases, drawn by seed")
    p.add_argument("--clock", choices=list(CLOCKS), default="real",
                   help="real: the console's control core on the wall clock (the headline number); sim: the same "
                        "core on a simulated clock with --latency-ms; lockstep: model only, the world waits "
                        "for every chunk and --execute actions of it run")
    p.add_argument("--latency-ms", default="200,350",
                   help="--clock sim: observation -> chunk latency P50[,P95] in ms (log-normal), e.g. the "
                        "latency_ms_p50/p95 that app.tools.bench_live measured")
    p.add_argument("--merge", choices=list(MERGE_RULES), default=ControllerConfig.merge,
                   help="real/sim clock: how a new chunk joins the queue (app/control/action_queue.py)")
    p.add_argument("--request-threshold", type=int, default=ControllerConfig.request_threshold,
                   help="real/sim clock: request the next chunk when this many actions are left")
    p.add_argument("--server-nice", type=int, default=10,
                   help="real clock: the policy server's niceness (run_demo's default)")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {list(VARIANTS)}")
    p.add_argument("--execute", type=int, default=16,
                   help="actions run from each chunk before asking again (paper, sim: all 16)")
    p.add_argument("--max-steps", type=int, default=None,
                   help="cap every episode at this many ticks (default: each task's own max_steps)")
    p.add_argument("--no-rate-limit", action="store_true", help="skip the safety layer's per-tick change cap")
    p.add_argument("--object-jitter", type=float, default=1.0,
                   help="scale the object layout randomisation (1: the range the demonstrations used; "
                        "1.5: positions up to 1.5x further from the centres, a generalisation test)")
    p.add_argument("--scenes", choices=list(SCENES), default=SimConfig.scenes,
                   help="varied: objects anywhere in table regions, random yaw, distractors; classic: a few "
                        "cm around fixed slots (--object-jitter scales both: classic slots' jitter, varied task-object regions)")
    p.add_argument("--videos", type=int, default=1, help="rollout videos per task and variant (0: none)")
    p.add_argument("--videos-dir", default="eval_videos")
    p.add_argument("--camera-width", type=int, default=320)
    p.add_argument("--camera-height", type=int, default=240)
    p.add_argument("--port", type=int, default=0, help="server port (0: a free one)")
    p.add_argument("--server-threads", type=int, default=1,
                   help="torch threads of the policy server (OMP_NUM_THREADS; 0: torch's default). 1 is "
                        "fastest on a CPU shared with other jobs")
    p.add_argument("--server-timeout", type=float, default=300.0)
    p.add_argument("--infer-timeout", type=float, default=60.0)
    p.add_argument("--json-out", help="also write the JSON summary to this file")
    p.add_argument("--jobs", type=int, default=1, help="variants evaluated in parallel (child processes)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    from rich.console import Console

    from hardware.sim.tasks import TASKS

    args = parse_args(argv)
    console = Console(stderr=True)
    if not (Path(args.checkpoint) / "config.json").exists():
        raise SystemExit(f"--checkpoint {args.checkpoint}: no config.json there; train one with "
                         "`python -m policy.train` or use assets/checkpoints/sim-tiny")
    tasks = list(TASKS) if args.tasks == "all" else [t for t in args.tasks.split(",") if t]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise SystemExit(f"unknown task(s) {unknown}; choose from {list(TASKS)}")
    args.phrasings = {}
    if args.instructions:
        from hardware.sim.instructions import load_phrasings
        try:
            args.phrasings = load_phrasings(args.instructions)
        except ValueError as e:
            raise SystemExit(f"--instructions: {e}") from None
        if args.tasks == "all":
            tasks = list(args.phrasings)
        elif missing := [t for t in tasks if t not in args.phrasings]:
            raise SystemExit(f"--instructions {args.instructions} has no phrasings for {missing}; "
                             f"it has {list(args.phrasings)}")
    names = [v for v in args.variants.split(",") if v]
    bad = [v for v in names if v not in VARIANTS]
    if bad:
        raise SystemExit(f"unknown variant(s) {bad}; choose from {list(VARIANTS)}")
    if args.execute < 1:
        raise SystemExit(f"--execute must be >= 1, got {args.execute}")
    if not 0 <= args.object_jitter <= 1.5:
        raise SystemExit(f"--object-jitter must be in [0, 1.5], got {args.object_jitter}: further out the blocks "
                         "of the place tasks can overlap")
    if args.jobs > 1 and len(names) > 1:
        argv = list(sys.argv[1:] if argv is None else argv)
        summary = run_in_children(_without(argv, ("--variants", "--jobs", "--json-out")), names, args.jobs, console)
    else:
        summary = {}
        for name in names:
            start = time.perf_counter()
            summary[name] = run_variant(name, VARIANTS[name], args, tasks, console).summary()
            s = summary[name]
            console.print(f"{name}: {s.get('mean_success', s.get('error'))} in {time.perf_counter() - start:.0f} s")
    print_table(summary, tasks, console)
    print_failures(summary, console)
    if args.instructions:
        print_phrasings(summary, console)
    line = json.dumps(summary)
    if args.json_out:
        Path(args.json_out).write_text(line + "\n")
    print(line, flush=True)
    return summary


def _without(argv: list[str], flags: tuple[str, ...]) -> list[str]:
    """argv minus the given flags and their values (both --flag V and --flag=V forms)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in flags:
            skip = True
            continue
        if any(a.startswith(f + "=") for f in flags):
            continue
        out.append(a)
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
