"""make_camera by adapter name, and rig files (TOML/JSON) into configs."""
from __future__ import annotations

import json

import pytest

from hardware.camera import CameraConfig
from hardware.factory import RigConfig, load_rig, make_camera, make_cameras
from hardware.opencv_camera import OpenCVCamera
from hardware.realsense import RealSenseCamera
from hardware.replay_camera import ReplayCamera

RIG_TOML = """
[arm]
adapter = "sim"

[safety]
watchdog_s = 0.15
limit_margin = 0.01

[[cameras]]
name = "head"
adapter = "realsense"
serial = 817612070123
width = 640
height = 480
use_depth = true
options = { wait_ms = 150 }

[[cameras]]
name = "left_wrist"
adapter = "replay"
source = "/data/demos"
options = { episode = 3, loop = true }

[[cameras]]
name = "right_wrist"
adapter = "sim"
"""


def test_adapters_by_name(tmp_path):
    assert isinstance(make_camera(CameraConfig(name="h", adapter="realsense", serial="1")), RealSenseCamera)
    assert isinstance(make_camera(CameraConfig(name="h", adapter="opencv", serial="0")), OpenCVCamera)
    assert isinstance(make_camera(CameraConfig(name="h", adapter="replay", source=str(tmp_path))), ReplayCamera)


def test_typo_lists_valid_names():
    with pytest.raises(ValueError, match=r"valid names: opencv, realsense, replay, sim\. Did you mean 'realsense'"):
        make_camera(CameraConfig(name="h", adapter="realsens"))


def test_sim_cameras_come_from_the_robot():
    with pytest.raises(ValueError, match="SimRobot"):
        make_camera(CameraConfig(name="head", adapter="sim"))
    sim_head = make_camera(CameraConfig(name="head", adapter="opencv", serial="0"))  # stands in for a sim camera
    cameras = make_cameras([CameraConfig(name="head", adapter="sim")], sim_cameras={"head": sim_head})
    assert cameras["head"] is sim_head
    with pytest.raises(ValueError, match=r"simulation has \['head'\]"):
        make_cameras([CameraConfig(name="top", adapter="sim")], sim_cameras={"head": sim_head})


def test_toml_rig_round_trips_into_configs(tmp_path):
    path = tmp_path / "rig.toml"
    path.write_text(RIG_TOML)
    rig = load_rig(str(path))
    assert isinstance(rig, RigConfig)
    assert [c.name for c in rig.cameras] == ["head", "left_wrist", "right_wrist"]
    head = rig.cameras[0]
    assert head.serial == "817612070123" and head.use_depth and (head.width, head.height) == (640, 480)
    assert head.options == {"wait_ms": 150}
    assert rig.cameras[1].options == {"episode": 3, "loop": True}
    assert rig.arm.adapter == "sim"
    assert rig.safety.watchdog_s == 0.15 and rig.safety.limit_margin == 0.01


def test_json_rig(tmp_path):
    path = tmp_path / "rig.json"
    path.write_text(json.dumps({"cameras": [{"name": "head", "adapter": "opencv", "serial": "0"}],
                                "arm": {"adapter": "piper", "port": "can0"}}))
    rig = load_rig(str(path))
    assert rig.cameras[0].adapter == "opencv" and rig.arm.port == "can0"
    assert rig.safety.watchdog_s == 0.2   # defaults where the file says nothing


@pytest.mark.parametrize("text, message", [
    ('[[cameras]]\nname = "head"\nadaptor = "sim"\n', r"unknown setting 'adaptor'.*Did you mean 'adapter'"),
    ('[[cameras]]\nname = "head"\nadapter = "webcam"\n', r"unknown camera adapter 'webcam'; valid names"),
    ('[[cameras]]\nadapter = "sim"\n', r"needs a name"),
    ('[[cameras]]\nname = "a"\n[[cameras]]\nname = "a"\n', r"unique; repeated: \['a'\]"),
    ('[camera]\nname = "a"\n', r"unknown section 'camera'.*Did you mean 'cameras'"),
    ('[arm]\nadapter = "sim"\nspeed = 3\n', r"\[arm\]: unknown setting 'speed'"),
    ('[arm\n', r"not valid TOML"),
])
def test_bad_rig_files_name_the_problem(tmp_path, text, message):
    path = tmp_path / "rig.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as err:
        load_rig(str(path))
    assert str(path) in str(err.value)


def test_missing_or_unsupported_rig_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_rig(str(tmp_path / "none.toml"))
    (tmp_path / "rig.yaml").write_text("cameras: []")
    with pytest.raises(ValueError, match=r"\.toml or \.json"):
        load_rig(str(tmp_path / "rig.yaml"))


def test_the_shipped_example_rig_parses():
    from pathlib import Path
    rig = load_rig(str(Path(__file__).resolve().parents[2] / "assets" / "rigs" / "piper_realsense.toml"))
    assert [c.name for c in rig.cameras] == ["head", "left_wrist", "right_wrist"]
    assert all(c.adapter == "realsense" and isinstance(c.serial, str) for c in rig.cameras)
    assert rig.arm.adapter == "piper" and rig.safety.watchdog_s == 0.2
