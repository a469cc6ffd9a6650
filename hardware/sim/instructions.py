"""How people talk about the sim tasks: a small grammar with a train split and a held-out split.

    sample(task, rng, split="train")     -> Phrasing(text, template, held)   one phrasing
    phrasings(task, rng, split="train", n=8)  -> list of texts (deterministic per rng state)
    python -m hardware.sim.instructions --split held_out --per-task 24 --out assets/instructions/held_out.json
    python -m hardware.sim.instructions --stats

Each task has a frame (what goes where: kind, object, destination; hardware/sim/vocabulary.py
holds the frames, words and templates). A phrasing is a template
(imperative, two clauses, destination first, descriptive, telegraphic, arrow short forms) filled
with words for each slot: verb, preposition, pick-up verb, object colour / size / noun,
destination colour / noun, arm, a politeness wrapper. Every slot and the templates have TRAIN
entries and HELD_OUT entries: whole synonyms ("saucer", "brick", "crimson", "claw", "upon")
and whole templates ("the red block belongs on the plate", "plate <- red") that the train split
never produces. A held-out phrasing uses at least one held-out entry; each held-out entry has a
marker word that no train entry contains (markers()), so no held-out phrasing can ever be a
training phrasing. Noise (case, final punctuation, one typo) is applied to both splits; in the
held-out split a typo never lands on a held-out word.

The train split also returns the task's own paraphrases (tasks.Task.instructions) now and then,
so a policy trained on it still knows the console's canonical instruction.
assets/instructions/held_out.json is the project's held-out test set, generated once with
held_out_set() and committed (policy.evaluate --instructions takes it as it is).
"""
from __future__ import annotations

import argparse
import functools
import json
import re
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hardware.sim.vocabulary import (ARM, COLOURS, FRAMES, HANDOVER_TEMPLATES, NOUNS, PICK, POLITE_PREFIX, keys_near,  # noqa: F401
                                     POLITE_SUFFIX, PREPS, PUT_TEMPLATES, SIZE, VERBS, Frame, Template, Words)

SPLITS = ("train", "held_out")
HELD_OUT_PATH = Path(__file__).resolve().parents[2] / "assets" / "instructions" / "held_out.json"
CLASSIC_PROB = 0.1          # train split: how often a task's own paraphrase is returned as it is
POLITE_PROB = 0.25          # train split: how often a politeness wrapper is added


def named_objects(task: str) -> set[str]:
    """The sim bodies a task's instructions name (every other object on the table is a distractor)."""
    frame = FRAMES[task]
    names = {f"{frame.obj[1]}_{frame.obj[0]}"}
    if frame.dest is not None:
        names.add(f"{frame.dest[1]}_block" if frame.dest[0] == "block" else frame.dest[0])
    return names


@dataclass(frozen=True)
class Phrasing:
    text: str
    template: str               # template id, or "paraphrase" for a task's own instruction
    held: tuple[str, ...] = ()  # the held-out entries used ("template:belongs", "dest_noun:saucer", ...)


def _slots(frame: Frame) -> dict[str, Words]:
    """The slot alternatives for a frame; optional words have "" among their train entries."""
    obj_noun, obj_colour = frame.obj
    slots = {"verb": VERBS[frame.dest_kind], "pick": PICK, "obj_noun": NOUNS[obj_noun]}
    if obj_noun == "block":
        slots["obj_colour"], slots["obj_size"] = COLOURS[obj_colour], SIZE
    else:       # the only bar on the table: its colour may go unsaid
        c = COLOURS[obj_colour]
        slots["obj_colour"] = Words(("", *c.train), c.held_out, (1,) + (4,) * len(c.train))
    if frame.kind == "handover":
        slots["arm"] = ARM
        return slots
    dest_noun, dest_colour = frame.dest
    slots["prep"], slots["dest_noun"] = PREPS[frame.dest_kind], NOUNS[dest_noun]
    if dest_noun == "block":
        slots["dest_colour"] = COLOURS[dest_colour]
    elif dest_colour is not None:
        c = COLOURS[dest_colour]
        slots["dest_colour"] = Words(("", *c.train), c.held_out, (3,) + (1,) * len(c.train))
    return slots


