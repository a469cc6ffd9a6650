"""RealSense adapter through real librealsense pipelines, without a camera.

software_device.add_to(ctx) is broken in pyrealsense2 2.59 (see NOTES.md), so the tests
record synthetic colour+depth frames from a software device with rs.recorder (.db3) at the
real frame rate, and the adapter plays them back through rs.pipeline exactly as it would
stream a device: serial, alignment, ordering, staleness and reconnects are all librealsense's.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pyrealsense2 as rs
import pytest

from hardware.camera import CameraConfig, CameraDisconnectedError, CameraError, CameraNotFoundError, StaleFrameError
from hardware.realsense import RealSenseCamera, list_devices
from frame_stream import new_frames

SERIAL = "817612070123"
DEPTH_W, DEPTH_H = 80, 60          # depth at half the colour resolution
COLOR_W, COLOR_H = 160, 120
FPS = 30
N_FRAMES = 24
BASELINE_M = 0.05                  # colour camera 5 cm to the right of the depth camera
PATCH = (slice(20, 30), slice(20, 30))   # depth pixels of a raised patch


def _intrinsics(w: int, h: int, f: float) -> "rs.intrinsics":
    i = rs.intrinsics()
    i.width, i.height, i.fx, i.fy, i.ppx, i.ppy = w, h, f, f, w / 2, h / 2
    i.model, i.coeffs = rs.distortion.none, [0.0] * 5
    return i


def _stream(kind, uid: int, w: int, h: int, fmt, bpp: int, f: float) -> "rs.video_stream":
    s = rs.video_stream()
    s.type, s.index, s.uid, s.width, s.height, s.fps, s.bpp, s.fmt = kind, 0, uid, w, h, FPS, bpp, fmt
    s.intrinsics = _intrinsics(w, h, f)
    return s


def write_recording(path: str, serial: str = SERIAL, n_frames: int = N_FRAMES) -> None:
    """Record n_frames of synthetic colour (red channel = frame number) and depth (a plane at
    1000 mm with a 1010 mm patch) from a software device, pushed at the real rate."""
    dev = rs.software_device()
    dev.register_info(rs.camera_info.serial_number, serial)
    dev.register_info(rs.camera_info.name, "Synthetic D435")
    depth_sensor, color_sensor = dev.add_sensor("Stereo Module"), dev.add_sensor("RGB Camera")
    depth_sensor.add_read_only_option(rs.option.depth_units, 0.001)
    depth_profile = depth_sensor.add_video_stream(_stream(rs.stream.depth, 0, DEPTH_W, DEPTH_H, rs.format.z16, 2, 50.0))
    color_profile = color_sensor.add_video_stream(_stream(rs.stream.color, 1, COLOR_W, COLOR_H, rs.format.rgb8, 3, 100.0))
    extrinsics = rs.extrinsics()
    extrinsics.rotation, extrinsics.translation = [1, 0, 0, 0, 1, 0, 0, 0, 1], [BASELINE_M, 0, 0]
    depth_profile.register_extrinsics_to(color_profile, extrinsics)
    dev.create_matcher(rs.matchers.dlr_c)
    recorder = rs.recorder(path, dev)
    sink = rs.frame_queue(4 * n_frames)
    depth_sensor.open(depth_profile)
    color_sensor.open(color_profile)
    depth_sensor.start(sink)
    color_sensor.start(sink)
    depth = np.full((DEPTH_H, DEPTH_W), 1000, np.uint16)
    depth[PATCH] = 1010
    start = time.monotonic()
    for n in range(n_frames):
        color = np.zeros((COLOR_H, COLOR_W, 3), np.uint8)
        color[..., 0] = n
        for sensor, profile, pixels, bpp in ((depth_sensor, depth_profile, depth, 2),
                                             (color_sensor, color_profile, color, 3)):
            frame = rs.software_video_frame()
            frame.pixels, frame.bpp, frame.stride = pixels, bpp, pixels.shape[1] * bpp
            frame.timestamp, frame.frame_number = n * 1000.0 / FPS, n
            frame.domain = rs.timestamp_domain.hardware_clock
            frame.profile = profile.as_video_stream_profile()
            if bpp == 2:
                frame.depth_units = 0.001
            sensor.on_video_frame(frame)
        # Playback follows the wall-clock pacing of the pushes, so push at the real rate.
        time.sleep(max(0.0, start + (n + 1) / FPS - time.monotonic()))
    for sensor in (depth_sensor, color_sensor):
        sensor.stop()
        sensor.close()
    del recorder  # flushes and closes the file


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("realsense") / "synthetic.db3")
    write_recording(path)
    assert os.path.getsize(path) > 0
    return path


def _config(source: str, **kw) -> CameraConfig:
    options = {"wait_ms": 100, "reconnect_backoff_s": 0.05, "max_backoff_s": 0.2, "first_frame_timeout_s": 5.0}
    options.update(kw.pop("options", {}))
    return CameraConfig(name="head", adapter="realsense", width=COLOR_W, height=COLOR_H, fps=FPS,
                        use_depth=True, source=source, options=options, **kw)




def test_listing_without_devices_says_so():
    assert list_devices() == []
    out = subprocess.run([sys.executable, "-m", "hardware.realsense"], capture_output=True, text=True,
                         timeout=60, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert out.returncode == 0, out.stderr
    assert "no RealSense connected" in out.stdout


def test_unknown_serial_is_not_found_with_a_fix():
    camera = RealSenseCamera(CameraConfig(name="wrist", adapter="realsense", serial="000111222"))
    with pytest.raises(CameraNotFoundError) as err:
        camera.connect()
    message = str(err.value)
    assert "000111222" in message and "python -m hardware.realsense" in message and "USB" in message
    assert not camera.is_connected


def test_missing_recording_is_not_found(tmp_path):
    with pytest.raises(CameraNotFoundError, match="no such file"):
        RealSenseCamera(_config(str(tmp_path / "nothing.db3"))).connect()


def test_playback_keeps_serial_aligns_depth_and_orders_frames(recording):
    camera = RealSenseCamera(_config(recording))
    with camera:
        assert camera.serial == SERIAL
        frame = camera.read_latest()
        frames = [frame] + new_frames(camera, 3.0)
    assert len(frames) >= N_FRAMES // 2, f"only {len(frames)} frames arrived"
    seqs = [f.seq for f in frames]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    counters = [int(f.rgb[0, 0, 0]) for f in frames]
    assert counters == sorted(counters) and len(set(counters)) == len(counters)
    assert frame.rgb.shape == (COLOR_H, COLOR_W, 3) and frame.rgb.dtype == np.uint8
    assert frame.depth.shape == (COLOR_H, COLOR_W) and frame.depth.dtype == np.uint16
    # The patch covers depth pixels 20..29; in colour pixels (twice the focal length) that is
    # 40..59, shifted right by f_color * baseline / z = 100 * 0.05 / 1.01 ~ 5 pixels.
    rows, cols = np.nonzero(frame.depth == 1010)
    assert abs(rows.min() - 40) <= 1 and abs(rows.max() - 59) <= 1
    assert abs(cols.min() - 45) <= 1 and abs(cols.max() - 64) <= 1
    assert np.all(frame.depth[60:100, 80:140] == 1000)


def test_recording_end_makes_frames_stale(recording):
    camera = RealSenseCamera(_config(recording, max_age_s=0.2))
    with camera:
        new_frames(camera, 3.0)   # until the recording has ended
        time.sleep(0.3)
        with pytest.raises(StaleFrameError, match="stalled"):
            camera.read_latest()
        assert camera.is_connected and camera.disconnected_reason is None


def test_recording_loop_option_keeps_frames_flowing(recording):
    camera = RealSenseCamera(_config(recording, options={"loop": True}))
    with camera:
        frames = new_frames(camera, 1.8)
    assert len(frames) > N_FRAMES + 5
    counters = [int(f.rgb[0, 0, 0]) for f in frames]
    assert any(b < a for a, b in zip(counters, counters[1:])), "playback never wrapped around"


def test_disconnect_is_reported_then_reconnects(recording, tmp_path):
    source = str(tmp_path / "cam.db3")
    os.link(recording, source)
    camera = RealSenseCamera(_config(source))
    with camera:
        first = camera.read_latest()
        os.rename(source, source + ".unplugged")   # the "device" disappears
        deadline = time.monotonic() + 5.0
        while camera.disconnected_reason is None and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(CameraDisconnectedError) as err:
            camera.read_latest()
        assert "cam.db3" in str(err.value) and "reconnecting" in str(err.value)
        time.sleep(0.3)
        assert camera.reconnect_attempts >= 1      # it kept trying with backoff
        os.rename(source + ".unplugged", source)   # plugged back in
        frame = camera.wait_for_frame(5.0, after_seq=camera.latest().seq)
        assert frame is not None and frame.seq > first.seq
        assert camera.reconnects == 1 and camera.disconnected_reason is None
        assert camera.read_latest().depth is not None


def test_wrong_serial_for_recording_is_refused(recording):
    with pytest.raises(CameraNotFoundError, match=SERIAL):
        RealSenseCamera(_config(recording, serial="999")).connect()


def test_wrong_resolution_names_the_recorded_one(recording):
    config = _config(recording)
    config.width, config.height = 640, 480
    with pytest.raises(CameraError, match=f"width={COLOR_W} and height={COLOR_H}"):
        RealSenseCamera(config).connect()
