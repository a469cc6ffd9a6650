import cv2
import numpy as np
import pytest

from app.live_view import LiveFeeds, LiveViewConfig, colorize_depth, encode_jpeg


def decode(jpeg: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)


def test_each_pull_returns_a_newer_decodable_frame(sim_robot):
    feeds = LiveFeeds(sim_robot.cameras)
    assert feeds.names == ["head", "left_wrist", "right_wrist"]
    first = feeds.next_frame("head")
    assert first["error"] is None and decode(first["jpeg"]).shape == (240, 320, 3)
    second = feeds.next_frame("head", after_seq=first["seq"])
    assert second["seq"] > first["seq"]
    assert 0 <= second["age_ms"] < 1000


def test_the_jpeg_shows_the_camera_image(sim_robot):
    feeds = LiveFeeds(sim_robot.cameras, LiveViewConfig(jpeg_quality=95))
    reply = feeds.next_frame("left_wrist")
    frame = sim_robot.cameras["left_wrist"].latest()
    shown = cv2.cvtColor(decode(reply["jpeg"]), cv2.COLOR_BGR2RGB).astype(float)
    # the frame encoded may be one newer than `frame`; the scene is static, so both look alike
    assert np.abs(shown - frame.rgb.astype(float)).mean() < 6.0


def test_unknown_camera_names_the_ones_that_exist(sim_robot):
    reply = LiveFeeds(sim_robot.cameras).next_frame("top")
    assert "unknown camera 'top'" in reply["error"] and "head" in reply["error"]


def test_a_disconnected_camera_is_reported_not_raised(sim_robot):
    camera = sim_robot.cameras["right_wrist"]
    camera.disconnect()
    try:
        reply = LiveFeeds(sim_robot.cameras).next_frame("right_wrist")
        assert "not connected" in reply["error"]
    finally:
        camera.connect()


def test_depth_colouring_keeps_missing_readings_black():
    depth = np.full((4, 5), 1000, np.uint16)
    depth[0, 0] = 0
    rgb = colorize_depth(depth, (200, 2000))
    assert rgb.shape == (4, 5, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[1, 1].sum() > 0


def test_encode_rejects_non_rgb_input():
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        encode_jpeg(np.zeros((4, 4), np.uint8))


def test_the_depth_view_of_a_realsense_stream(tmp_path):
    """A real librealsense pipeline playing a synthetic colour+depth recording (see tests/hardware)."""
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location(
        "realsense_recordings", Path(__file__).resolve().parents[1] / "hardware" / "test_realsense.py")
    recordings = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recordings)
    from hardware.realsense import RealSenseCamera
    path = str(tmp_path / "synthetic.db3")
    recordings.write_recording(path)
    camera = RealSenseCamera(recordings._config(path, options={"loop": True}))
    camera.connect()
    try:
        feeds = LiveFeeds({"head": camera})
        assert feeds.has_depth("head")
        rgb = feeds.next_frame("head")
        depth = feeds.next_frame("head", after_seq=rgb["seq"], depth=True)
        assert rgb["view"] == "rgb" and depth["view"] == "depth" and depth["error"] is None
        shown = decode(depth["jpeg"])
        assert shown.shape == (recordings.COLOR_H, recordings.COLOR_W, 3)
        assert shown.std() > 5          # a colour-mapped depth image, not a blank frame
    finally:
        camera.disconnect()