def _uses(frame: Frame, template: Template) -> list[str]:
    """The slots a template's text really uses (an arrow short form names colours only)."""
    t = template.text
    used = [s for s in ("verb", "pick", "prep", "arm") if "{" + s + "}" in t]
    if "{obj}" in t:
        used += ["obj_size", "obj_colour", "obj_noun"] if frame.obj[0] == "block" else ["obj_colour", "obj_noun"]
    elif "{obj_short}" in t:
        used += ["obj_colour"] if frame.obj[0] == "block" else ["obj_colour", "obj_noun"]
    if frame.dest is not None:
        dest_slots = ["dest_colour", "dest_noun"] if frame.dest[1] is not None else ["dest_noun"]
        if "{dest}" in t:
            used += dest_slots
        elif "{dest_short}" in t:
            used += ["dest_colour"] if frame.dest[0] == "block" else ["dest_noun"]
    return used


def _render(frame: Frame, template: Template, words: dict[str, str]) -> str:
    w = dict(words)
    w["obj"] = " ".join(x for x in (w.get("obj_size", ""), w.get("obj_colour", ""), w["obj_noun"]) if x)
    w["obj_short"] = w["obj_colour"] if frame.obj[0] == "block" else " ".join(
        x for x in (w.get("obj_colour", ""), w["obj_noun"]) if x)
    if frame.dest is not None:
        w["dest"] = " ".join(x for x in (w.get("dest_colour", ""), w["dest_noun"]) if x)
        w["dest_short"] = w["dest_colour"] if frame.dest[0] == "block" else w["dest_noun"]
    if template.locative and "prep" in w:
        w["prep"] = {"onto": "on", "into": "in"}.get(w["prep"], w["prep"])
    text = template.text.format(**w)
    return re.sub(r"\s+", " ", text).replace(" ,", ",").strip()


def _generator(rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def sample(task: str, rng, split: str = "train", noise: bool = True) -> Phrasing:
    """One phrasing of `task` from the `split` grammar; deterministic given rng's state."""
    if split not in SPLITS:
        raise ValueError(f"unknown split '{split}'; choose one of: {', '.join(SPLITS)}")
    if task not in FRAMES:
        raise ValueError(f"no instruction frame for task '{task}'; have: {', '.join(FRAMES)}")
    rng = _generator(rng)
    frame = FRAMES[task]
    held = split == "held_out"
    if not held and rng.random() < CLASSIC_PROB:
        from hardware.sim.tasks import TASKS
        own = TASKS[task].instructions
        text = own[int(rng.integers(len(own)))]
        return Phrasing(_noise(text, rng, protect=()) if noise else text, "paraphrase")
    table = HANDOVER_TEMPLATES if frame.kind == "handover" else PUT_TEMPLATES
    held_template = held and rng.random() < 0.35
    templates = table["held_out" if held_template else "train"]
    weights = np.array([t.weight for t in templates], float)
    template = templates[int(rng.choice(len(templates), p=weights / weights.sum()))]
    slots = _slots(frame)
    used = [s for s in _uses(frame, template) if s in slots]
    holdable = [s for s in used if slots[s].held_out] + ["polite"]
    held_slots: set[str] = set()
    if held:
        if not held_template:     # a train template: at least one held-out word
            held_slots.add(holdable[int(rng.integers(len(holdable)))])
        held_slots |= {s for s in holdable if rng.random() < 0.1}
    words = {s: slots[s].pick(rng, s in held_slots) for s in slots}
    marks = [f"template:{template.id}"] if held_template else []
    marks += [f"{s}:{words[s]}" for s in used if s in held_slots]
    text = _render(frame, template, words)
    polite_held = "polite" in held_slots
    if polite_held or rng.random() < POLITE_PROB:
        wrappers = POLITE_PREFIX if template.imperative and rng.random() < 0.7 else POLITE_SUFFIX
        wrapper = wrappers.pick(rng, polite_held)
        text = wrapper.format(text)
        if polite_held:
            marks.append(f"polite:{wrapper.replace('{}', '').strip(' ,')}")
    if noise:
        protect = tuple(m.split(":", 1)[1] for m in marks if not m.startswith("template:"))
        if held_template:
            protect += tuple(markers()[f"template:{template.id}:{template.text}"])
        text = _noise(text, rng, protect=protect)
    return Phrasing(text, template.id, tuple(marks))


def phrasings(task: str, rng, split: str = "train", n: int = 1, unique: bool = False,
              noise: bool = True) -> list[str]:
    """n phrasings of task (unique=True: n distinct ones, or as many as 50 n tries give)."""
    rng = _generator(rng)
    out: list[str] = []
    for _ in range(n * (50 if unique else 1)):
        text = sample(task, rng, split, noise).text
        if not unique or text not in out:
            out.append(text)
        if len(out) == n:
            break
    return out


# -- noise: case, punctuation, one typo --------------------------------------------------------
def _typo(word: str, rng: np.random.Generator) -> str:
    i = int(rng.integers(1, len(word) - 1))
    op = int(rng.integers(4))
    if op == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]       # swap two letters
    if op == 1:
        return word[:i] + word[i + 1:]                               # drop one
    if op == 2:
        return word[:i] + word[i] + word[i:]                         # double one
    near = keys_near(word[i]) or word[i]
    return word[:i] + near[int(rng.integers(len(near)))] + word[i + 1:]   # a neighbouring key


