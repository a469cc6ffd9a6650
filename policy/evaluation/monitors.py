"""Does the console know when the policy is lost? Episodes with induced failures beside ordinary ones.

    python -m policy.evaluation.monitors --checkpoint assets/checkpoints/sim-tiny --episodes-per-task 5
    python -m policy.evaluation.monitors --checkpoint DIR --clock real       # wall clock, slower
    python -m policy.evaluation.monitors --checkpoint DIR --calibrate        # thresholds -> DIR/monitors.json

A policy server child serves the checkpoint (as the console's does); for every task and held-out
seed the same episode is run in each condition:
  ordinary    one of the task's phrasings, the training layout range
  unfamiliar  a skill the policy was never taught (assets/instructions/untaught.json, kind "action")
  layout      objects up to 1.5x further from their centres than any demonstration (classic scenes)
  moved       the task's first object is pushed 8.6 cm while the policy runs (1.2 s in)
Episodes run through the console's control core (app/control: Controller, ActionQueue, SafeArm;
policy.evaluation.closed_loop) with the console's own SurpriseMonitor (app/surprise.py) listening
to its chunks and ticks and asking the server, as in the console:
  --clock sim   (default) a simulated clock with the live latency (--latency-ms, from bench_live);
                the world also waits for each surprise answer, so none is skipped
  --clock real  the wall clock, SimRobot threads, the server at the console's niceness
An episode's score is its largest chunk surprise among chunks observed in its first 5 s
(--window-s). Familiarity is scored as policy.evaluation.familiarity does (held-out phrasings
of the taught tasks vs assets/instructions/untaught.json, the whole console rule). Prints a
table, and on its last line JSON with surprise_auroc (failed vs succeeded episodes, by the
first-5-s score), surprise_auroc_induced (induced vs ordinary), familiarity_known_above,
familiarity_unknown_below and the per-condition numbers.
--calibrate picks the familiarity threshold (policy.evaluation.familiarity) and the surprise thresholds
from ordinary episodes' chunks (surprised: their 95th percentile, lost: their 99th: an ordinary
episode shows "lost" on about 1 chunk in 100) and writes them to the checkpoint's monitors.json,
which the runner reads at load.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "osmesa")

import numpy as np  # noqa: E402

from app.control.action_queue import DEFAULT_MERGE, MERGE_RULES  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CONDITIONS = ("ordinary", "unfamiliar", "layout", "moved")
MOVE = (0.07, -0.05)                  # metres an object is pushed in the "moved" condition
MOVE_TICK = 12                        # ... 1.2 s into the episode, while its second chunk runs
LAYOUT_JITTER = 1.5


@dataclass
class MonitoredEpisode:
    task: str
    seed: int
    condition: str
    instruction: str
    success: bool
    steps: int
    surprise: list[float] = field(default_factory=list)     # per chunk answered, in chunk order
    surprise_ticks: list[int] = field(default_factory=list)  # each one's observation tick (from the start)
    chunk_ticks: list[int] = field(default_factory=list)     # every chunk's observation tick, answered or not
    familiarity: float = float("nan")
    window_ticks: int = 50                                    # first 5 s at 10 Hz

    @property
    def score(self) -> float:
        """The largest surprise of a chunk observed in the episode's first window_ticks ticks."""
        finite = [s for s, t in zip(self.surprise, self.surprise_ticks) if np.isfinite(s) and t < self.window_ticks]
        return max(finite) if finite else float("nan")


def auroc(positive: list[float], negative: list[float]) -> float:
    """P(score of a positive > score of a negative), ties half: the area under the ROC curve."""
    pos, neg = np.asarray([p for p in positive if np.isfinite(p)]), np.asarray([n for n in negative if np.isfinite(n)])
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * ties)


