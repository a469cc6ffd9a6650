"""Load a dataset with LeRobot's own LeRobotDataset (offline, from a local root) and print what it sees.

Runs inside LeRobot's virtual environment (scripts/check_lerobot.sh makes it), not the project's.
Exits non-zero if the dataset does not load or its contents disagree with meta/info.json.
"""
import json
import sys
from pathlib import Path

import lerobot
from lerobot.datasets.lerobot_dataset import LeRobotDataset, LeRobotDatasetMetadata


def main(root: Path) -> int:
    info = json.loads((root / "meta/info.json").read_text())
    print(f"lerobot {getattr(lerobot, '__version__', '?')}; dataset {root}")
    meta = LeRobotDatasetMetadata(repo_id="local/check", root=root)
    print(f"metadata: codebase {meta.info['codebase_version']}, robot_type {meta.robot_type}, fps {meta.fps}, "
          f"episodes {meta.total_episodes}, frames {meta.total_frames}, tasks {meta.total_tasks}")
    print(f"camera keys: {meta.camera_keys}")
    backend = None
    try:
        import torchcodec.decoders  # noqa: F401  (needs the system's ffmpeg libraries)
    except Exception as e:  # noqa: BLE001
        print(f"torchcodec unusable here ({type(e).__name__}); decoding with pyav")
        backend = "pyav"
    ds = LeRobotDataset(repo_id="local/check", root=root, video_backend=backend)
    print(f"LeRobotDataset: num_episodes {ds.num_episodes}, num_frames {ds.num_frames}, "
          f"video backend {ds.video_backend}")
    print("features:")
    for key, ft in ds.features.items():
        print(f"  {key}: {ft['dtype']} {tuple(ft['shape'])}")
    ok = ds.num_episodes == info["total_episodes"] and ds.num_frames == info["total_frames"]
    for idx in (0, len(ds) - 1):
        sample = ds[idx]
        print(f"sample {idx}:")
        for key, value in sample.items():
            desc = f"{tuple(value.shape)} {value.dtype}" if hasattr(value, "shape") else repr(value)[:60]
            print(f"  {key}: {desc}")
        for key in meta.camera_keys:
            h, w, c = info["features"][key]["shape"]
            ok &= tuple(sample[key].shape) == (c, h, w)
        ok &= tuple(sample["action"].shape) == tuple(info["features"]["action"]["shape"])
    # episode boundaries: each episode's first global index is its frame 0
    for ep in range(ds.num_episodes):
        first = ds[int(ds.meta.episodes[ep]["dataset_from_index"])]
        ok &= int(first["episode_index"]) == ep and int(first["frame_index"]) == 0
    # action chunks and future frames through delta_timestamps, as a policy would train
    horizon = [k / meta.fps for k in range(16)]
    future = [2 * (k + 1) / meta.fps for k in range(8)]
    cam = meta.camera_keys[0]
    chunked = LeRobotDataset(repo_id="local/check", root=root, video_backend=backend,
                             delta_timestamps={"action": horizon, cam: future})
    s = chunked[0]
    print(f"with delta_timestamps: action {tuple(s['action'].shape)}, action_is_pad {int(s['action_is_pad'].sum())} "
          f"padded; {cam} {tuple(s[cam].shape)}")
    ok &= tuple(s["action"].shape) == (16, info["features"]["action"]["shape"][0]) and s[cam].shape[0] == 8
    print("stats keys:", sorted(ds.meta.stats) if ds.meta.stats else None)
    print("LEROBOT CHECK " + ("PASSED" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: check_lerobot.py DATASET_ROOT")
    sys.exit(main(Path(sys.argv[1]).resolve()))