TYPO_PROB = 0.1


def _noise(text: str, rng: np.random.Generator, protect: tuple[str, ...]) -> str:
    protected = {w for p in protect for w in p.split()}
    if rng.random() < TYPO_PROB:
        tokens = text.split(" ")
        candidates = [i for i, t in enumerate(tokens) if len(t) >= 4 and t.isalpha() and t not in protected]
        if candidates:
            i = candidates[int(rng.integers(len(candidates)))]
            tokens[i] = _typo(tokens[i], rng)
            text = " ".join(tokens)
    question = text.startswith(("could you", "can you", "would you"))
    r = rng.random()
    if question and r < 0.5:
        text += "?"
    elif r < 0.15:
        text += "."
    elif r < 0.18:
        text += "!"
    r = rng.random()
    if r < 0.15:
        text = text[0].upper() + text[1:]
    elif r < 0.19:
        text = text.upper()
    elif r < 0.25:
        text = " ".join(t[:1].upper() + t[1:] for t in text.split(" "))
    return text


# -- the grammar's vocabulary, markers, the committed held-out set ------------------------------
def _all_words() -> list[tuple[str, Words]]:
    out = [("size", SIZE), ("arm", ARM), ("pick", PICK), ("polite", POLITE_PREFIX), ("polite", POLITE_SUFFIX)]
    out += [(f"colour:{k}", w) for k, w in COLOURS.items()] + [(f"noun:{k}", w) for k, w in NOUNS.items()]
    out += [(f"verb:{k}", w) for k, w in VERBS.items()] + [(f"prep:{k}", w) for k, w in PREPS.items()]
    return out


