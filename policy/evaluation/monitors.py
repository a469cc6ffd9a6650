"""Does the console know when the policy is lost? Episodes with induced failures beside ordinary ones.

    python -m policy.evaluation.monitors --checkpoint assets/checkpoints/sim-tiny --episodes-per-task 2
    python -m policy.evaluation.monitors --checkpoint DIR --calibrate      # thresholds -> DIR/monitors.json

A policy server child serves the checkpoint (as the console's does); for every task and held-out
seed the same episode is run in each condition:
  ordinary    one of the task's phrasings, the training layout range
  unfamiliar  a skill the policy was never taught (assets/instructions/untaught.json, kind "action")
  layout      objects up to 1.5x further from their centres than any demonstration
  moved       the task's first object is moved 6-8 cm while the policy runs (chunk 2, tick 2)
Each chunk's imagination surprise is asked for with the frames the cameras delivered at its
imagined steps (policy.wire.surprise), exactly as the console does; an episode scores its largest
chunk surprise. Familiarity is scored as policy.evaluation.familiarity does (held-out phrasings
of the taught tasks vs assets/instructions/untaught.json, the whole console rule). Prints a table, and on its last line JSON with surprise_auroc (induced vs ordinary
episodes), familiarity_known_above, familiarity_unknown_below and the per-condition numbers.
--calibrate picks the familiarity threshold (policy.evaluation.familiarity) and the surprise thresholds
from ordinary episodes (surprised: their 99th percentile chunk, lost: 2x that) and writes them to
the checkpoint's monitors.json, which the runner reads at load.
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

REPO = Path(__file__).resolve().parents[2]
CONDITIONS = ("ordinary", "unfamiliar", "layout", "moved")
MOVE = (0.07, -0.05)                  # metres an object is pushed in the "moved" condition


@dataclass
class MonitoredEpisode:
    task: str
    seed: int
    condition: str
    instruction: str
    success: bool
    steps: int
    surprise: list[float] = field(default_factory=list)     # per chunk (NaN where none came back)
    familiarity: float = float("nan")

    @property
    def score(self) -> float:
        finite = [s for s in self.surprise if np.isfinite(s)]
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

def run_monitored_episode(env, client, task: str, seed: int, condition: str, instruction: str,
                          execute: int = 16, max_steps: int | None = None) -> MonitoredEpisode:
    from hardware.sim.tasks import object_pos, set_object_pose
    from policy.evaluation.rollout import safe_env_arm
    from policy.wire.client import PolicyServerError
    from policy.wire.surprise import ImaginedFrames
    from policy.wire.types import Observation

    env.config.object_jitter = 1.5 if condition == "layout" else 1.0
    env.reset(task=task, seed=seed)
    arm = safe_env_arm(env)
    frames = ImaginedFrames.for_policy(client.metadata or client.hello())
    out = MonitoredEpisode(task, seed, condition, instruction, False, 0)
    limit = env.task.max_steps if max_steps is None else min(max_steps, env.task.max_steps)
    chunk_index = 0
    while out.steps < limit and not out.success:
        images = env.render()
        chunk = client.infer(Observation(images=images, state=env.state(), instruction=instruction))
        if frames is not None:
            frames.open(chunk.chunk_id, out.steps)
        done = []
        for j, action in enumerate(chunk.actions[:execute]):
            if condition == "moved" and chunk_index == 1 and j == 1:
                name = env.task.objects[0]
                p = object_pos(env.model, env.data, name)
                set_object_pose(env.model, env.data, name, p[0] + MOVE[0], p[1] + MOVE[1])
            env.step(arm.command(action).astype(np.float32))
            out.steps += 1
            if frames is not None:
                done += frames.add(out.steps, env.render())
            out.success = env.success()
            if out.success or out.steps >= limit:
                break
        for seen in done:        # the console sends these from its preview thread; here the sim waits
            try:
                out.surprise.append(float(client.surprise(seen.chunk_id, seen.steps, seen.frames)["surprise"]))
            except PolicyServerError:
                out.surprise.append(float("nan"))
        chunk_index += 1
    return out


def run(args, console) -> tuple[list[MonitoredEpisode], dict[str, list[dict]]]:
    from rich.progress import Progress

    from hardware.sim.env import SimConfig, SimEnv
    from hardware.sim.tasks import TASKS
    from policy.evaluation.evaluate import eval_seeds
    from policy.evaluation.rollout import instruction_for
    from policy.serving.process import ServerProcess
    from policy.wire.client import PolicyClient

    tasks = list(TASKS) if args.tasks == "all" else args.tasks.split(",")
    conditions = args.conditions.split(",")
    untaught = untaught_skills()
    server = ServerProcess(["--checkpoint", args.checkpoint, "--bind", "tcp://127.0.0.1:0", "--log-level", "WARNING"],
                           env={**os.environ, "OMP_NUM_THREADS": "1"}, ready_timeout_s=300)
    address = server.start()
    episodes: list[MonitoredEpisode] = []
    try:
        client = PolicyClient(address, timeout_s=60)
        client.hello()
        scored = familiarity_scores(client, args.checkpoint)
        env = SimEnv(SimConfig(task=tasks[0]))
        try:
            with Progress(console=console, transient=True) as progress:
                bar = progress.add_task("episodes", total=len(tasks) * len(conditions) * args.episodes_per_task)
                for task in tasks:
                    for i, seed in enumerate(eval_seeds(args.episodes_per_task, args.first_seed)):
                        for condition in conditions:
                            instruction = (untaught[(i + tasks.index(task)) % len(untaught)] if condition == "unfamiliar"
                                           else instruction_for(task, seed))
                            ep = run_monitored_episode(env, client, task, seed, condition, instruction,
                                                       max_steps=args.max_steps)
                            ep.familiarity = float(client.familiarity(instruction)["cosine"])
                            episodes.append(ep)
                            progress.update(bar, advance=1, description=f"{task} {condition}")
        finally:
            env.close()
            client.close()
    finally:
        server.stop()
    return episodes, scored


def summarise(episodes: list[MonitoredEpisode], scored: dict[str, list[dict]], threshold: float) -> dict:
    by = {c: [e for e in episodes if e.condition == c] for c in CONDITIONS}
    ordinary = [e.score for e in by["ordinary"]]
    induced = [e.score for c in ("layout", "moved", "unfamiliar") for e in by[c]]
    ordinary_chunks = [s for e in by["ordinary"] for s in e.surprise if np.isfinite(s)]
    from policy.evaluation.familiarity import summarise as familiarity_summary
    fam = familiarity_summary(scored, threshold)
    return {
        "surprise_auroc": round(auroc(induced, ordinary), 4),
        "surprise_auroc_by_condition": {c: round(auroc([e.score for e in by[c]], ordinary), 4)
                                        for c in ("layout", "moved", "unfamiliar") if by[c]},
        "surprise_auroc_failed_vs_succeeded": round(auroc([e.score for e in episodes if not e.success],
                                                          [e.score for e in episodes if e.success]), 4),
        "familiarity_known_above": fam["known_above"],
        "familiarity_unknown_below": fam["unknown_below"],
        "familiarity": fam,
        "ordinary_chunk_surprise_p50": round(float(np.percentile(ordinary_chunks, 50)), 4) if ordinary_chunks else None,
        "ordinary_chunk_surprise_p95": round(float(np.percentile(ordinary_chunks, 95)), 4) if ordinary_chunks else None,
        "conditions": {c: {"episodes": len(eps), "success": round(float(np.mean([e.success for e in eps])), 4),
                           "surprise_max_median": round(float(np.nanmedian([e.score for e in eps])), 4),
                           "familiarity_median": round(float(np.nanmedian([e.familiarity for e in eps])), 4)}
                       for c, eps in by.items() if eps},
    }


def print_table(summary: dict, console) -> None:
    from rich.table import Table
    table = Table(title="monitors: induced failures vs ordinary episodes")
    for col in ("condition", "episodes", "success", "max surprise (median)", "familiarity (median)", "AUROC vs ordinary"):
        table.add_column(col, justify="right")
    for c, s in summary["conditions"].items():
        table.add_row(c, str(s["episodes"]), f"{s['success']:.0%}", f"{s['surprise_max_median']:.3f}",
                      f"{s['familiarity_median']:.3f}", f"{summary['surprise_auroc_by_condition'].get(c, float('nan')):.2f}")
    console.print(table)
    f = summary["familiarity"]
    console.print(f"familiarity threshold {f['threshold']:.3f} + slot and scene tests: {f['known_above']:.0%} of "
                  f"{f['n_known']} held-out phrasings familiar, {f['unknown_below']:.0%} of {f['n_unknown']} untaught "
                  f"flagged; misses: {[m['text'] for m in f['known']['misses'] + f['unknown']['misses']]}")
    console.print(f"surprise AUROC (induced vs ordinary episodes): {summary['surprise_auroc']:.3f}")


def plot_roc(episodes: list[MonitoredEpisode], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ordinary = [e.score for e in episodes if e.condition == "ordinary"]
    fig, ax = plt.subplots(figsize=(4, 4))
    for c in ("layout", "moved", "unfamiliar"):
        pos = [e.score for e in episodes if e.condition == c]
        if pos:
            fpr, tpr = roc_curve(pos, ordinary)
            ax.plot(fpr, tpr, label=f"{c} (AUROC {auroc(pos, ordinary):.2f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("false positive rate (ordinary episodes)")
    ax.set_ylabel("true positive rate")
    ax.set_title("episode max imagination surprise", fontsize=9)
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
    p.add_argument("--calibrate", action="store_true", help="write the chosen thresholds to CHECKPOINT/monitors.json")
    p.add_argument("--roc-png", default=None, help="write the ROC curves here")
    p.add_argument("--json-out", default=None)
    return p.parse_args(argv)


def main(argv=None) -> dict:
    from rich.console import Console

    from policy.serving.monitors import MONITORS_FILE, MonitorThresholds

    args = parse_args(argv)
    console = Console(stderr=True)
    episodes, scored = run(args, console)
    thresholds = MonitorThresholds.load(args.checkpoint)
    if args.calibrate:
        from policy.evaluation.familiarity import choose_threshold
        thresholds.familiarity = choose_threshold(scored["known"], scored["untaught"])
        chunks = [s for e in episodes if e.condition == "ordinary" for s in e.surprise if np.isfinite(s)]
        if chunks:
            thresholds.surprised = round(float(np.percentile(chunks, 99)), 3)
            thresholds.lost = round(2 * thresholds.surprised, 3)
    summary = summarise(episodes, scored, thresholds.familiarity)
    summary["thresholds"] = thresholds.to_dict()
    if args.calibrate:
        out = Path(args.checkpoint) / MONITORS_FILE
        out.write_text(json.dumps({"thresholds": thresholds.to_dict(), "calibration": {
            k: summary[k] for k in ("familiarity", "surprise_auroc", "ordinary_chunk_surprise_p50",
                                    "ordinary_chunk_surprise_p95")},
            "written_by": "python -m policy.evaluation.monitors --calibrate "
                          f"--episodes-per-task {args.episodes_per_task}"}, indent=2) + "\n")
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
