"""Does the instruction choose the block? A 30-second probe of a checkpoint's language grounding.

    python -m policy.evaluation.grounding_probe --checkpoint runs/sim-tiny-v5 --scenes varied --first-seed 0

put_red_on_plate and put_blue_on_plate draw the same layout from the same seed (both blocks are
always on the table), so one scene can be told either instruction. For each seed this resets
the scene, asks the policy for its first chunk (`--samples` draws) with each task's canonical
instruction ("put the red block on the plate", "...blue..."), and compares the right arm's joints at the
chunk's last action with the scripted expert's for each colour (the expert's first phase moves to
above the named block). It reports:
  ratio        |policy(red) - policy(blue)| / |expert(red) - expert(blue)|, draws averaged:
               1 = the instruction moves the arm as far as it moves the expert, 0 = ignored
  wrong_block  share of draws nearer the OTHER colour's expert than the instructed one's
  error        distance (rad, summed over the 6 joints) of each draw to its instructed expert
  error_nearer distance to whichever expert is nearer: small = it aims at a block, just maybe
               the wrong one; large = it aims at neither (it cannot localise)
Why: closed-loop success mixes grasping, timing and grounding; this isolates grounding, on
training seeds (0..: does it fit?) or held-out ones (1,000,000..: does it generalise?), with the
runner the server uses, no server or clock in between. One JSON line at the end.

    python -m policy.evaluation.grounding_probe --checkpoint DIR --task put_blue_on_purple [--instruction TEXT]

--task: where does the first chunk head in that task's own scenes? For every block on the table the
expert's pick of THAT block gives a target (its joints at the chunk's last action); each draw counts
for the nearest target, or "stays" if it moved less than 40% as far as the targets are from the
start. Reports heads_for {block or "stays": share of draws} and named (the share for the task's own
block, whatever --instruction says): a composed instruction whose draws split between the named block and its
destination block is misread in its roles, not in its colours.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass

os.environ.setdefault("MUJOCO_GL", "osmesa")

import numpy as np  # noqa: E402

from hardware.aloha import arm_joints  # noqa: E402
from hardware.aloha import RIGHT_ARM_JOINTS as RIGHT_ARM  # noqa: E402  (the place tasks' arm)
from hardware.sim.tasks import EVAL_SEED_BASE, SCENES, TASKS  # noqa: E402
from policy.evaluation.evaluate import VARIANTS  # noqa: E402

COLOURS = ("red", "blue")


@dataclass
class GroundingReport:
    seeds: int
    samples: int
    expert_gap: float        # mean |expert(red) - expert(blue)| at the chunk's last action (rad)
    policy_gap: float        # the same for the policy's draws, averaged per colour
    ratio: float
    wrong_block: float
    error: float
    error_nearer: float


def probe(runner, scenes: str, first_seed: int, seeds: int = 8, samples: int = 4) -> GroundingReport:
    from hardware.sim.env import SimConfig, SimEnv
    from hardware.sim.expert import make_expert
    from policy.wire.types import Observation

    gaps, policy_gaps, draws = [], [], []      # draws: (error, wrong block, error to the nearer)
    with SimEnv(SimConfig(task="put_red_on_plate", scenes=scenes)) as env:
        for seed in range(first_seed, first_seed + seeds):
            expert, policy = {}, {}
            for colour in COLOURS:
                task = TASKS[f"put_{colour}_on_plate"]
                env.reset(task=task.name, seed=seed)
                images, state = env.render(), env.state()
                expert[colour] = _chunk_end(make_expert(env), runner.model.cfg.horizon, RIGHT_ARM)
                obs = Observation(images=images, state=state, instruction=task.instruction)
                policy[colour] = np.stack([runner.infer(obs).actions[-1, RIGHT_ARM] for _ in range(samples)])
            gaps.append(np.abs(expert["red"] - expert["blue"]).sum())
            policy_gaps.append(np.abs(policy["red"].mean(0) - policy["blue"].mean(0)).sum())
            for colour, other in zip(COLOURS, COLOURS[::-1]):
                for draw in policy[colour]:
                    own, wrong = np.abs(draw - expert[colour]).sum(), np.abs(draw - expert[other]).sum()
                    draws.append((own, wrong < own, min(own, wrong)))
    d = np.array(draws, dtype=np.float64)
    expert_gap, policy_gap = float(np.mean(gaps)), float(np.mean(policy_gaps))
    return GroundingReport(seeds, samples, expert_gap, policy_gap, policy_gap / max(expert_gap, 1e-9),
                           float(d[:, 1].mean()), float(d[:, 0].mean()), float(d[:, 2].mean()))


def _chunk_end(script, horizon: int, joints: slice) -> np.ndarray:
    """The scripted expert's joints at the last action of its first chunk."""
    return np.stack([script.act() for _ in range(horizon)])[-1, joints]


