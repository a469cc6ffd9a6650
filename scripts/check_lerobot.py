"""Load datasets with LeRobot's own LeRobotDataset (offline, from local roots) and print what it sees.

Runs inside LeRobot's virtual environment (scripts/check_lerobot.sh makes it), not the project's:
    check_lerobot.py DATASET_ROOT [DATASET_ROOT ...]
For each root it checks that the metadata and LeRobotDataset agree with meta/info.json, that every
episode's first and last global index decode (videos included) as that episode's frames, and that
delta_timestamps (action chunks, future frames) work as a policy's training would use them.
Exits non-zero if any root fails. The last line is JSON: per root, what LeRobot read (episode lengths,
tasks, labels, per-frame next.success counts, each episode's first state and the mean pixel of its
first and last frame per camera), so a test can compare it with the project's own reader.
"""
import json
import sys
from pathlib import Path

import lerobot
from lerobot.datasets.lerobot_dataset import LeRobotDataset, LeRobotDatasetMetadata


def video_backend() -> str | None:
    try:
        import torchcodec.decoders  # noqa: F401  (needs the system's FFmpeg libraries)
    except Exception as e:  # noqa: BLE001
        print(f"torchcodec unusable here ({type(e).__name__}: {str(e)[:200]}); decoding with pyav")
        return "pyav"
    return None


def _mean_pixel(image) -> float:
    """Mean of a decoded frame in its stored units (LeRobot gives video frames as floats in 0..1)."""
    return round(float(image.float().mean()) * (255.0 if image.is_floating_point() else 1.0), 2)


def check(root: Path, backend: str | None) -> tuple[bool, dict]:
    info = json.loads((root / "meta/info.json").read_text())
    print(f"== dataset {root}")
    meta = LeRobotDatasetMetadata(repo_id="local/check", root=root)
    print(f"metadata: codebase {meta.info['codebase_version']}, robot_type {meta.robot_type}, fps {meta.fps}, "
          f"episodes {meta.total_episodes}, frames {meta.total_frames}, tasks {meta.total_tasks}")
    print(f"camera keys: {meta.camera_keys}")
    ds = LeRobotDataset(repo_id="local/check", root=root, video_backend=backend)
    print(f"LeRobotDataset: num_episodes {ds.num_episodes}, num_frames {ds.num_frames}, "
          f"video backend {ds.video_backend}")
    print("features:")
    for key, ft in ds.features.items():
        print(f"  {key}: {ft['dtype']} {tuple(ft['shape'])}")
    ok = ds.num_episodes == info["total_episodes"] and ds.num_frames == info["total_frames"] == len(ds)
    if not ok:
        print(f"MISMATCH: info.json says {info['total_episodes']} episodes / {info['total_frames']} frames")
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
    columns = ds.meta.episodes.column_names
    episodes = []
    for ep in range(ds.num_episodes):
        row = ds.meta.episodes[ep]
        first_index, last_index = int(row["dataset_from_index"]), int(row["dataset_to_index"]) - 1
        first, last = ds[first_index], ds[last_index]
        good = (int(first["episode_index"]) == ep and int(first["frame_index"]) == 0
                and int(last["episode_index"]) == ep and int(last["frame_index"]) == int(row["length"]) - 1
                and last_index - first_index + 1 == int(row["length"]))
        if not good:
            print(f"MISMATCH: episode {ep} spans {first_index}..{last_index} but its frames say otherwise")
        ok &= good
        frames = ds.hf_dataset.select(range(first_index, last_index + 1))
        successes = int(sum(bool(v) for v in frames["next.success"])) if "next.success" in ds.features else None
        episodes.append({
            "length": int(row["length"]), "tasks": list(row["tasks"]), "task": first["task"],
            "label": row["label"] if "label" in columns else None, "success_frames": successes,
            "first_state": [round(float(v), 5) for v in first["observation.state"]],
            "first_frame_mean": {key: _mean_pixel(first[key]) for key in meta.camera_keys},
            "last_frame_mean": {key: _mean_pixel(last[key]) for key in meta.camera_keys},
        })
    print("episodes:", [(e["length"], e["task"], e["label"]) for e in episodes])
    # action chunks and future frames through delta_timestamps, as a policy would train
    horizon = [k / meta.fps for k in range(16)]
    future = [2 * (k + 1) / meta.fps for k in range(8)]
    cam = meta.camera_keys[0]
    chunked = LeRobotDataset(repo_id="local/check", root=root, video_backend=backend,
                             delta_timestamps={"action": horizon, cam: future})
    s = chunked[len(chunked) - 1]
    print(f"with delta_timestamps (last frame): action {tuple(s['action'].shape)}, "
          f"action_is_pad {int(s['action_is_pad'].sum())} padded; {cam} {tuple(s[cam].shape)}")
    ok &= tuple(s["action"].shape) == (16, info["features"]["action"]["shape"][0]) and s[cam].shape[0] == 8
    ok &= int(s["action_is_pad"].sum()) == 15       # the dataset's last frame: only its own action is real
    print("stats keys:", sorted(ds.meta.stats) if ds.meta.stats else None)
    print(f"LEROBOT CHECK {'PASSED' if ok else 'FAILED'}: {root}")
    return ok, {"ok": ok, "episodes": episodes, "num_frames": ds.num_frames, "tasks": list(meta.tasks.index)}


def main(roots: list[Path]) -> int:
    print(f"lerobot {getattr(lerobot, '__version__', '?')}")
    backend = video_backend()
    results, all_ok = {}, True
    for root in roots:
        try:
            ok, summary = check(root, backend)
        except Exception as e:  # noqa: BLE001  (report every root, then fail)
            import traceback
            traceback.print_exc()
            print(f"LEROBOT CHECK FAILED: {root}: {type(e).__name__}: {e}")
            ok, summary = False, {"ok": False, "error": f"{type(e).__name__}: {e}"}
        results[str(root)] = summary
        all_ok &= ok
    print(json.dumps({"lerobot": getattr(lerobot, "__version__", "?"), "passed": all_ok, "datasets": results}))
    return 0 if all_ok else 1


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: check_lerobot.py DATASET_ROOT [DATASET_ROOT ...]")
    sys.exit(main([Path(p).resolve() for p in sys.argv[1:]]))
