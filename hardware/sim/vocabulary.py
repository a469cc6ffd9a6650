"""The instruction grammar's words and templates (hardware/sim/instructions.py generates from them).

Every slot (Words) and both template tables have TRAIN entries and HELD_OUT entries; a held-out
entry must carry a word no train entry has (instructions.markers() checks, and the tests).
Adding a task: give it a Frame in FRAMES (what goes where); its phrasings come for free.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Words:
    """One slot's alternatives: train entries (with weights) and held-out entries."""
    train: tuple[str, ...]
    held_out: tuple[str, ...] = ()
    weights: tuple[float, ...] | None = None   # of the train entries; uniform if None

    def pick(self, rng: np.random.Generator, held: bool) -> str:
        if held:
            return self.held_out[int(rng.integers(len(self.held_out)))]
        p = None if self.weights is None else np.asarray(self.weights) / np.sum(self.weights)
        return self.train[int(rng.choice(len(self.train), p=p))]


# -- vocabulary ----------------------------------------------------------------------------------
COLOURS = {
    "red": Words(("red",), ("crimson", "scarlet")),
    "blue": Words(("blue",), ("cobalt",)),
    "green": Words(("green",), ("emerald",)),
    "purple": Words(("purple", "violet"), ("lilac",)),
    "orange": Words(("orange",), ("tangerine",)),
    "yellow": Words(("yellow",), ("golden",)),
    "white": Words(("white",), ("ivory",)),
}
NOUNS = {
    "block": Words(("block", "cube", "one"), ("brick",), (4, 4, 1)),
    "plate": Words(("plate", "dish"), ("saucer",)),
    "bar": Words(("bar", "rod"), ("stick",)),
    "cup": Words(("cup", "mug"), ("beaker",)),
}
SIZE = Words(("", "small", "little"), ("tiny",), (10, 1, 1))
ARM = Words(("arm", "gripper", "hand"), ("claw",))
VERBS = {   # by the kind of destination
    "surface": Words(("put", "place", "move", "set"), ("pop", "relocate")),
    "block": Words(("stack", "put", "place", "set"), ("balance", "pile")),
    "container": Words(("put", "place", "drop"), ("deposit", "pop")),
    "arm": Words(("hand", "pass", "give", "transfer", "move"), ("shift", "relay")),
}
PREPS = {
    "surface": Words(("on", "onto"), ("upon",)),
    "block": Words(("on", "onto", "on top of"), ("atop",)),
    "container": Words(("in", "into"), ("inside",)),
}
PICK = Words(("pick up", "grab", "take"), ("grasp", "lift"))
# Politeness wraps the core phrasing ({}); prefixes only wrap imperative templates.
POLITE_PREFIX = Words(("please {}", "could you {}", "can you {}", "could you please {}"),
                      ("would you kindly {}", "i'd like you to {}", "kindly {}"))
POLITE_SUFFIX = Words(("{} please", "{}, please"), ("{}, thank you", "{} if you would"))


@dataclass(frozen=True)
class Template:
    id: str
    text: str
    imperative: bool = True     # politeness prefixes ("could you ...") fit
    weight: float = 1.0
    locative: bool = False      # says where a thing is, not where it goes: "onto" -> "on", "into" -> "in"


PUT_TEMPLATES = {
    "train": (
        Template("imperative", "{verb} the {obj} {prep} the {dest}", weight=4),
        Template("pick_then_place", "{pick} the {obj} and {verb} it {prep} the {dest}", weight=2),
        Template("destination_first", "{prep} the {dest}, {verb} the {obj}", imperative=False),
        Template("goes", "the {obj} goes {prep} the {dest}", imperative=False, locative=True),
        Template("i_want", "i want the {obj} {prep} the {dest}", imperative=False, locative=True),
        Template("telegraphic", "{obj} {prep} {dest}", imperative=False, locative=True),
        Template("arrow", "{obj_short} -> {dest_short}", imperative=False),
    ),
    "held_out": (
        Template("belongs", "the {obj} belongs {prep} the {dest}", imperative=False, locative=True),
        Template("end_up", "the {obj} should end up {prep} the {dest}", imperative=False, locative=True),
        Template("get", "get the {obj} {prep} the {dest}"),
        Template("pick_comma_then", "{pick} the {obj}, then {verb} it {prep} the {dest}"),
        Template("left_arrow", "{dest_short} <- {obj_short}", imperative=False),
    ),
}
HANDOVER_TEMPLATES = {
    "train": (
        Template("from_to", "{verb} the {obj} from the left {arm} to the right {arm}", weight=3),
        Template("to_right", "{verb} the {obj} to the right {arm}", weight=2),
        Template("pick_then_hand", "{pick} the {obj} with the left {arm} and {verb} it to the right {arm}", weight=2),
        Template("over_to", "{verb} the {obj} over to the right {arm}"),
        Template("arms_first", "from the left {arm} to the right {arm}, {verb} the {obj}", imperative=False),
        Template("goes", "the {obj} goes from the left {arm} to the right {arm}", imperative=False),
        Template("telegraphic", "{obj} left to right", imperative=False),
        Template("arrow", "{obj_short}: left -> right", imperative=False),
    ),
    "held_out": (
        Template("let_take", "let the right {arm} take the {obj} from the left {arm}"),
        Template("should_give", "the left {arm} should give the {obj} to the right {arm}", imperative=False),
        Template("pick_comma_then", "{pick} the {obj} with the left {arm}, then {verb} it to the right {arm}"),
        Template("get_across", "get the {obj} across to the right {arm}"),
        Template("left_arrow", "{obj_short}: right <- left", imperative=False),
    ),
}


@dataclass(frozen=True)
class Frame:
    """What a task's instruction says: kind ("put" or "handover"), the object, the destination."""
    kind: str
    obj: tuple[str, str]                   # (noun kind, colour)
    dest: tuple[str, str | None] | None    # (noun kind, colour or None)

    @property
    def dest_kind(self) -> str:
        if self.kind == "handover":
            return "arm"
        return {"plate": "surface", "block": "block", "cup": "container"}[self.dest[0]]


FRAMES: dict[str, Frame] = {
    "put_red_on_plate": Frame("put", ("block", "red"), ("plate", "white")),
    "put_blue_on_plate": Frame("put", ("block", "blue"), ("plate", "white")),
    "handover_bar": Frame("handover", ("bar", "yellow"), None),
    "stack_green_on_purple": Frame("put", ("block", "green"), ("block", "purple")),
    "put_green_in_cup": Frame("put", ("block", "green"), ("cup", None)),
    "stack_red_on_purple": Frame("put", ("block", "red"), ("block", "purple")),
    "stack_orange_on_purple": Frame("put", ("block", "orange"), ("block", "purple")),
    "put_orange_on_plate": Frame("put", ("block", "orange"), ("plate", "white")),
    "put_blue_on_purple": Frame("put", ("block", "blue"), ("block", "purple")),
}


# -- how fingers slip: the typo generator (instructions.py) and the typo reader
# (policy/serving/instruction_slots.py) share one keyboard.
KEY_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def keys_near(c: str) -> str:
    """c's neighbours on a QWERTY keyboard (its row, and the rows above and below); "" if not a letter."""
    for r, row in enumerate(KEY_ROWS):
        if c in row:
            i = row.index(c)
            near = row[max(0, i - 1):i] + row[i + 1:i + 2]
            for other in (r - 1, r + 1):
                if 0 <= other < len(KEY_ROWS):
                    near += KEY_ROWS[other][max(0, i - 1):i + 1]
            return near
    return ""