def roc_curve(positive: list[float], negative: list[float]) -> tuple[np.ndarray, np.ndarray]:
    positive = [p for p in positive if np.isfinite(p)]
    negative = [n for n in negative if np.isfinite(n)]
    scores = np.concatenate([positive, negative])
    labels = np.concatenate([np.ones(len(positive)), np.zeros(len(negative))])
    order = np.argsort(-scores)
    tpr = np.concatenate([[0], np.cumsum(labels[order]) / max(1, len(positive))])
    fpr = np.concatenate([[0], np.cumsum(1 - labels[order]) / max(1, len(negative))])
    return fpr, tpr


# -- familiarity --------------------------------------------------------------------------

def training_instructions(checkpoint: str | Path) -> list[str]:
    config = json.loads((Path(checkpoint) / "config.json").read_text())
    training = config.get("training", {})
    return list(training.get("phrasings") or training.get("instructions") or [])      # as the runner reads them


def familiarity_scores(client, checkpoint: str | Path) -> dict[str, list[dict]]:
    """Both sides of the familiarity evaluation, scored by the server (policy.evaluation.familiarity)."""
    from policy.evaluation import familiarity
    from policy.serving.instruction_slots import SlotIndex
    training = training_instructions(checkpoint)
    slots = SlotIndex(training)
    sets = familiarity.load_sets(training, lambda text: not slots.check(text).reasons)
    return familiarity.score_sets(client.familiarity, sets)


def untaught_skills() -> list[str]:
    from policy.evaluation.familiarity import UNTAUGHT
    return [u["text"] for u in json.loads(UNTAUGHT.read_text())["untaught"] if u.get("kind") == "action"]


# -- episodes -----------------------------------------------------------------------------

class MonitoredRuns:
    """Monitored episodes through the console's control core on the chosen clock, the console's
    SurpriseMonitor listening to the controller's chunks and ticks (as app/stack.py wires it)."""

    def __init__(self, client, args, first_task: str):
        from app.control.controller import ControllerConfig
        from app.surprise import SurpriseMonitor
        from hardware.sim.env import SimConfig, SimEnv
        from policy.evaluation.closed_loop import LatencyModel, real_clock_robot

        self.client, self.args = client, args
        self.monitor = SurpriseMonitor(client, client.metadata or client.hello())   # auto-hold off, as by default
        if not self.monitor.enabled:
            raise SystemExit(f"{args.checkpoint} imagines no future (future_frames 0): there is no surprise to measure")
        self.monitor.add_listener(self._on_surprise)
        self.monitor.start()
        self.config = ControllerConfig(merge=args.merge)
        self.window_ticks = int(round(args.window_s * self.config.control_hz))
        self._answers: dict[int, float] = {}
        self._starts: dict[int, int] = {}
        self._first_tick = 0
        self._push: str | None = None                        # the object the episode's disturbance moves
        sim = SimConfig(task=first_task, scenes=args.scenes)
        self.env = self.robot = self.controller = None
        if args.clock == "real":
            self.robot, self.controller = real_clock_robot(sim, client, self.config)
            self.controller.add_chunk_listener(self._on_chunk)
            self.controller.add_tick_listener(self._on_tick)
            self.controller.start()
        else:
            self.env = SimEnv(sim)
            self.latency = LatencyModel.parse(args.latency_ms)

    # listeners: the control core's threads (real clock) or this one (sim clock)
    def _on_chunk(self, record) -> None:
        self._starts[int(record.chunk_id)] = int(record.start_tick) - self._first_tick
        self.monitor.on_chunk(record)

    def _on_tick(self, record) -> None:
        self.monitor.on_tick(record)
        if self._push is not None and record.tick - self._first_tick >= MOVE_TICK:
            name, self._push = self._push, None
            (self.robot or self.env).push_object(name, *MOVE)     # before the world's next step

    def _on_surprise(self, chunk_id: int, value: float, state: str) -> None:
        self._answers[chunk_id] = value

    def run(self, task: str, seed: int, condition: str, instruction: str) -> MonitoredEpisode:
        from hardware.sim.tasks import TASKS
        self.monitor.reset()
        self._answers.clear()
        self._starts.clear()
        jitter = LAYOUT_JITTER if condition == "layout" else 1.0
        pushed = TASKS[task].moved if condition == "moved" else None
        if self.robot is not None:
            from app.control.episode import run_rollout
            self.robot.env.config.object_jitter = jitter            # read by the reset, under the robot's lock
            self._first_tick, self._push = self.controller.status().tick, pushed
            r = run_rollout(self.controller, self.robot, task, seed, instruction, max_steps=self.args.max_steps)
            success, steps = r.success, r.ticks
        else:
            from policy.evaluation.closed_loop import run_sim_clock_episode
            self.env.config.object_jitter = jitter
            self._first_tick, self._push = 0, pushed                 # a new controller counts from tick 0
            out = run_sim_clock_episode(self.env, self.client, task, seed, instruction, self.latency, self.config,
                                        max_steps=self.args.max_steps, chunk_listener=self._on_chunk,
                                        tick_listener=self._on_tick, after_tick=lambda tick: self.monitor.wait_idle())
            success, steps = out.success, out.steps
        self._push = None
        self.monitor.wait_idle(timeout_s=30.0)                  # the last answers in flight
        chunks = sorted(self._answers)
        return MonitoredEpisode(task, seed, condition, instruction, success, steps,
                                surprise=[self._answers[c] for c in chunks],
                                surprise_ticks=[self._starts.get(c, -1) for c in chunks],
                                chunk_ticks=sorted(self._starts.values()),
                                window_ticks=self.window_ticks)

    def close(self) -> None:
        self.monitor.close()
        if self.controller is not None:
            self.controller.close()
        for part in (self.robot, self.env):
            if part is not None:
                part.close()


