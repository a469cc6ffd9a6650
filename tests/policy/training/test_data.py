"""policy.training.data: recorded datasets (real mp4 + parquet) become one training set, its pixels
memory-mapped from the cache."""
from __future__ import annotations

import re

import numpy as np
import pytest

from policy.episodes.synthetic import write_synthetic
from policy.model.config import get_preset
from policy.training.data import dataset_roots, load_or_prepare, prepare_dataset

CFG = get_preset("sim-tiny")


def test_two_datasets_combine_with_shifted_episodes_and_merged_instructions(tmp_path):
    a = write_synthetic(tmp_path / "a", episodes=2, frames=10, imagined=False)   # lift, drawer
    b = write_synthetic(tmp_path / "b", episodes=1, frames=7, imagined=False)    # lift
    one_a, one_b = prepare_dataset(a, CFG), prepare_dataset(b, CFG)
    both = load_or_prepare(f"{a},{b}", CFG, tmp_path / "cache")

    assert len(both) == len(one_a) + len(one_b) == 27
    assert both.num_episodes == 3
    assert np.array_equal(both.images[20:], one_b.images)
    assert np.array_equal(both.state[:20], one_a.state)
    # b's frames point at b's episode, shifted past a's 20 frames
    assert set(both.episode_start[20:]) == {20} and set(both.episode_end[20:]) == {27}
    # "lift the cube" appears in both datasets: one instruction, the same index in both halves
    assert both.instructions == ["lift the cube", "open the drawer"]
    assert [both.instructions[i] for i in both.instruction[[0, 10, 20]]] == \
        ["lift the cube", "open the drawer", "lift the cube"]
    # chunks never cross from a's last episode into b
    assert both.chunk_indices(np.array([19]), 4).tolist() == [[19, 19, 19, 19]]

    again = load_or_prepare(f"{a},{b}", CFG, tmp_path / "cache")      # from the cache
    assert np.array_equal(again.images, both.images) and again.instructions == both.instructions

    # the cache holds the pixels on disk: memory-mapped, read-only, no staging left behind, and
    # byte for byte what joining the two in RAM gives
    assert isinstance(both.images, np.memmap) and isinstance(both.small, np.memmap)
    assert not both.images.flags.writeable
    assert not (tmp_path / "cache" / "parts").exists()
    in_ram = load_or_prepare(f"{a},{b}", CFG, None)
    for name in ("images", "small", "state", "action", "episode_start", "episode_end", "instruction"):
        assert np.array_equal(getattr(in_ram, name), getattr(both, name)), name
    assert in_ram.instructions == both.instructions

    # another set of roots rewrites the cache rather than reading the old one
    only_b = load_or_prepare(str(b), CFG, tmp_path / "cache")
    assert len(only_b) == 7 and np.array_equal(only_b.images, one_b.images)


def test_dataset_roots_reject_an_empty_list():
    assert [p.name for p in dataset_roots("x, y")] == ["x", "y"]
    with pytest.raises(ValueError, match="--data"):
        dataset_roots(" , ")


def test_training_swaps_a_sim_instruction_for_grammar_phrasings_never_held_out():
    from hardware.sim.instructions import markers
    from hardware.sim.tasks import TASKS
    from policy.training.latents import instruction_groups

    red = TASKS["put_red_on_plate"].instructions
    groups = instruction_groups([red[0], red[2], "wipe the table"], grammar_per_task=64)
    assert groups[0] is groups[1], "one group per task"
    assert groups[0][:len(red)] == list(red) and len(groups[0]) > 40      # the task's own + the grammar's
    assert groups[2] == ["wipe the table"]                                 # not a sim task: itself only
    held_words = {w for ws in markers().values() for w in ws}
    assert not any(w in re.findall(r"[a-z]+", text.lower()) for text in groups[0] for w in held_words), \
        "a held-out synonym or template reached training"
    assert instruction_groups([red[0]], grammar_per_task=64) == [groups[0]], "deterministic"
    assert instruction_groups([red[0]], grammar_per_task=0) == [list(red)]
