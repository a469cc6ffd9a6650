"""The robot side's scene test of instruction familiarity (policy.wire.familiarity)."""
from __future__ import annotations

from policy.wire.familiarity import scene_object, with_scene

PUT_RED_SCENE = ["red_block", "blue_block", "plate"]


def reply(mentions: list[dict], familiar: bool = True) -> dict:
    return {"familiar": familiar, "reason": None, "reasons": [], "mentions": mentions, "cosine": 0.9}


def test_a_colour_the_scene_does_not_show_is_flagged_naming_it():
    green = {"text": "green block", "colour": "green", "noun": "block", "role": "object", "kind": "put"}
    plate = {"text": "plate", "colour": None, "noun": "plate", "role": "destination", "kind": "put"}
    out = with_scene(reply([green, plate]), PUT_RED_SCENE)
    assert not out["familiar"] and out["reason"] == "There is no green block on the table."
    assert out["scene_reasons"] == ["There is no green block on the table."]
    red = dict(green, text="crimson cube", colour="red")
    assert with_scene(reply([red, plate]), PUT_RED_SCENE)["familiar"]
    only_colour = {"text": "purple", "colour": "purple", "noun": None, "role": "destination", "kind": "put"}
    assert with_scene(reply([red, only_colour]), PUT_RED_SCENE)["reason"] == "There is nothing purple on the table."


def test_no_scene_or_an_older_server_changes_nothing():
    old = {"familiar": True, "score": 0.9, "nearest": []}
    assert with_scene(old, PUT_RED_SCENE) is old
    r = reply([{"text": "orange block", "colour": "orange", "noun": "block"}])
    assert with_scene(r, None) is r
    assert scene_object("yellow_bar") == ("yellow", "bar") and scene_object("cup") == (None, "cup")