def run(args, console) -> tuple[list[MonitoredEpisode], dict[str, list[dict]]]:
    from rich.progress import Progress

    from hardware.sim.tasks import TASKS
    from policy.evaluation.evaluate import eval_seeds
    from policy.evaluation.rollout import instruction_for
    from policy.serving.process import ServerProcess
    from policy.wire.client import PolicyClient

    tasks = list(TASKS) if args.tasks == "all" else args.tasks.split(",")
    conditions = args.conditions.split(",")
    untaught = untaught_skills()
    server = ServerProcess(["--checkpoint", args.checkpoint, "--bind", "tcp://127.0.0.1:0", "--log-level", "WARNING"],
                           env={**os.environ, "OMP_NUM_THREADS": "1"}, ready_timeout_s=300,
                           nice=args.server_nice if args.clock == "real" else 0)
    address = server.start()
    episodes: list[MonitoredEpisode] = []
    try:
        client = PolicyClient(address, timeout_s=60)
        client.hello()
        scored = familiarity_scores(client, args.checkpoint)
        runs = MonitoredRuns(client, args, tasks[0])
        try:
            with Progress(console=console, transient=True) as progress:
                bar = progress.add_task("episodes", total=len(tasks) * len(conditions) * args.episodes_per_task)
                for task in tasks:
                    for i, seed in enumerate(eval_seeds(args.episodes_per_task, args.first_seed)):
                        for condition in conditions:
                            instruction = (untaught[(i + tasks.index(task)) % len(untaught)] if condition == "unfamiliar"
                                           else instruction_for(task, seed))
                            ep = runs.run(task, seed, condition, instruction)
                            ep.familiarity = float(client.familiarity(instruction)["cosine"])
                            episodes.append(ep)
                            progress.update(bar, advance=1, description=f"{task} {condition}")
        finally:
            runs.close()
            client.close()
    finally:
        server.stop()
    return episodes, scored


