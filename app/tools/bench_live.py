"""Benchmark: live success of the whole product, as an operator gets it.

    python -m app.tools.bench_live --episodes-per-task 20 [--merge replace|blend|rtc] [--tasks a,b] [--browser] [--no-record]

Starts run_demo's stack in this process (app/stack.py DemoStack: the policy server as a child
process at run_demo's niceness, the MuJoCo robot with its camera threads, the control loop, and
the Gradio console serving on a free port, recording rollouts into a temporary dataset), then
runs episodes through the stack's own Controller on the wall clock (app/control/episode.py:
reset the scene, the task's canonical instruction, START, until the task's check succeeds or its
time limit passes), by default on the tasks the checkpoint was trained on (--tasks taught; all
or names). Each rollout is recorded as the demo's START with Record ticked does (the recorder's
tick listener and encoders during it, the save after it) unless --no-record. --browser keeps an
operator's page open on the console meanwhile (headless chromium with nothing attached;
`--browser playwright` drives it over DevTools instead, which costs the page CPU and memory an
operator's browser does not). Seeds are the held-out evaluation seeds
(hardware.sim.tasks.EVAL_SEED_BASE + i, as policy.evaluate).
Prints a table and, on its last line, JSON:
  {"success": {TASK: rate}, "mean_success": x, "min_success": y, "latency_ms_p50": p50,
   "latency_ms_p95": p95, "clipped_per_episode": c, "merge": "replace", "page_fps": {CAMERA: fps}, ...}
Latency is observation -> actions in the queue (what the console's status bar shows).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator

from app.process_env import apply_defaults  # noqa: E402

apply_defaults()        # the console process's environment (run_demo.py's), before mujoco / gradio / pyarrow

import numpy as np  # noqa: E402

from app.control.action_queue import MERGE_RULES  # noqa: E402
from app.control.episode import Rollout, run_rollout  # noqa: E402
from app.status import percentile  # noqa: E402
from app.stack import DemoStack, StackConfig  # noqa: E402
from app.tools.harness import chromium_page, plain_chromium  # noqa: E402
from policy.wire.netutil import free_port  # noqa: E402



def summarise(rollouts: dict[str, list[Rollout]], merge: str) -> dict:
    success = {t: round(float(np.mean([r.success for r in rs])), 4) for t, rs in rollouts.items()}
    latency = [ms for rs in rollouts.values() for r in rs for ms in r.latency_ms]
    return {
        "success": success,
        "mean_success": round(float(np.mean(list(success.values()))), 4) if success else 0.0,
        "min_success": round(float(min(success.values())), 4) if success else 0.0,
        "latency_ms_p50": percentile(latency, 50),
        "latency_ms_p95": percentile(latency, 95),
        # where it goes (p50 of each stage; they need not add up to the total's p50): the client's
        # resize + serialise, the wire both ways, waiting in the server's queue, the model itself
        "latency_ms_p50_by_stage": {stage: percentile(values, 50) for stage in LATENCY_STAGES if (values := [
            r_chunk.timings_ms[stage] for rs in rollouts.values() for r in rs for r_chunk in r.chunks
            if stage in r_chunk.timings_ms])},
        "episodes_per_task": {t: len(rs) for t, rs in rollouts.items()},
        "mean_seconds": {t: round(float(np.mean([r.seconds for r in rs])), 1) for t, rs in rollouts.items()},
        "clipped_per_episode": round(float(np.mean([r.clipped for rs in rollouts.values() for r in rs])), 1)
        if rollouts else 0.0,
        # simulated per wall-clock time: below 1 the busy machine slowed the world, not the policy
        "sim_realtime_factor": round(float(np.mean(factors)), 3) if (factors := [
            r.realtime_factor for rs in rollouts.values() for r in rs if r.realtime_factor is not None]) else None,
        "outcomes": {t: sorted({r.outcome for r in rs}) for t, rs in rollouts.items()},
        "merge": merge,
        "clock": "real (run_demo's stack, console serving)",
    }


BROWSERS = ("none", "plain", "playwright")
LATENCY_STAGES = ("resize", "serialise", "network", "queue", "inference", "client_total")


def taught_tasks(checkpoint: str | None) -> list[str]:
    """The sim tasks a checkpoint was trained on: those with one of its training instructions
    (its config.json's training.instructions); every training task when it records none (random
    weights, an older checkpoint). The benchmarks' default: a task the policy was never shown
    measures the task, not the product."""
    import json
    from pathlib import Path

    from app.stack import DEFAULT_CHECKPOINT
    from hardware.sim.tasks import TRAINING_TASKS, tasks_taught_by
    config = Path(checkpoint or DEFAULT_CHECKPOINT) / "config.json"
    try:
        taught = tasks_taught_by(json.loads(config.read_text())["training"]["instructions"])
    except (OSError, KeyError, TypeError, ValueError):
        taught = []
    return sorted(taught) or list(TRAINING_TASKS)


def resolve_tasks(spec: str, checkpoint: str | None) -> list[str]:
    """--tasks: "taught" (the checkpoint's own tasks), "all", or comma-separated names."""
    from hardware.sim.tasks import TASKS
    if spec == "taught":
        return taught_tasks(checkpoint)
    tasks = sorted(TASKS) if spec == "all" else [t.strip() for t in spec.split(",") if t.strip()]
    if unknown := [t for t in tasks if t not in TASKS]:
        raise SystemExit(f"unknown task(s) {unknown}; tasks: {', '.join(sorted(TASKS))} (or taught, all)")
    return tasks


@contextlib.contextmanager
def live_stack(tmp: str, *, checkpoint: str | None = None, merge: str = StackConfig.merge, browser: str = "none",
               record: bool = True, console=None, policy_nice: int = StackConfig.policy_nice,
               page_devtools: bool = False) -> Iterator[tuple[DemoStack, object | None]]:
    """run_demo's stack on free ports (recording into TMP/rollouts unless record=False), with an
    operator's page open on its console meanwhile (the live feeds stream) unless browser="none":
    "plain" is headless chromium with nothing attached, as an operator's browser (the numbers we
    publish); "playwright" drives it over DevTools and yields the page (it belongs to the calling
    thread: Playwright's sync API). page_devtools: the plain browser opens a DevTools port for
    harness.page_memory (profile: TMP/chromium-profile). Yields (stack, page or None)."""
    if browser not in BROWSERS:
        raise ValueError(f"browser={browser!r}: choose one of {', '.join(BROWSERS)}")
    stack = DemoStack(StackConfig(checkpoint=checkpoint, dataset=os.path.join(tmp, "rollouts") if record else None,
                                  port=free_port(), policy_port=free_port(), open_browser=False, merge=merge,
                                  policy_nice=policy_nice))
    try:
        t0 = time.monotonic()
        stack.start()
        if console is not None:
            console.print(f"stack up in {time.monotonic() - t0:.0f} s; console on {stack.url}")
        with contextlib.ExitStack() as watchers:
            page = None
            if browser == "plain":
                watchers.enter_context(plain_chromium(stack.url, os.path.join(tmp, "chromium-profile"),
                                                      devtools=page_devtools))
                wait_for_viewer(stack)
            elif browser == "playwright":
                page = watchers.enter_context(chromium_page())
                page.goto(stack.url)
                page.wait_for_selector("#ewam-status .status-bar", timeout=120_000)
            yield stack, page
    finally:
        stack.close()


def wait_for_viewer(stack: DemoStack, timeout_s: float = 120.0) -> None:
    """Until a page pulls camera frames from the console (every feed served at least one)."""
    deadline = time.monotonic() + timeout_s
    while not all(stack.console.feeds.served().values()):
        if time.monotonic() > deadline:
            raise SystemExit(f"no page pulled a camera frame in {timeout_s:.0f} s: is chromium running? "
                             f"(try chromium --headless=new {stack.url})")
        time.sleep(0.5)


def recorded_rollout(stack: DemoStack, task: str, seed: int, *, record: bool, max_steps: int | None = None,
                     keep=lambda r: True) -> Rollout:
    """One rollout of the task's canonical instruction, recorded as the console's START with Record
    ticked does (the recorder opens the episode, the rollout's ticks and imagined futures go into
    it, the end saves it, labelled by the task check) when record is set. keep(rollout) False
    discards the episode instead (a rollout cut off by the end of a benchmark)."""
    from hardware.sim.tasks import TASKS
    recorder = stack.recorder if record else None
    if record and recorder is None:
        raise ValueError("record=True needs a stack with a dataset (StackConfig.dataset)")
    if recorder is not None:
        recorder.start(TASKS[task].instruction, "policy")
    try:
        r = run_rollout(stack.controller, stack.robot, task, seed, TASKS[task].instruction, max_steps=max_steps)
    except BaseException:
        if recorder is not None:
            recorder.discard()
        raise
    if recorder is not None:
        recorder.save() if keep(r) else recorder.discard()
    return r


def run_all(stack: DemoStack, tasks: list[str], args, rollouts: dict[str, list[Rollout]], console) -> None:
    from hardware.sim.tasks import EVAL_SEED_BASE
    for task in tasks:
        for i in range(args.episodes_per_task):
            seed = EVAL_SEED_BASE + args.first_seed + i
            r = recorded_rollout(stack, task, seed, record=args.record, max_steps=args.max_steps)
            rollouts.setdefault(task, []).append(r)
            if (why := stack.check()) is not None:
                raise SystemExit(f"the stack failed during the benchmark: {why}")
            wins = sum(x.success for x in rollouts[task])
            pace = "" if r.realtime_factor is None else f", world at {r.realtime_factor:.2f}x real time"
            console.print(f"{task} seed {seed}: {r.outcome} in {r.seconds:.1f} s, {len(r.chunks)} chunks{pace} "
                          f"({wins}/{len(rollouts[task])})")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m app.tools.bench_live", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes-per-task", type=int, default=20)
    p.add_argument("--tasks", default="taught",
                   help="comma-separated task names, all, or taught (default: the tasks the checkpoint was trained on)")
    p.add_argument("--first-seed", type=int, default=0, help="offset into the held-out seeds")
    p.add_argument("--merge", choices=MERGE_RULES, default=StackConfig.merge)
    p.add_argument("--checkpoint", default=None, help="default: the shipped assets/checkpoints/sim-tiny")
    p.add_argument("--max-steps", type=int, default=None, help="cap episodes at this many ticks")
    p.add_argument("--policy-nice", type=int, default=StackConfig.policy_nice,
                   help="niceness of the policy child (run_demo's default: %(default)s)")
    p.add_argument("--no-record", dest="record", action="store_false",
                   help="do not record the rollouts (the demo records each one by default: run_demo's dataset, "
                        "the console's Record box ticked)")
    p.add_argument("--browser", nargs="?", const="plain", default="none", choices=BROWSERS,
                   help="keep the console open in headless chromium meanwhile, the live feeds streaming as for "
                        "an operator watching: plain (the default of a bare --browser) has nothing attached; "
                        "playwright drives the page over DevTools (costs CPU and memory an operator's browser "
                        "does not)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from rich.console import Console
    from rich.table import Table

    tasks = resolve_tasks(args.tasks, args.checkpoint)
    console = Console(stderr=True)
    rollouts: dict[str, list[Rollout]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_live_") as tmp, \
            live_stack(tmp, checkpoint=args.checkpoint, merge=args.merge, browser=args.browser, record=args.record,
                       console=console, policy_nice=args.policy_nice) as (stack, _page):
        served, t0 = stack.console.feeds.served(), time.monotonic()
        run_all(stack, tasks, args, rollouts, console)
        elapsed = time.monotonic() - t0
        # what the page was shown meanwhile: frames the console handed it, per camera per second
        page_fps = {c: round((n - served[c]) / elapsed, 1) for c, n in stack.console.feeds.served().items()}
    summary = summarise(rollouts, args.merge)
    summary["browser"] = args.browser
    summary["page_fps"] = page_fps if args.browser != "none" else {}
    summary["policy_nice"] = args.policy_nice
    summary["recorded"] = args.record
    table = Table(title=f"live success ({summary['clock']}, merge={args.merge})")
    for col in ("task", "success", "episodes", "mean s"):
        table.add_column(col)
    for t in tasks:
        table.add_row(t, f"{summary['success'][t]:.0%}", str(summary["episodes_per_task"][t]),
                      f"{summary['mean_seconds'][t]:.1f}")
    table.add_row("mean", f"{summary['mean_success']:.1%}", "", "")
    console.print(table)
    console.print(f"latency observation -> queued: p50 {summary['latency_ms_p50']} ms, "
                  f"p95 {summary['latency_ms_p95']} ms; clipped commands per episode {summary['clipped_per_episode']}")
    console.print("p50 by stage (ms): " + ", ".join(f"{k} {v}" for k, v in summary["latency_ms_p50_by_stage"].items()))
    if summary["page_fps"]:
        console.print("page frame rate per camera (served to the browser): "
                      + ", ".join(f"{c} {f:g} fps" for c, f in summary["page_fps"].items()))
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)        # skip slow interpreter teardown of gradio threads; everything is closed
