"""Replay camera on real mp4 files: a plain video, and a hand-built LeRobot-v3 dataset whose
two episodes share one mp4 (as v3 concatenates them), located through meta/episodes parquet."""
from __future__ import annotations

import json
import os
import time

import imageio_ffmpeg
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hardware.camera import CameraConfig, CameraNotFoundError, StaleFrameError
from hardware.replay_camera import ReplayCamera, episode_segment
from frame_stream import new_frames

W, H, FPS = 64, 48, 20
EPISODE_LENGTHS = (10, 8)
KEY = "observation.images.head"


def brightness(n: int) -> int:
    return 10 + 12 * n


def frame_index(rgb: np.ndarray) -> int:
    return int(round((float(rgb.mean()) - 10) / 12))


def write_video(path: str, n_frames: int, size=(W, H)) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    writer = imageio_ffmpeg.write_frames(path, size, fps=FPS, codec="libx264", pix_fmt_out="yuv420p",
                                         macro_block_size=16, output_params=["-crf", "10", "-g", "4"])
    writer.send(None)
    for n in range(n_frames):
        writer.send(np.full((size[1], size[0], 3), brightness(n), np.uint8).tobytes())
    writer.close()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> str:
    """Two episodes in videos/<key>/chunk-000/file-000.mp4, frames numbered 0..17 across both."""
    root = str(tmp_path_factory.mktemp("dataset"))
    video_path = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    write_video(os.path.join(root, video_path.format(video_key=KEY, chunk_index=0, file_index=0)),
                sum(EPISODE_LENGTHS))
    info = {"codebase_version": "v3.0", "fps": FPS, "total_episodes": len(EPISODE_LENGTHS),
            "video_path": video_path,
            "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
            "features": {KEY: {"dtype": "video", "shape": [H, W, 3], "names": ["height", "width", "channels"]},
                         "action": {"dtype": "float32", "shape": [14], "names": None}}}
    os.makedirs(os.path.join(root, "meta", "episodes", "chunk-000"))
    with open(os.path.join(root, "meta", "info.json"), "w") as f:
        json.dump(info, f)
    starts = np.cumsum((0,) + EPISODE_LENGTHS[:-1]) / FPS
    ends = np.cumsum(EPISODE_LENGTHS) / FPS
    table = pa.table({"episode_index": list(range(len(EPISODE_LENGTHS))), "length": list(EPISODE_LENGTHS),
                      f"videos/{KEY}/chunk_index": [0, 0], f"videos/{KEY}/file_index": [0, 0],
                      f"videos/{KEY}/from_timestamp": starts.tolist(), f"videos/{KEY}/to_timestamp": ends.tolist()})
    pq.write_table(table, os.path.join(root, "meta", "episodes", "chunk-000", "file-000.parquet"))
    return root


def _config(source: str, **options) -> CameraConfig:
    return CameraConfig(name="head", adapter="replay", width=W, height=H, fps=FPS, source=source,
                        max_age_s=0.2, options=options)




def test_episode_lookup_reads_v3_metadata(dataset):
    segment = episode_segment(dataset, 1, KEY)
    assert segment.path.endswith(f"videos/{KEY}/chunk-000/file-000.mp4")
    assert segment.from_s == pytest.approx(0.5) and segment.to_s == pytest.approx(0.9)


def test_replays_exactly_one_episode_in_order_then_stops(dataset):
    camera = ReplayCamera(_config(dataset, episode=1))
    with camera:
        frames = new_frames(camera, 3.0, include_current=True)
        assert camera.finished
        time.sleep(0.25)
        with pytest.raises(StaleFrameError):
            camera.read_latest()
    # seq counts every published frame since connect: index == 10 + seq means none skipped or repeated.
    assert [frame_index(f.rgb) for f in frames] == [10 + f.seq for f in frames]
    assert frames[0].seq <= 2 and frames[-1].seq == 7
    assert frames[0].rgb.shape == (H, W, 3)
    # Paced at the camera fps: 8 frames at 20 fps span 0.35 s.
    assert frames[-1].timestamp - frames[0].timestamp > 0.25


def test_first_episode_loops(dataset):
    camera = ReplayCamera(_config(dataset, episode=0, loop=True))
    with camera:
        frames = new_frames(camera, 1.0, include_current=True)
        assert not camera.finished
    indices = [frame_index(f.rgb) for f in frames]
    assert indices == [f.seq % 10 for f in frames] and frames[-1].seq >= 12


def test_plain_video_is_scaled_to_the_configured_size(tmp_path):
    path = str(tmp_path / "clip.mp4")
    write_video(path, 5, size=(128, 96))
    camera = ReplayCamera(_config(path))
    with camera:
        frames = new_frames(camera, 2.0, include_current=True)
    assert [frame_index(f.rgb) for f in frames] == [f.seq for f in frames] and frames[-1].seq == 4
    assert frames[0].rgb.shape == (H, W, 3)


def test_bad_inputs_name_the_fix(dataset, tmp_path):
    with pytest.raises(CameraNotFoundError, match=r"cameras are \['observation.images.head'\]"):
        ReplayCamera(_config(dataset, camera_key="observation.images.wrist")).connect()
    with pytest.raises(CameraNotFoundError, match="no episode 5 .*2 episodes"):
        ReplayCamera(_config(dataset, episode=5)).connect()
    with pytest.raises(CameraNotFoundError, match="not a LeRobot dataset"):
        ReplayCamera(_config(str(tmp_path))).connect()
    with pytest.raises(CameraNotFoundError, match="no such file"):
        ReplayCamera(_config(str(tmp_path / "gone.mp4"))).connect()
    with pytest.raises(ValueError, match="needs source"):
        ReplayCamera(CameraConfig(name="head", adapter="replay"))


def test_replays_an_episode_recorded_by_the_dataset_writer(tmp_path):
    """The project's own recorder (policy.episodes) writes what the replay camera reads."""
    from policy.episodes import DatasetSpec, DatasetWriter
    spec = DatasetSpec(fps=FPS, robot_type="test", cameras={"head": (H, W)}, state_names=("q",), action_names=("a",))
    root = tmp_path / "recorded"
    with DatasetWriter(root, spec) as writer:
        for episode, length in enumerate((6, 9)):
            writer.start_episode(f"episode {episode}")
            for n in range(length):
                writer.add_frame({"head": np.full((H, W, 3), brightness(n + 10 * episode), np.uint8)}, [0.0], [0.0])
            writer.save_episode()
        writer.wait(30)
    camera = ReplayCamera(_config(str(root), episode=1))
    with camera:
        frames = new_frames(camera, 3.0, include_current=True)
    assert [frame_index(f.rgb) for f in frames] == [10 + f.seq for f in frames]
    assert frames[-1].seq == 8