def _tokens(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+|<-|->", text.replace("{}", " ")))


def _template_tokens(text: str) -> set[str]:
    return _tokens(re.sub(r"\{[a-z_]+\}", " ", text))


def train_tokens() -> set[str]:
    """Every token the train split can produce (before noise), the tasks' own paraphrases included."""
    from hardware.sim.tasks import TASKS
    tokens: set[str] = set()
    for _, w in _all_words():
        for t in w.train:
            tokens |= _tokens(t)
    for table in (PUT_TEMPLATES, HANDOVER_TEMPLATES):
        for t in table["train"]:
            tokens |= _template_tokens(t.text)
    for task in TASKS.values():
        for text in task.instructions:
            tokens |= _tokens(text)
    return tokens


@functools.lru_cache(maxsize=1)
def markers() -> dict[str, frozenset[str]]:
    """For every held-out entry, its tokens that the train split never produces (never empty)."""
    train = train_tokens()
    out: dict[str, set[str]] = {}
    for slot, w in _all_words():
        for t in w.held_out:
            out[f"{slot}:{t}"] = frozenset(_tokens(t) - train)
    for table in (PUT_TEMPLATES, HANDOVER_TEMPLATES):
        for t in table["held_out"]:
            out[f"template:{t.id}:{t.text}"] = frozenset(_template_tokens(t.text) - train)
    return out


def vocabulary() -> dict:
    """Sizes of the grammar: words per split (distinct entries), templates per split."""
    entries = {"train": set(), "held_out": set()}
    for slot, w in _all_words():
        entries["train"] |= {f"{slot}:{t}" for t in w.train if t}
        entries["held_out"] |= {f"{slot}:{t}" for t in w.held_out}
    templates = {s: len(PUT_TEMPLATES[s]) + len(HANDOVER_TEMPLATES[s]) for s in SPLITS}
    return {"words": {s: len(v) for s, v in entries.items()}, "templates": templates,
            "tasks": list(FRAMES)}


def held_out_set(per_task: int = 24, seed: int = 0, tasks: list[str] | None = None) -> dict[str, list[str]]:
    """per_task distinct held-out phrasings per task; each task's draw depends only on (seed, task)."""
    out = {}
    for task in tasks or list(FRAMES):
        rng = np.random.default_rng([seed, zlib.crc32(task.encode())])
        out[task] = phrasings(task, rng, "held_out", n=per_task, unique=True)
    return out


def load_phrasings(path: str | Path) -> dict[str, list[str]]:
    """A phrasings file: JSON {task: [phrasing, ...]}; string-valued keys (e.g. "about") are notes."""
    from hardware.sim.tasks import TASKS
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"instructions file {path}: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"instructions file {path}: expected a JSON object {{task: [phrasings]}}")
    out = {}
    for task, items in data.items():
        if isinstance(items, str):
            continue
        if task not in TASKS:
            raise ValueError(f"instructions file {path}: unknown task '{task}'; tasks: {', '.join(TASKS)}")
        if not isinstance(items, list) or not items or not all(isinstance(i, str) and i.strip() for i in items):
            raise ValueError(f"instructions file {path}: '{task}' must map to a non-empty list of phrasings")
        out[task] = list(dict.fromkeys(items))
    if not out:
        raise ValueError(f"instructions file {path}: no task has phrasings")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hardware.sim.instructions", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--split", choices=SPLITS, default="held_out")
    p.add_argument("--per-task", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tasks", default="all", help="comma-separated task names, or all")
    p.add_argument("--out", type=Path, help="write JSON {task: [phrasings]} here (default: stdout)")
    p.add_argument("--stats", action="store_true", help="print the grammar's sizes and exit")
    a = p.parse_args(argv)
    if a.stats:
        print(json.dumps(vocabulary()))
        return 0
    tasks = list(FRAMES) if a.tasks == "all" else [t for t in a.tasks.split(",") if t]
    unknown = [t for t in tasks if t not in FRAMES]
    if unknown:
        p.error(f"unknown task(s) {unknown}; choose from {list(FRAMES)}")
    if a.split == "held_out":
        data = held_out_set(a.per_task, a.seed, tasks)
    else:
        data = {t: phrasings(t, np.random.default_rng([a.seed, zlib.crc32(t.encode())]), "train",
                             n=a.per_task, unique=True) for t in tasks}
    about = (f"{a.split} phrasings from hardware.sim.instructions (seed {a.seed}, {a.per_task} per task). "
             "Task -> list of phrasings; use with python -m policy.evaluate --instructions FILE.")
    text = json.dumps({"about": about, **data}, indent=1) + "\n"
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
