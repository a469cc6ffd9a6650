"""DatasetSpec <-> meta/info.json (LeRobot v3 vocabulary) and the list of differences."""
from policy.episodes.spec import DatasetSpec, chunk_and_file
from policy.episodes.synthetic import synthetic_spec


def test_info_round_trip_and_lerobot_fields():
    spec = synthetic_spec(48, 64, fps=10, depth_cameras=("head",))
    info = spec.info(total_episodes=3, total_frames=90, total_tasks=2)
    assert info["codebase_version"] == "v3.0" and info["splits"] == {"train": "0:3"}
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    head = info["features"]["observation.images.head"]
    assert head["dtype"] == "video" and head["shape"] == [48, 64, 3] and head["info"]["video.codec"] == "h264"
    assert info["features"]["observation.state"] == {"dtype": "float32", "shape": [14],
                                                     "names": list(spec.state_names)}
    assert info["features"]["observation.images.head_depth"]["dtype"] == "image"
    assert DatasetSpec.from_info(info) == spec


def test_differences_name_each_field():
    a = synthetic_spec(48, 64, fps=10)
    b = synthetic_spec(96, 128, fps=30, robot_type="piper")
    diffs = a.differences(b)
    assert any("fps 10 != 30" in d for d in diffs) and any("robot_type" in d for d in diffs)
    assert any("cameras" in d for d in diffs) and a.differences(a) == []


def test_one_file_per_episode_indices():
    assert chunk_and_file(0) == (0, 0) and chunk_and_file(999) == (0, 999) and chunk_and_file(1000) == (1, 0)
