"""Calibrate and evaluate instruction familiarity for one checkpoint; writes its monitors.json.

    python -m policy.evaluation.familiarity --checkpoint assets/checkpoints/sim-tiny
    python -m policy.evaluation.monitors_bench familiarity --checkpoint DIR        # the same

Two committed sets, nothing drawn at random:
  known     assets/instructions/held_out.json: held-out phrasings (words and templates no training
            phrasing has) of every task this checkpoint was taught (a training task whose own
            instructions are among its training instructions, or whose canonical instruction
            passes the slot test); typed in that task's own scene
  untaught  assets/instructions/untaught.json "untaught": never-taught skills, objects, colours,
            pairings and roles, scenes that lack the object, typos; the scene test applies where
            an entry names a scene
Reported apart, in neither rate: the held-out phrasings of training tasks this checkpoint was NOT
taught (for sim-tiny: put_green_in_cup, never a cup), and "compositions" (the evaluation-only
put_blue_on_purple's held-out phrasings and untaught.json's compositions): taught objects in
taught roles, which the slot test must pass.

The rule the console applies (policy.serving.monitors + policy.wire.familiarity): familiar =
(cosine to the nearest training instruction >= threshold, or an exact one) and no slot reason and
no scene reason. The threshold is the cosine that best separates the two sides under that rule
(the balanced rate; of equally good ones the highest that stays 0.02 below the lowest known
phrasing it passes); a two-fold split (threshold from
one half, rates on the other) says how much of that is fitted to the set. The runner answers in
this process (the same FamiliarityIndex the server answers with), so no arm and no sim. Prints the
misses and a JSON last line with known_above, unknown_below, n and misses per side.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
UNTAUGHT = REPO / "assets" / "instructions" / "untaught.json"
HELD_OUT = REPO / "assets" / "instructions" / "held_out.json"
EXACT = 1.0 - 1e-6


def scene_of(task: str | None) -> list[str] | None:
    """The objects of a task's classic scene (its Task.objects), None for no task."""
    if task is None:
        return None
    from hardware.sim.tasks import TASKS
    if task not in TASKS:
        raise ValueError(f"unknown scene task '{task}'; tasks: {', '.join(TASKS)}")
    return list(TASKS[task].objects)


def taught_tasks(training: list[str], passes: Callable[[str], bool]) -> list[str]:
    """Training tasks a checkpoint was taught: one of the task's own instructions is a training
    instruction, or its canonical instruction passes the slot test (`passes`)."""
    from hardware.sim.tasks import TASKS, tasks_taught_by
    named = set(tasks_taught_by(training))
    return [name for name, task in TASKS.items() if task.training and (name in named or passes(task.instruction))]


def load_sets(training: list[str], passes: Callable[[str], bool], held_out: Path = HELD_OUT,
              untaught: Path = UNTAUGHT) -> dict[str, list[dict]]:
    from hardware.sim.instructions import load_phrasings
    from hardware.sim.tasks import TASKS
    phrasings = load_phrasings(held_out)
    taught = taught_tasks(training, passes)
    data = json.loads(Path(untaught).read_text())
    sets = {"known": [], "untaught": [], "untaught_tasks": [], "compositions": []}
    for task, texts in phrasings.items():
        side = ("known" if task in taught else "untaught_tasks" if TASKS[task].training else "compositions")
        sets[side] += [{"text": t, "task": task, "scene": task} for t in texts]
    sets["untaught"] = [dict(u) for u in data["untaught"]]
    sets["compositions"] += [dict(c) for c in data.get("compositions", [])]
    if not sets["known"] or len(sets["untaught"]) < 1:
        raise ValueError(f"nothing to calibrate on: {len(sets['known'])} known, {len(sets['untaught'])} untaught "
                         f"(is {held_out} the held-out set and {untaught} the untaught list?)")
    return sets