@dataclass
class AimReport:
    task: str
    instruction: str
    seeds: int
    samples: int
    named: float                   # share of draws heading for the task's own block (its Frame's object)
    heads_for: dict[str, float]    # block (or "stays") -> share of draws
    error_nearer: float            # mean distance (rad, 6 joints) of a draw to its nearest target


STAYS_BELOW = 0.4   # a draw that moved less than this share of the way to the targets "stays"


def aim(runner, task: str, scenes: str, first_seed: int, seeds: int = 8, samples: int = 4,
        instruction: str | None = None) -> AimReport:
    from hardware.sim.env import SimConfig, SimEnv
    from hardware.sim.expert import Expert, pick_and_place
    from hardware.sim.vocabulary import FRAMES
    from policy.wire.types import Observation

    aimable = [t for t, f in FRAMES.items() if f.kind == "put" and f.obj[0] == "block" and len(TASKS[t].arms) == 1]
    if task not in aimable:
        raise ValueError(f"--task {task}: the aim probe needs a one-arm pick-and-place of a block; "
                         f"choose one of {aimable}")
    named = f"{FRAMES[task].obj[1]}_block"
    arm = TASKS[task].arms[0]
    joints = arm_joints(arm)
    instruction = instruction or TASKS[task].instruction
    counts: dict[str, int] = {}
    errors = []
    with SimEnv(SimConfig(task=task, scenes=scenes)) as env:
        for seed in range(first_seed, first_seed + seeds):
            env.reset(task=task, seed=seed)
            images, state = env.render(), env.state()
            targets = {}
            for block in [b for b in env.layout if b.endswith("_block")]:   # every block reset() placed
                env.reset(task=task, seed=seed)          # the expert's first chunk if it picked this block
                targets[block] = _chunk_end(Expert(env, pick_and_place(arm, block, "plate")),
                                            runner.model.cfg.horizon, joints)
            start = state[joints]
            reach = np.mean([np.abs(t - start).sum() for t in targets.values()])
            obs = Observation(images=images, state=state, instruction=instruction)
            for _ in range(samples):
                draw = runner.infer(obs).actions[-1, joints]
                distance = {b: np.abs(draw - t).sum() for b, t in targets.items()}
                nearest = min(distance, key=distance.get)
                key = nearest if np.abs(draw - start).sum() >= STAYS_BELOW * reach else "stays"
                counts[key] = counts.get(key, 0) + 1
                errors.append(distance[nearest])
    total = seeds * samples
    heads_for = {k: v / total for k, v in sorted(counts.items(), key=lambda kv: -kv[1])}
    return AimReport(task, instruction, seeds, samples, heads_for.get(named, 0.0), heads_for, float(np.mean(errors)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--scenes", default="varied", choices=SCENES)
    p.add_argument("--first-seed", type=int, default=EVAL_SEED_BASE,
                   help=f"0: training layouts (fit); {EVAL_SEED_BASE}: held-out layouts (the default)")
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--samples", type=int, default=4, help="draws of the first chunk per instruction")
    p.add_argument("--variant", default="rt", choices=VARIANTS, help="the sampler's [T_v, T_a], as "
                   "policy.evaluate names them (video_free: does the imagined future help or hurt the choice?)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--task", help="where the first chunk heads in this pick-and-place task's scenes (see above)")
    p.add_argument("--instruction", help="with --task: the instruction to give (default: the task's own)")
    a = p.parse_args(argv)
    import torch

    from policy.serving.wam_runner import load_runner
    torch.set_num_threads(a.threads)
    if a.task:
        if a.task not in TASKS:
            p.error(f"unknown --task {a.task}; choose one of {', '.join(TASKS)}")
        try:
            found = aim(load_runner(a.checkpoint, steps=VARIANTS[a.variant]), a.task, a.scenes, a.first_seed,
                        a.seeds, a.samples, a.instruction)
        except ValueError as e:
            p.error(str(e))
        shares = ", ".join(f"{k} {v:.0%}" for k, v in found.heads_for.items())
        print(f"{a.checkpoint} ({a.scenes}, {a.variant}, seeds {a.first_seed}..{a.first_seed + a.seeds - 1}), "
              f"{found.instruction!r}: the first chunk heads for {shares}")
        print(json.dumps(asdict(found)))
        return 0
    report = probe(load_runner(a.checkpoint, steps=VARIANTS[a.variant]), a.scenes, a.first_seed, a.seeds, a.samples)
    print(f"{a.checkpoint} ({a.scenes}, {a.variant}, seeds {a.first_seed}..{a.first_seed + a.seeds - 1}): the instruction "
          f"moves the arm {report.ratio:.0%} as far as it moves the expert; {report.wrong_block:.0%} of draws "
          f"head for the other block; error {report.error:.3f} rad (to the nearer expert {report.error_nearer:.3f})")
    print(json.dumps(asdict(report)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