def summarise(episodes: list[MonitoredEpisode], scored: dict[str, list[dict]], threshold: float) -> dict:
    by = {c: [e for e in episodes if e.condition == c] for c in CONDITIONS}
    ordinary = [e.score for e in by["ordinary"]]
    induced = [e.score for c in ("layout", "moved", "unfamiliar") for e in by[c]]
    failed, succeeded = [e for e in episodes if not e.success], [e for e in episodes if e.success]
    ordinary_chunks = [s for e in by["ordinary"] for s in e.surprise if np.isfinite(s)]
    from policy.evaluation.familiarity import summarise as familiarity_summary
    fam = familiarity_summary(scored, threshold)
    return {
        "surprise_auroc": round(auroc([e.score for e in failed], [e.score for e in succeeded]), 4),
        "failures": len(failed), "successes": len(succeeded),
        "unscored_episodes": sum(not np.isfinite(e.score) for e in episodes),
        "surprise_auroc_induced": round(auroc(induced, ordinary), 4),
        "surprise_auroc_by_condition": {c: round(auroc([e.score for e in by[c]], ordinary), 4)
                                        for c in ("layout", "moved", "unfamiliar") if by[c]},
        "familiarity_known_above": fam["known_above"],
        "familiarity_unknown_below": fam["unknown_below"],
        "familiarity": fam,
        "ordinary_chunk_surprise_p50": round(float(np.percentile(ordinary_chunks, 50)), 4) if ordinary_chunks else None,
        "ordinary_chunk_surprise_p95": round(float(np.percentile(ordinary_chunks, 95)), 4) if ordinary_chunks else None,
        "conditions": {c: {"episodes": len(eps), "success": round(float(np.mean([e.success for e in eps])), 4),
                           "surprise_max_median": round(float(np.nanmedian([e.score for e in eps])), 4)
                           if any(np.isfinite(e.score) for e in eps) else None,
                           "chunks_scored": int(np.mean([len(e.surprise) for e in eps])),
                           "familiarity_median": round(float(np.nanmedian([e.familiarity for e in eps])), 4)}
                       for c, eps in by.items() if eps},
    }


def print_table(summary: dict, console) -> None:
    from rich.table import Table
    table = Table(title="monitors: induced failures vs ordinary episodes")
    for col in ("condition", "episodes", "success", "chunks scored", "first-5-s max surprise (median)",
                "familiarity (median)", "AUROC vs ordinary"):
        table.add_column(col, justify="right")
    for c, s in summary["conditions"].items():
        surprise = "-" if s["surprise_max_median"] is None else f"{s['surprise_max_median']:.3f}"
        table.add_row(c, str(s["episodes"]), f"{s['success']:.0%}", str(s["chunks_scored"]), surprise,
                      f"{s['familiarity_median']:.3f}", f"{summary['surprise_auroc_by_condition'].get(c, float('nan')):.2f}")
    console.print(table)
    f = summary["familiarity"]
    console.print(f"familiarity threshold {f['threshold']:.3f} + slot and scene tests: {f['known_above']:.0%} of "
                  f"{f['n_known']} held-out phrasings familiar, {f['unknown_below']:.0%} of {f['n_unknown']} untaught "
                  f"flagged; misses: {[m['text'] for m in f['known']['misses'] + f['unknown']['misses']]}")
    console.print(f"surprise AUROC, failed ({summary['failures']}) vs succeeded ({summary['successes']}) episodes by "
                  f"their first-5-s surprise: {summary['surprise_auroc']:.3f}; induced vs ordinary: "
                  f"{summary['surprise_auroc_induced']:.3f}")


