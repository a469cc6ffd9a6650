"""Robot side of instruction familiarity: does the scene show what the instruction names?

The server answers `familiarity` (PolicyClient.familiarity) from what the checkpoint was taught:
the policy's text-space similarity to its training instructions, and a word-level check whose
parsed `mentions` ({"text", "colour", "noun", "role", "kind", "known"}) come back in the reply.
Only the robot side knows the table, so the scene half of the test is here:

    reply = with_scene(client.familiarity(text), ["red_block", "blue_block", "plate"])
    reply["familiar"], reply["reason"]   -> False, 'There is no orange block on the table.'

A scene object is named "[colour_]noun" (the sim's bodies: red_block, yellow_bar, plate, cup). A
mention matches an object whose noun it names and whose colour it names (an object without a
colour in its name matches every colour); one that names only a colour ("plate <- red") matches
an object of that colour. A reply from an
older server has no mentions: it is returned as it is. No torch, no zmq.
"""
from __future__ import annotations

from collections.abc import Iterable


def scene_object(name: str) -> tuple[str | None, str]:
    """"red_block" -> ("red", "block"); "plate" -> (None, "plate")."""
    parts = name.lower().split("_")
    return (parts[0], "_".join(parts[1:])) if len(parts) > 1 else (None, parts[0])


def shows(mention: dict, objects: list[tuple[str | None, str]]) -> bool:
    colour, noun = mention.get("colour"), mention.get("noun")
    if noun is None:                    # "plate <- red": something of that colour
        return colour is None or any(c == colour for c, _ in objects)
    return any(n == noun and (colour is None or c is None or c == colour) for c, n in objects)


def scene_reasons(mentions: Iterable[dict], scene: Iterable[str]) -> list[str]:
    """One sentence per mentioned thing the table does not show."""
    objects = [scene_object(n) for n in scene]
    out: list[str] = []
    for m in mentions:
        if shows(m, objects):
            continue
        if m.get("noun") is None:
            reason = f"There is nothing {m['colour']} on the table."
        else:
            what = " ".join(x for x in (m.get("colour"), m["noun"]) if x)
            reason = f"There is no {what} on the table."
        if reason not in out:
            out.append(reason)
    return out


def with_scene(reply: dict, scene: Iterable[str] | None) -> dict:
    """The server's reply with the scene test added: "scene_reasons", and "familiar" / "reason" /
    "reasons" updated. scene None (a real robot: the table is unknown) or no mentions: unchanged."""
    if scene is None or "mentions" not in reply:
        return reply
    missing = scene_reasons(reply["mentions"], scene)
    out = dict(reply, scene_reasons=missing)
    if missing:
        reasons = missing + [r for r in reply.get("reasons", []) if r not in missing]
        out.update(familiar=False, reasons=reasons, reason=reasons[0])
    return out