def score_sets(familiarity: Callable[[str], dict], sets: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Each entry with the server's answer: cosine, slot reasons, and (where it has a scene) scene reasons."""
    from policy.wire.familiarity import scene_reasons
    out = {}
    for side, items in sets.items():
        out[side] = []
        for item in items:
            reply = familiarity(item["text"])
            slot = [r for r in reply.get("reasons", []) if not r.startswith("Not like anything")]
            scene = scene_reasons(reply.get("mentions", []), scene_of(item.get("scene")) or []) \
                if item.get("scene") else []
            out[side].append({**item, "cosine": round(float(reply["cosine"]), 4), "slot_reasons": slot,
                              "scene_reasons": scene, "nearest": reply["nearest"][0]["instruction"]})
    return out


def familiar(s: dict, threshold: float) -> bool:
    return (s["cosine"] >= threshold or s["cosine"] >= EXACT) and not s["slot_reasons"] and not s["scene_reasons"]


def caught_by(s: dict, threshold: float) -> str:
    if s["scene_reasons"]:
        return "scene"
    if s["slot_reasons"]:
        return "slots"
    return "similarity" if s["cosine"] < threshold else "none"


MARGIN = 0.02


def choose_threshold(known: list[dict], unknown: list[dict]) -> float:
    """The cosine that best separates the sides under the whole rule (mean of the two rates). Of
    equally good ones the highest that stays MARGIN below the lowest known phrasing it lets through
    (the similarity flags what it can, and a new paraphrase a little further out still passes)."""
    cuts = np.unique([s["cosine"] for s in known + unknown])
    candidates = np.concatenate([[cuts[0] - 1e-3], (cuts[:-1] + cuts[1:]) / 2, [cuts[-1] + 1e-3]])
    def balanced(t):
        return (np.mean([familiar(s, t) for s in known]) + np.mean([not familiar(s, t) for s in unknown])) / 2
    scores = np.array([balanced(t) for t in candidates])
    best = np.flatnonzero(np.isclose(scores, scores.max()))
    # candidate i stands for every t in (cut i-1, cut i]: the same judgements throughout
    edges = np.concatenate([[cuts[0] - 2e-3], cuts, [cuts[-1] + 2e-3]])
    low, top = float(edges[best.min()]), float(edges[best.max() + 1])
    passed = [s["cosine"] for s in known if familiar(s, top)]
    ceiling = min(passed) - MARGIN if passed else top
    return float(round(max(low + 1e-3, min(top, ceiling)), 3))


def side_summary(items: list[dict], threshold: float, want_familiar: bool) -> dict:
    ok = [familiar(s, threshold) == want_familiar for s in items]
    return {"n": len(items), "ok": int(sum(ok)), "rate": round(float(np.mean(ok)), 4) if items else None,
            "misses": [{"text": s["text"], "cosine": s["cosine"], "reasons": s["slot_reasons"] + s["scene_reasons"]}
                       for s, good in zip(items, ok) if not good]}


def two_fold(known: list[dict], unknown: list[dict]) -> dict:
    """Threshold from even-indexed entries, rates on odd ones, and the other way round (pooled)."""
    k_ok, u_ok = [], []
    for a, b in ((0, 1), (1, 0)):
        t = choose_threshold(known[a::2], unknown[a::2])
        k_ok += [familiar(s, t) for s in known[b::2]]
        u_ok += [not familiar(s, t) for s in unknown[b::2]]
    return {"known_above": round(float(np.mean(k_ok)), 4), "unknown_below": round(float(np.mean(u_ok)), 4)}


def summarise(scored: dict[str, list[dict]], threshold: float) -> dict:
    known, unknown = scored["known"], scored["untaught"]
    k, u = side_summary(known, threshold, True), side_summary(unknown, threshold, False)
    kinds = sorted({s.get("kind", "?") for s in unknown})
    caught = {c: sum(caught_by(s, threshold) == c for s in unknown) for c in ("scene", "slots", "similarity", "none")}
    cosine_only = np.mean([s["cosine"] < threshold for s in unknown])
    return {
        "threshold": threshold,
        "known_above": k["rate"], "unknown_below": u["rate"], "n_known": k["n"], "n_unknown": u["n"],
        "known": k, "unknown": u,
        "unknown_by_kind": {kind: side_summary([s for s in unknown if s.get("kind") == kind], threshold, False)["rate"]
                            for kind in kinds},
        "unknown_caught_by": caught,
        "unknown_below_similarity_alone": round(float(cosine_only), 4),
        "known_above_similarity_alone": round(float(np.mean([s["cosine"] >= threshold for s in known])), 4),
        "known_flagged_by_slots": sum(bool(s["slot_reasons"]) for s in known),
        "known_flagged_by_scene": sum(bool(s["scene_reasons"]) for s in known),
        "two_fold": two_fold(known, unknown),
        "untaught_tasks": side_summary(scored["untaught_tasks"], threshold, False),
        "compositions": {**side_summary(scored["compositions"], threshold, True),
                         "slot_flagged": sum(bool(s["slot_reasons"]) for s in scored["compositions"])},
        "known_min": round(min(s["cosine"] for s in known), 4),
        "unknown_similar_max": round(max((s["cosine"] for s in unknown if caught_by(s, 0) == "none"), default=0), 4),
    }


def write_monitors(checkpoint: str | Path, summary: dict, command: str) -> Path:
    """Merge the familiarity threshold and its numbers into CHECKPOINT/monitors.json (the
    surprise thresholds and numbers there are kept)."""
    from policy.serving.monitors import MONITORS_FILE, MonitorThresholds
    path = Path(checkpoint) / MONITORS_FILE
    data = json.loads(path.read_text()) if path.exists() else {}
    thresholds = {**MonitorThresholds.load(checkpoint).to_dict(), "familiarity": summary["threshold"]}
    keep = {k: v for k, v in summary.items() if k not in ("known", "unknown", "untaught_tasks", "compositions")}
    keep["misses"] = {"known": summary["known"]["misses"], "unknown": summary["unknown"]["misses"]}
    keep["untaught_tasks_below"] = summary["untaught_tasks"]["rate"]
    keep["compositions_familiar"] = summary["compositions"]["rate"]
    keep["compositions_slot_flagged"] = summary["compositions"]["slot_flagged"]
    keep["written_by"] = command
    data["thresholds"] = thresholds
    data.setdefault("calibration", {})["familiarity"] = keep
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def runner_familiarity(checkpoint: str):
    """The checkpoint's runner, in this process: (familiarity callable, training instructions, slot index)."""
    from policy.serving.wam_runner import load_runner
    runner = load_runner(checkpoint, threads=1)
    index = runner.familiarity_index
    if index is None:
        raise SystemExit(f"{checkpoint}: config.json lists no training.instructions, so there is nothing to "
                         "calibrate familiarity against (retrain, or add them)")
    return runner.familiarity, index.instructions, index.slots


def calibrate(familiarity: Callable[[str], dict], training: list[str], slots, held_out: Path = HELD_OUT,
              untaught: Path = UNTAUGHT) -> tuple[dict, dict]:
    sets = load_sets(training, lambda text: not slots.check(text).reasons, held_out, untaught)
    scored = score_sets(familiarity, sets)
    threshold = choose_threshold(scored["known"], scored["untaught"])
    return summarise(scored, threshold), scored


def print_report(summary: dict, out=sys.stderr) -> None:
    k, u = summary["known"], summary["unknown"]
    print(f"familiarity threshold {summary['threshold']:.3f} (cosine) + slot test + scene test", file=out)
    print(f"  known    (held-out phrasings of taught tasks): {k['ok']}/{k['n']} familiar ({k['rate']:.1%})", file=out)
    print(f"  untaught (assets/instructions/untaught.json):  {u['ok']}/{u['n']} flagged ({u['rate']:.1%}); "
          f"caught by {summary['unknown_caught_by']}", file=out)
    print(f"  by kind: {summary['unknown_by_kind']}", file=out)
    print(f"  similarity alone: known {summary['known_above_similarity_alone']:.1%}, "
          f"untaught {summary['unknown_below_similarity_alone']:.1%}; two-fold {summary['two_fold']}", file=out)
    t, c = summary["untaught_tasks"], summary["compositions"]
    print(f"  apart: untaught tasks' phrasings flagged {t['ok']}/{t['n']}; compositions familiar {c['ok']}/{c['n']} "
          f"(slot test flagged {c['slot_flagged']})", file=out)
    for side, misses in (("known judged unfamiliar", k["misses"]), ("untaught judged familiar", u["misses"]),
                         ("composition judged unfamiliar", c["misses"])):
        for m in misses:
            print(f"  miss, {side}: {m['text']!r} cosine {m['cosine']:.3f} {m['reasons']}", file=out)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m policy.evaluation.familiarity", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="assets/checkpoints/sim-tiny")
    p.add_argument("--held-out", default=str(HELD_OUT))
    p.add_argument("--untaught", default=str(UNTAUGHT))
    p.add_argument("--no-write", action="store_true", help="report only; leave CHECKPOINT/monitors.json as it is")
    p.add_argument("--json-out", default=None, help="also write the summary and every scored entry here")
    args = p.parse_args(argv)
    familiarity, training, slots = runner_familiarity(args.checkpoint)
    summary, scored = calibrate(familiarity, training, slots, Path(args.held_out), Path(args.untaught))
    print_report(summary)
    if not args.no_write:
        path = write_monitors(args.checkpoint, summary,
                              f"python -m policy.evaluation.familiarity --checkpoint {args.checkpoint}")
        print(f"familiarity threshold {summary['threshold']} written to {path}", file=sys.stderr)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"summary": summary, "scored": scored}, indent=1) + "\n")
    line = {k: summary[k] for k in ("threshold", "known_above", "unknown_below", "n_known", "n_unknown",
                                    "unknown_caught_by", "two_fold")}
    line["known_misses"] = [m["text"] for m in summary["known"]["misses"]]
    line["unknown_misses"] = [m["text"] for m in summary["unknown"]["misses"]]
    line["compositions_familiar"] = summary["compositions"]["rate"]
    print(json.dumps(line), flush=True)
    return summary


if __name__ == "__main__":
    main()