def plot_roc(episodes: list[MonitoredEpisode], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ordinary = [e.score for e in episodes if e.condition == "ordinary"]
    fig, ax = plt.subplots(figsize=(4, 4))
    failed, succeeded = [e.score for e in episodes if not e.success], [e.score for e in episodes if e.success]
    if failed and succeeded:
        fpr, tpr = roc_curve(failed, succeeded)
        ax.plot(fpr, tpr, "k", lw=2, label=f"failed vs succeeded (AUROC {auroc(failed, succeeded):.2f})")
    for c in ("layout", "moved", "unfamiliar"):
        pos = [e.score for e in episodes if e.condition == c]
        if pos:
            fpr, tpr = roc_curve(pos, ordinary)
            ax.plot(fpr, tpr, label=f"{c} (AUROC {auroc(pos, ordinary):.2f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("false positive rate (successes / ordinary episodes)")
    ax.set_ylabel("true positive rate")
    ax.set_title("largest imagination surprise in an episode's first 5 s", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m policy.evaluation.monitors", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--episodes-per-task", type=int, default=2)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--tasks", default="all")
    p.add_argument("--conditions", default=",".join(CONDITIONS))
    p.add_argument("--max-steps", type=int, default=None, help="cap every episode at this many ticks")
    p.add_argument("--clock", choices=["sim", "real"], default="sim",
                   help="sim: the control core on a simulated clock with --latency-ms; real: the wall clock "
                        "(policy.evaluation.closed_loop)")
    p.add_argument("--latency-ms", default="200,350",
                   help="--clock sim: observation -> chunk latency P50[,P95] ms, e.g. what app.tools.bench_live measured")
    p.add_argument("--merge", choices=MERGE_RULES, default=DEFAULT_MERGE)
    p.add_argument("--scenes", choices=["classic", "varied"], default=None,
                   help="default: the simulator's default scenes (hardware.sim.env.SimConfig)")
    p.add_argument("--window-s", type=float, default=5.0,
                   help="an episode is scored by the chunks observed in its first this-many seconds")
    p.add_argument("--server-nice", type=int, default=10, help="--clock real: the server's niceness (run_demo's)")
    p.add_argument("--calibrate", action="store_true", help="write the chosen thresholds to CHECKPOINT/monitors.json")
    p.add_argument("--roc-png", default=None, help="write the ROC curves here")
    p.add_argument("--json-out", default=None)
    return p.parse_args(argv)


def main(argv=None) -> dict:
    from rich.console import Console

    from policy.serving.monitors import MONITORS_FILE, MonitorThresholds

    args = parse_args(argv)
    if args.scenes is None:
        from hardware.sim.env import SimConfig
        args.scenes = SimConfig.scenes
    console = Console(stderr=True)
    episodes, scored = run(args, console)
    thresholds = MonitorThresholds.load(args.checkpoint)
    if args.calibrate:
        from policy.evaluation.familiarity import choose_threshold
        thresholds.familiarity = choose_threshold(scored["known"], scored["untaught"])
        chunks = [s for e in episodes if e.condition == "ordinary" for s in e.surprise if np.isfinite(s)]
        if chunks:
            thresholds.surprised = round(float(np.percentile(chunks, 95)), 3)
            thresholds.lost = round(float(np.percentile(chunks, 99)), 3)
    summary = summarise(episodes, scored, thresholds.familiarity)
    summary["thresholds"] = thresholds.to_dict()
    summary.update(clock=args.clock, latency_ms=args.latency_ms if args.clock == "sim" else None,
                   scenes=args.scenes, merge=args.merge, window_s=args.window_s)
    if args.calibrate:
        out = Path(args.checkpoint) / MONITORS_FILE
        out.write_text(json.dumps({"thresholds": thresholds.to_dict(), "calibration": {
            k: summary[k] for k in ("familiarity", "surprise_auroc", "surprise_auroc_induced",
                                    "ordinary_chunk_surprise_p50", "ordinary_chunk_surprise_p95", "clock")},
            "written_by": "python -m policy.evaluation.monitors --calibrate "
                          f"--episodes-per-task {args.episodes_per_task} --clock {args.clock}"}, indent=2) + "\n")
        console.print(f"thresholds {thresholds.to_dict()} written to {out}")
    print_table(summary, console)
    if args.roc_png:
        plot_roc(episodes, Path(args.roc_png))
    summary["episodes"] = [{**asdict(e), "score": e.score} for e in episodes]
    line = json.dumps({k: v for k, v in summary.items() if k != "episodes"})
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(summary) + "\n")
    print(line, flush=True)
    return summary


if __name__ == "__main__":
    main()
    sys.exit(0)
