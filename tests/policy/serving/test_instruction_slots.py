"""The word-level half of instruction familiarity (policy.serving.instruction_slots): what an
instruction names, and whether the checkpoint was taught it. Against the shipped sim-tiny
checkpoint's own training instructions, and against a training set drawn from the instruction
grammar (what a retrained checkpoint carries). No model: the parser is plain Python."""
from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest

from hardware.sim.instructions import load_phrasings, phrasings
from hardware.sim.tasks import TASKS, TRAINING_TASKS
from policy.serving.instruction_slots import SlotIndex, one_edit, parse

REPO = Path(__file__).resolve().parents[3]
SIM_TINY = json.loads((REPO / "assets/checkpoints/sim-tiny/config.json").read_text())["training"]["instructions"]
HELD_OUT = REPO / "assets/instructions/held_out.json"


@pytest.fixture(scope="module")
def sim_tiny() -> SlotIndex:
    return SlotIndex(SIM_TINY)


@pytest.fixture(scope="module")
def retrained() -> SlotIndex:
    """The train split of the grammar for every training task (typos and all), as a retrained checkpoint carries."""
    texts = [p for t in TRAINING_TASKS for p in phrasings(t, np.random.default_rng([7, zlib.crc32(t.encode())]),
                                                          "train", n=200)]
    return SlotIndex(texts)


def test_a_colour_the_policy_never_saw_is_flagged_naming_the_word(sim_tiny):
    reasons = sim_tiny.check("put the orange block on the plate").reasons
    assert len(reasons) == 1 and '"orange"' in reasons[0] and "never taught" in reasons[0]
    typo = sim_tiny.check("Put The Oragne Block On The Plate").reasons      # a slip of the fingers, capitals
    assert typo and '"orange"' in typo[0]
    assert sim_tiny.check("put the red block on the plate").reasons == []


def test_the_evaluation_only_composition_is_not_flagged(sim_tiny, retrained):
    task = TASKS["put_blue_on_purple"]
    assert not task.training
    for index in (sim_tiny, retrained):
        for text in task.instructions:      # blue block: taught as moved; purple block: taught as a destination
            assert index.check(text).reasons == [], (text, index.check(text).reasons)


def test_untaught_roles_pairs_and_objects_are_flagged(sim_tiny, retrained):
    for index in (sim_tiny, retrained):
        cases = {"stack the blue block on the red block": "put anything on the red block",
                 "hand the green block from the left arm to the right arm": "hand over the green block",
                 "put the yellow block on the plate": "yellow block",
                 "put the banana on the plate": '"banana"',
                 "put the avocado on the plate": '"avocado"',       # outside the lexicon: a noun's place
                 "wave hello": "names nothing"}
        for text, words in cases.items():
            reasons = index.check(text).reasons
            assert reasons and words in reasons[0], (text, reasons)
    assert '"cup"' in sim_tiny.check("put the green block in the mug").reasons[0]      # sim-tiny never had a cup
    assert retrained.check("put the green block in the mug").reasons == []


def test_held_out_phrasings_of_taught_tasks_pass(sim_tiny, retrained):
    held = load_phrasings(HELD_OUT)
    sim_tiny_tasks = ("put_red_on_plate", "put_blue_on_plate", "handover_bar", "stack_green_on_purple")
    for index, tasks in ((sim_tiny, sim_tiny_tasks), (retrained, (*TRAINING_TASKS, "put_blue_on_purple"))):
        flagged = [(t, index.check(t).reasons) for task in tasks for t in held[task] if index.check(t).reasons]
        assert not flagged, flagged


def test_reading_roles_typos_and_real_words():
    (obj, dest), _, _ = parse("plate <- crimson")
    assert (obj.role, obj.noun, dest.role, dest.colour) == ("destination", "plate", "object", "red")
    (dest, obj), _, _ = parse("on top of the violet brick, set the green cube")
    assert (dest.role, dest.colour, obj.role, obj.colour) == ("destination", "purple", "object", "green")
    (bar,), _, _ = parse("golden stick: left -> right")
    assert (bar.kind, bar.colour, bar.noun) == ("handover", "yellow", "bar")
    mentions, typos, _ = parse("grab the tiny red blpck and lift it onnto the plate")
    assert typos == {"blpck": "block", "onnto": "onto"}                  # "grab" is not "gray", "lift" not "left"
    assert [(m.colour, m.noun, m.role, m.kind) for m in mentions] == [("red", "block", "object", "put"),
                                                                    (None, "plate", "destination", "put")]
    assert one_edit("yelow", "yellow") and not one_edit("below", "yellow")
