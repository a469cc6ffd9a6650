import numpy as np
import pytest

from app.teleop import JogTranslator, TeleopConfig, arm_groups, jog_panel_html, page_config
from hardware.arm import RobotSpec
from hardware.sim.env import ALOHA_SPEC


def test_aloha_splits_into_two_arms_with_grippers():
    groups = arm_groups(ALOHA_SPEC)
    assert [g.name for g in groups] == ["left", "right"]
    assert groups[0].joints == (0, 1, 2, 3, 4, 5) and groups[0].gripper == 6
    assert groups[1].joints == (7, 8, 9, 10, 11, 12) and groups[1].gripper == 13


def test_single_arm_without_gripper_is_one_group():
    spec = RobotSpec("arm6", tuple(f"j{i}" for i in range(6)), (-1,) * 6, (1,) * 6, (0,) * 6)
    (group,) = arm_groups(spec)
    assert group.joints == tuple(range(6)) and group.gripper is None


def test_jog_vector_becomes_scaled_velocities():
    jog = JogTranslator(ALOHA_SPEC, TeleopConfig(joint_speed=0.5, fast_factor=2.0, gripper_speed=1.0))
    vec = np.zeros(14)
    vec[0], vec[6], vec[8] = 1.0, -1.0, 3.0      # 3.0 is clipped to 1
    v = jog.velocity(vec)
    assert v[0] == pytest.approx(0.5) and v[6] == pytest.approx(-1.0) and v[8] == pytest.approx(0.5)
    assert jog.velocity(vec, fast=True)[0] == pytest.approx(1.0)
    assert np.count_nonzero(v) == 3


def test_bad_jog_vectors_are_refused_with_the_fix():
    jog = JogTranslator(ALOHA_SPEC)
    with pytest.raises(ValueError, match="14 joints.*Reload"):
        jog.velocity([0.0] * 7)
    with pytest.raises(ValueError, match="NaN"):
        jog.velocity([np.nan] * 14)


def test_page_has_a_jog_button_pair_per_joint():
    html = jog_panel_html(ALOHA_SPEC)
    assert html.count('class="jog-btn"') == 2 * 14
    assert '"action_dim": 14' in page_config(ALOHA_SPEC)
