"""OpenCV camera on a real mp4 written with imageio-ffmpeg (and real cv2.VideoCapture)."""
from __future__ import annotations

import time

import imageio_ffmpeg
import numpy as np
import pytest

from hardware.camera import CameraConfig, CameraError, CameraNotFoundError, StaleFrameError
from hardware.opencv_camera import OpenCVCamera
from frame_stream import new_frames

W, H, FPS, N = 64, 48, 20, 16


def brightness(n: int) -> int:
    return 10 + 14 * n   # distinct flat grey levels survive h264 compression


def write_video(path: str, n_frames: int = N) -> None:
    writer = imageio_ffmpeg.write_frames(path, (W, H), fps=FPS, codec="libx264", pix_fmt_out="yuv420p",
                                         macro_block_size=16, output_params=["-crf", "10"])
    writer.send(None)
    for n in range(n_frames):
        frame = np.full((H, W, 3), brightness(n), np.uint8)
        frame[:, : W // 4, 0] = 255    # a red stripe on the left checks the BGR->RGB conversion
        writer.send(frame.tobytes())
    writer.close()


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("opencv") / "clip.mp4")
    write_video(path)
    return path


def _config(device: str, **kw) -> CameraConfig:
    return CameraConfig(name="webcam", adapter="opencv", width=W, height=H, fps=FPS, serial=device, **kw)


def _frame_index(frame) -> int:
    grey = float(frame.rgb[:, W // 2:, 1].mean())
    return int(round((grey - 10) / 14))




def test_file_plays_in_order_at_camera_fps_then_goes_stale(video):
    camera = OpenCVCamera(_config(video, max_age_s=0.2))
    with camera:
        start = time.monotonic()
        frames = new_frames(camera, 5.0, include_current=True)
        elapsed = time.monotonic() - start
        assert camera.ended
        time.sleep(0.25)
        with pytest.raises(StaleFrameError):
            camera.read_latest()
    # seq counts every frame the camera published since connect, so index == seq shows that none
    # was skipped or repeated, even ones published before this test looked.
    assert [_frame_index(f) for f in frames] == [f.seq for f in frames]
    assert frames[0].seq <= 2 and frames[-1].seq == N - 1
    first = frames[0].rgb
    assert first.shape == (H, W, 3) and first.dtype == np.uint8
    assert first[:, : W // 4 - 2, 0].mean() > 240 and first[:, : W // 4 - 2, 2].mean() < 60   # red is red
    # 16 frames at 20 fps take 0.75 s between the first and the last one; far faster means unpaced.
    assert frames[-1].timestamp - frames[0].timestamp > 0.5
    assert elapsed < 4.0


def test_loop_option_wraps_around(video):
    camera = OpenCVCamera(_config(video, options={"loop": True}))
    with camera:
        frames = new_frames(camera, 1.3, include_current=True)
        assert not camera.ended
    indices = [_frame_index(f) for f in frames]
    assert len(frames) > N
    assert indices == [f.seq % N for f in frames]


def test_wrong_size_names_the_real_one(video):
    config = _config(video)
    config.width = 320
    with pytest.raises(CameraError, match=f"width={W} and height={H}"):
        OpenCVCamera(config).connect()


def test_missing_file_and_missing_device(tmp_path):
    with pytest.raises(CameraNotFoundError, match="no such file"):
        OpenCVCamera(_config(str(tmp_path / "nope.mp4"))).connect()
    with pytest.raises(CameraNotFoundError, match="could not be opened"):
        OpenCVCamera(_config("57")).connect()     # no /dev/video57 here
    with pytest.raises(ValueError, match="device index"):
        OpenCVCamera(_config(""))
