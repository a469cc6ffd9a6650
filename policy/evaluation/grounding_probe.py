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
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass

os.environ.setdefault("MUJOCO_GL", "osmesa")

import numpy as np  # noqa: E402

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
                script = make_expert(env)
                expert[colour] = np.stack([script.act() for _ in range(runner.model.cfg.horizon)])[-1, RIGHT_ARM]
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
    a = p.parse_args(argv)
    import torch

    from policy.serving.wam_runner import load_runner
    torch.set_num_threads(a.threads)
    report = probe(load_runner(a.checkpoint, steps=VARIANTS[a.variant]), a.scenes, a.first_seed, a.seeds, a.samples)
    print(f"{a.checkpoint} ({a.scenes}, {a.variant}, seeds {a.first_seed}..{a.first_seed + a.seeds - 1}): the instruction "
          f"moves the arm {report.ratio:.0%} as far as it moves the expert; {report.wrong_block:.0%} of draws "
          f"head for the other block; error {report.error:.3f} rad (to the nearer expert {report.error_nearer:.3f})")
    print(json.dumps(asdict(report)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
