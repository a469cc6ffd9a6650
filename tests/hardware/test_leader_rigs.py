"""The shipped leader rigs load, and a rig that puts a Piper leader and a Piper follower on one CAN bus is
refused (the follower would obey the leader's frames in firmware, past hardware.safety)."""
from pathlib import Path

import pytest

from hardware.factory import load_rig, rig_from_dict

RIGS = Path(__file__).resolve().parents[2] / "assets" / "rigs"


def test_shipped_leader_rigs():
    sim = load_rig(str(RIGS / "piper_leader_sim.toml"))
    assert sim.arm.adapter == "sim" and sim.leader.adapter == "piper"
    piper = load_rig(str(RIGS / "piper_leader_piper.toml"))
    assert piper.arm.adapter == "piper" and piper.leader.port == "can_leader_left,can_leader_right"
    assert [c.name for c in piper.cameras] == ["head", "left_wrist", "right_wrist"]
    scale, offset = piper.leader.follow.joint_map(14)          # same arms: one to one
    assert (scale == 1).all() and (offset == 0).all()


@pytest.mark.parametrize("arm, leader, shared", [
    ({"adapter": "piper", "port": "can0,can1"}, {"port": "can1,can2"}, "can1"),
    ({"adapter": "piper"}, {"port": "can_left,can_x"}, "can_left"),                # the follower's default
    ({"adapter": "piper", "options": {"right_can": "can9"}}, {"options": {"left_can": "can9"}}, "can9"),
])
def test_a_leader_on_the_followers_bus_is_refused(arm, leader, shared):
    with pytest.raises(ValueError, match=rf"rig file r.toml: \[arm\] and \[leader\] share CAN interface\(s\) "
                                         rf"{shared}: give every leader and every follower arm its own USB-CAN"):
        rig_from_dict({"arm": arm, "leader": leader}, where="rig file r.toml")


def test_separate_buses_and_a_sim_follower_are_fine():
    assert rig_from_dict({"arm": {"adapter": "piper"}, "leader": {}}).leader.port is None   # both defaults
    assert rig_from_dict({"arm": {"adapter": "sim"}, "leader": {"port": "can_left,can_right"}}).leader
